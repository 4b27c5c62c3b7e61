"""One suppression for every heatmap published from the same data, so that no two can be differenced.

The per-row k floor of :mod:`geotarget.maps.heatmap` keeps each published
cell at ``k`` customers or more, but two published answers can still be
subtracted: a res-8 cell minus its res-9 cells, a region minus the cells
inside it, one resolution against another. The difference is a set of
customers the floor never looked at, and it may hold one person.

**The method: suppression on atoms of the point set.** The database's policy
fixes the resolutions heatmaps are published at
(:attr:`~geotarget.store.policy.PrivacyPolicy.heatmap_res`); every region
layer in the database is published too. Each customer gets one key per
published partition:

- for each published resolution, its standard H3 cell
  (``h3.latlng_to_cell(lat, lng, res)``) *and* the res-``r`` parent of its
  stored res-15 cell. Heatmaps count by the standard cell; the hierarchy key
  is there because an attacker differences along the hierarchy (a parent
  minus its children), and H3 cells do not nest: near a hexagon's edge the
  two differ, and the atoms must be fine enough for both;
- for each region layer, the region it is counted in (as
  :func:`geotarget.maps.heatmap.aggregate_regions` assigns it), or none.

An *atom* is a set of customers sharing every key. Every published cell or
region is a union of atoms, so every sum or difference of published counts is
a signed sum of atom counts. Customers in an atom of fewer than ``k`` (for a
``sum``/``mean``/``median``, fewer than ``k`` non-null values) are left out of
*every* published heatmap, at every resolution and in every layer; then no
combination of published values describes a group smaller than ``k``: the
smallest thing one can isolate is an atom, and every atom left has ``k`` or
more. The method reasons about point sets only, never about the cell
hierarchy, so it holds for non-nesting cells.

What the published result says about what was left out is rounded: the number
of customers suppressed is rounded down to a multiple of ``k``, so that the
total minus the published sum does not count a small group either.

Cost: the atoms are computed once per data version and policy (cached with
the customer index snapshot); a heatmap afterwards aggregates only the kept
customers, on the same fast path as an unsuppressed one. After a write, each
customer's keys are carried from the previous snapshot when its point is
unchanged, and computed only for new or moved customers and changed layers
(:mod:`geotarget.maps.atoms`).
"""

from __future__ import annotations

import threading
import weakref
from dataclasses import replace

import numpy as np

from geotarget.audience.budget import charge_scan
from geotarget.errors import PrivacyError
from geotarget.maps.atoms import atom_codes
from geotarget.maps.heatmap import _check_res, _value_column, aggregate_cells, aggregate_regions, parse_metric
from geotarget.maps.result import HeatmapResult

__all__ = ["atoms", "check_published_res", "publishable_positions", "published_heatmap"]

_CACHE: weakref.WeakKeyDictionary = weakref.WeakKeyDictionary()
_LOCK = threading.Lock()


def atoms(eng, index, heatmap_res) -> np.ndarray:
    """Dense atom codes, one per customer of ``index`` (see the module docstring and :mod:`geotarget.maps.atoms`)."""
    if len(index):
        layers = eng.layers()
        charge_scan(len(index), len(heatmap_res) + len(layers),
                    what="the suppression shared by all heatmaps (one pass per published res and region layer, "
                         "once per data version)",
                    hint="publish fewer resolutions (policy heatmap_res) or drop unused region layers")
    return atom_codes(eng, index, tuple(heatmap_res))


def column_values(eng, index, column: str) -> np.ndarray:
    """``column`` (as float64, NaN for null) for every customer of ``index``, in its order; cached per snapshot.

    One join inside DuckDB of the snapshot's ids (with their positions) and
    the customers that have a value.
    """
    import uuid

    import pyarrow as pa

    from geotarget.store.validation import _quote

    key = ("values", column)
    with _LOCK:
        found = _CACHE.setdefault(index, {}).get(key)
    if found is not None:
        return found
    values = np.full(len(index), np.nan)
    if len(index):
        con = eng.store.con
        name = f"_gt_positions_{uuid.uuid4().hex}"
        col = _quote(column)
        con.register(name, pa.table({"customer_id": index.ids, "pos": pa.array(np.arange(len(index)), pa.int64())}))
        try:
            table = con.sql(f"SELECT p.pos, CAST(c.{col} AS DOUBLE) AS v FROM {name} p JOIN customers c "
                            f"USING (customer_id) WHERE c.{col} IS NOT NULL").to_arrow_table()
        finally:
            con.unregister(name)
        values[table.column("pos").to_numpy()] = table.column("v").to_numpy()
    with _LOCK:
        _CACHE.setdefault(index, {})[key] = values
    return values


