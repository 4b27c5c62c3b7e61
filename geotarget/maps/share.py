"""A segment against all customers, area by area: its share and its index.

For each cell (or region) the segment's customers ``S`` and all eligible
customers ``B`` are counted. The share is ``S / B``; the index is the share
relative to the segment's share overall, times 100, so 100 means "as
everywhere" and 150 "half as many again". A marketer reads where a niche
over-indexes.

**The k floor on both counts.** A row is shown only when the segment count
and the base count both reach ``k_min``: a share over a handful of people
would tell who they are, and a small denominator makes a loud index. Rows
left out are counted in the result like any other heatmap's.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from geotarget.errors import InvalidInputError
from geotarget.maps.metric import Metric
from geotarget.maps.result import HeatmapResult

__all__ = ["share_result"]


def _merge(base: HeatmapResult, seg: HeatmapResult, key: str) -> pd.DataFrame:
    both = base.frame[[c for c in base.frame.columns if c not in ("value", "population")]].rename(
        columns={"customers": "base_customers"})
    both = both.merge(seg.frame[[key, "customers"]], on=key, how="left")
    both["customers"] = both["customers"].fillna(0).astype("int64")
    both["base_customers"] = both["base_customers"].astype("int64")
    return both


def share_result(base: HeatmapResult, seg: HeatmapResult, metric: Metric, k_min: int) -> HeatmapResult:
    """Combine unfloored counts of all customers (``base``) and of a segment (``seg``).

    Both results must have been made with no floor (``k_min=1``), over the
    same cells or regions; the floor is applied here to both counts.
    """
    key = "cell" if base.level == "cell" else "region_id"
    both = _merge(base, seg, key)
    seg_total, base_total = int(seg.total_customers), int(base.total_customers)
    overall = seg_total / base_total if base_total else np.nan
    # -- the k-anonymity floor, on the numerator and the denominator --
    keep = (both["customers"].to_numpy() >= k_min) & (both["base_customers"].to_numpy() >= k_min)
    n_hidden = int(np.count_nonzero(~keep))
    hidden_customers = int(both["customers"].to_numpy()[~keep].sum())
    shown = both.loc[keep].reset_index(drop=True)
    share = shown["customers"] / shown["base_customers"]
    shown["share"] = share
    shown["value"] = share * 100.0 if metric.kind == "share" else share / overall * 100.0
    geometry = None
    hidden_rows = np.flatnonzero(~keep)  # every area with customers but too few, in the segment or overall
    if base.level == "region":
        geometry = np.asarray(base.geometry, dtype=object)[np.flatnonzero(keep)]
        hidden = np.asarray(base.geometry, dtype=object)[hidden_rows]
    else:
        hidden = both["cell"].to_numpy(dtype="uint64")[hidden_rows]
    counts_hidden = {"suppressed_cells": n_hidden} if base.level == "cell" else {"suppressed_regions": n_hidden}
    return HeatmapResult(shown, metric, k_min, res=base.res, layer=base.layer, suppressed_customers=hidden_customers,
                         total_customers=seg_total, unassigned_customers=seg.unassigned_customers,
                         geometry=geometry, hidden=hidden, **counts_hidden)


def check_segment(audience, metric: Metric) -> None:
    """A share or index needs the segment to compare with all customers."""
    if audience is None:
        raise InvalidInputError(f"metric {metric.kind!r} compares a segment with all customers; pass the segment "
                                "as audience= (CLI: a segment filter such as --where)")