def publishable_positions(eng, policy, *, value_column: str | None = None) -> tuple[object, np.ndarray, int]:
    """(index, sorted positions of the customers every published heatmap may count, customers left out).

    Cached per index snapshot (so per data version), policy and value column.
    """
    index, kept, dropped = _split(eng, policy, value_column)
    return index, kept, int(dropped.size)


def _split(eng, policy, value_column: str | None):
    """(index, positions kept, positions left out), cached."""
    index = eng._index_cache.get()
    key = (policy.k_min, tuple(policy.heatmap_res), value_column)  # layers change only with the data version
    with _LOCK:
        per_index = _CACHE.setdefault(index, {})
        found = per_index.get(key)
    if found is not None:
        return index, found[0], found[1]
    atoms_key = ("atoms", tuple(policy.heatmap_res))
    with _LOCK:
        codes = per_index.get(atoms_key)
    if codes is None:
        codes = atoms(eng, index, policy.heatmap_res)
        with _LOCK:
            per_index[atoms_key] = codes
    keep = np.bincount(codes)[codes] >= policy.k_min if codes.size else np.zeros(0, dtype=bool)
    if value_column is not None and codes.size:
        has = ~np.isnan(column_values(eng, index, value_column))
        keep &= np.bincount(codes, weights=has.astype(np.float64))[codes] >= policy.k_min
    positions = np.flatnonzero(keep).astype(np.int64)
    dropped = np.flatnonzero(~keep).astype(np.int64)
    positions.setflags(write=False)  # shared by every heatmap of this data version; their cell counts are kept
    dropped.setflags(write=False)
    with _LOCK:
        per_index[key] = (positions, dropped)
    return index, positions, dropped


def check_published_res(policy, res) -> int:
    """``res`` when the policy publishes heatmaps at it; else PrivacyError naming the resolutions it does."""
    res = _check_res(res)
    if res not in policy.heatmap_res:
        raise PrivacyError(f"heatmaps are published at res {', '.join(map(str, policy.heatmap_res))} only "
                           f"(the database's policy), not res {res}; ask for one of those")
    return res


def published_heatmap(eng, policy, res: int | None = 8, metric="count", *, region_layer: str | None = None,
                      k_min: int | None = None) -> HeatmapResult:
    """A heatmap as the policy lets it be published: at a policy resolution, over the kept customers only.

    Raises
    ------
    PrivacyError
        ``res`` is not one of the policy's resolutions, or ``k_min`` is
        below the policy's floor.
    """
    from geotarget.audience.audience import Audience

    metric = parse_metric(metric)
    k = policy.k_min if k_min is None else k_min
    if k < policy.k_min:
        raise PrivacyError(f"k_min must be at least the policy's {policy.k_min}, got {k_min}")
    if region_layer is None:
        res = check_published_res(policy, res)
    value_column = metric.column if metric.kind in ("sum", "mean", "median") else None
    if value_column is not None:
        _value_column(eng, metric)  # an unknown or non-numeric column is the caller's error, checked first
    index, positions, dropped = _split(eng, policy, value_column)
    left_out = int(dropped.size)
    kept = Audience(eng, index, positions, kind="published", description="customers a heatmap may count")
    if region_layer is not None:
        result = aggregate_regions(eng, region_layer, metric, audience=kept, k_min=k)
    elif value_column is not None:  # the values are in hand (the atoms needed them): aggregate on the snapshot
        result = aggregate_cells(eng, res, metric, audience=kept, k_min=k,
                                 index_values=column_values(eng, index, value_column))
    elif left_out < positions.size:  # name the smaller group to the aggregation: those left out
        hidden = Audience(eng, index, dropped, kind="suppressed", description="customers no heatmap counts")
        result = aggregate_cells(eng, res, metric, audience=hidden, exclude_audience=True, k_min=k)
    else:
        result = aggregate_cells(eng, res, metric, audience=kept, k_min=k)
    hidden = result.suppressed_customers + left_out
    hidden -= hidden % k  # rounded down to a multiple of k
    shown = result.total_customers - result.suppressed_customers
    return replace(result, suppressed_customers=hidden, total_customers=shown + hidden)
