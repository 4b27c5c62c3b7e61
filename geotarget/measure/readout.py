"""The lift readout: what a launched campaign did, treatment against its holdout.

**Intent to treat.** The groups are the campaign's frozen assignment
(:mod:`geotarget.measure.assignment`), exactly as they were at launch. A
customer who opted out, moved, left the segment or was suppressed after
launch stays in the group they were assigned to, and counts whether or not
they ever saw the campaign; only erasure removes a person. So the readout
measures the effect of *assigning* customers to the campaign, which is what
a marketer can decide, and the comparison stays randomized.

**Metrics.** ``conversion``: the share of customers with at least one
outcome in the window. ``revenue``: the sum of outcome values per customer
(customers without outcomes count as 0), compared by Welch's t test with a
bootstrap interval. Outcomes of one ``kind`` only with ``kind=``.

**Window.** From ``start`` (default: the launch time) to ``end`` (exclusive;
default: after the last outcome). The pre-period is the window of the same
length just before ``start``; when customers have outcomes there, CUPED
reduces the variance and the ``*_adj`` figures are reported beside the raw
ones (``None`` otherwise).

**Cost.** The groups' sizes, means, variances and covariances come from
one SQL pass over the outcomes (:mod:`geotarget.measure.summaries`); no
per-customer rows reach Python, and the statistics work on those summaries
(:mod:`geotarget.measure.stats`).

**Memory.** The readout runs with DuckDB's memory limit lowered to
:data:`~geotarget.measure.budget.READOUT_MEMORY_LIMIT` (1 GB; the
``memory_limit`` argument), so its per-customer hash tables spill rather
than grow with the campaign; the limit is restored after
(:mod:`geotarget.measure.budget`).

**Privacy.** Only aggregates leave this module. A readout needs at least
``k_min`` customers in each group; a breakdown cell with fewer has no
readout at all (it is counted in ``suppressed_cells``).
"""

from __future__ import annotations

import json
import math
import uuid
from dataclasses import dataclass, field

import numpy as np
import pandas as pd

from geotarget.audience.budget import charge_cells, charge_scan, check_time
from geotarget.errors import InvalidInputError, PrivacyError
from geotarget.measure.assignment import Launch, parse_instant, require_launch
from geotarget.measure.budget import READOUT_MEMORY_LIMIT, run_bounded
from geotarget.measure.stats import (
    GroupSummary,
    NonZero,
    benjamini_hochberg,
    bootstrap_diff_ci,
    cuped,
    two_proportions,
    welch,
)
from geotarget.measure.summaries import conversion_summaries, revenue_small_values, revenue_summaries, revenue_values

__all__ = ["KEYS", "LiftResult"]

METRICS = ("conversion", "revenue")
#: Top-level keys of :meth:`LiftResult.to_dict` (and ``geotarget lift --json``), besides ``details``.
KEYS = ("treatment_n", "control_n", "treatment_rate", "control_rate", "abs_lift", "rel_lift", "ci_low", "ci_high",
        "p_value")
ADJ_KEYS = tuple(f"{k}_adj" for k in KEYS[2:])
DEFAULT_K_MIN = 10


@dataclass
class LiftResult:
    """A readout: the overall figures, CUPED-adjusted figures, and an optional breakdown."""

    campaign: str
    campaign_id: str
    metric: str
    launch: Launch
    start: pd.Timestamp
    end: pd.Timestamp | None
    pre_start: pd.Timestamp | None
    figures: dict
    adjusted: dict | None
    details: dict = field(default_factory=dict)
    by: str | None = None
    breakdown: pd.DataFrame | None = None

    _engine: object = field(default=None, repr=False, compare=False)

    # -- pictures (geotarget.measure.pictures) ---------------------------------
    def to_map(self, **options):
        """A Folium lift map of the breakdown (by store ring, H3 cell or region); see :func:`pictures.lift_map`."""
        from geotarget.measure.pictures import lift_map

        return lift_map(self._engine, self, **options)

    def to_png(self, path, **options):
        """The lift map as a PNG; see :func:`geotarget.measure.pictures.lift_png`."""
        from geotarget.measure.pictures import lift_png

        return lift_png(self._engine, self, path, **options)

    def cumulative(self, freq: str = "D") -> pd.DataFrame:
        """Cumulative conversion by group over the readout's window, per day (``freq``)."""
        from geotarget.measure.pictures import cumulative_conversion

        campaign = self._engine.campaign(self.campaign_id)
        return cumulative_conversion(self._engine, campaign, start=self.start, end=self.end,
                                     kind=self.details.get("kind"), freq=freq)

    def cumulative_png(self, path, **options):
        """Cumulative conversion by group as a PNG."""
        from geotarget.measure.pictures import cumulative_png

        return cumulative_png(self.cumulative(), path, title=f"{self.campaign}: cumulative conversion", **options)

    def cumulative_html(self, path, **options):
        """Cumulative conversion by group as a self-contained HTML page."""
        from geotarget.measure.pictures import cumulative_html

        return cumulative_html(self.cumulative(), path, title=f"{self.campaign}: cumulative conversion", **options)

    def __getitem__(self, key: str):
        return self.to_dict()[key]

    def to_dict(self) -> dict:
        """The ``--json`` form: the keys of :data:`KEYS`, their ``*_adj`` twins, then ``details``."""
        out = {k: _plain(self.figures.get(k)) for k in KEYS}
        for k in KEYS[2:]:
            out[f"{k}_adj"] = None if self.adjusted is None else _plain(self.adjusted.get(k))
        details = {
            "campaign": self.campaign, "campaign_id": self.campaign_id, "metric": self.metric,
            "launched_at": self.launch.launched_at.isoformat(), "start": self.start.isoformat(),
            "end": None if self.end is None else self.end.isoformat(),
            "pre_start": None if self.pre_start is None else self.pre_start.isoformat(),
            "analysis": "intent-to-treat (groups as frozen at launch)",
            **{k: _plain(v) for k, v in self.details.items()},
        }
        if self.breakdown is not None:
            details["by"] = self.by
            details["breakdown"] = [{k: _plain(v) for k, v in row.items()}
                                    for row in self.breakdown.to_dict(orient="records")]
        out["details"] = details
        return out

    def to_json(self, **kwargs) -> str:
        """:meth:`to_dict` as JSON text."""
        return json.dumps(self.to_dict(), **kwargs)

    def __str__(self) -> str:
        f, unit = self.figures, "" if self.metric == "conversion" else " per customer"
        pct = self.metric == "conversion"

        def fmt(v):
            return "n/a" if v is None else (f"{v:.4%}" if pct else f"{v:,.4f}")

        rel = "n/a" if f["rel_lift"] is None else f"{f['rel_lift']:+.1%}"
        lines = [
            f"{self.campaign}: {self.metric}{unit}, {self.start:%Y-%m-%d %H:%M} to "
            f"{'now' if self.end is None else f'{self.end:%Y-%m-%d %H:%M}'} (intent-to-treat)",
            f"  treatment {f['treatment_n']:,}: {fmt(f['treatment_rate'])}   control {f['control_n']:,}: "
            f"{fmt(f['control_rate'])}",
            f"  lift {fmt(f['abs_lift'])} ({rel}), "
            f"95% CI [{fmt(f['ci_low'])}, {fmt(f['ci_high'])}], p = {f['p_value']:.4g} ({self.details['test']})",
        ]
        if self.adjusted is not None:
            a = self.adjusted
            lines.append(f"  CUPED: lift {fmt(a['abs_lift'])}, 95% CI [{fmt(a['ci_low'])}, {fmt(a['ci_high'])}], "
                         f"p = {a['p_value']:.4g} (variance -{self.details['variance_reduction']:.0%})")
        if self.breakdown is not None:
            shown = self.breakdown[~self.breakdown["suppressed"]]
            lines.append(f"  by {self.by}: {len(shown)} cell(s) with a readout, "
                         f"{int(self.breakdown['suppressed'].sum())} under k suppressed")
        return "\n".join(lines)


def _plain(v):
    if v is None:
        return None
    if isinstance(v, (np.bool_, bool)):
        return bool(v)
    if isinstance(v, (np.integer,)):
        return int(v)
    if isinstance(v, (float, np.floating)):
        return None if not math.isfinite(float(v)) else float(v)
    if isinstance(v, pd.Timestamp):
        return v.isoformat()
    return v


def _window(store, launch: Launch, start, end, kind):
    start = parse_instant(start, "start") or launch.launched_at
    end = parse_instant(end, "end")
    if end is not None and end <= start:
        raise InvalidInputError(f"end {end.isoformat()} is not after start {start.isoformat()}; widen the window")
    last = end
    if last is None:
        of_kind = "" if kind is None else " AND kind = $k"
        latest = store.scalar("SELECT max(ts) FROM outcomes WHERE ts >= $s" + of_kind,
                              {"s": start.to_pydatetime(), **({} if kind is None else {"k": kind})})
        last = None if latest is None else pd.Timestamp(latest).tz_convert("UTC") + pd.Timedelta(microseconds=1)
    pre_start = None if last is None else start - (last - start)
    return start, end, last, pre_start


def _readout(t: GroupSummary, c: GroupSummary, metric: str, alpha: float) -> dict:
    if metric == "conversion":
        xt, xc = round(t.mean_y * t.n), round(c.mean_y * c.n)
        r = two_proportions(int(xt), t.n, int(xc), c.n, alpha=alpha)
        r.update(treatment_conversions=int(xt), control_conversions=int(xc))
    else:
        r = welch(t, c, alpha=alpha)
    r["treatment_n"], r["control_n"] = t.n, c.n
    return r


def _adjusted(t: GroupSummary, c: GroupSummary, alpha: float):
    if t.var_x + c.var_x <= 0 or t.n < 2 or c.n < 2:
        return None, None
    ta, ca, theta = cuped(t, c)
    r = welch(ta, ca, alpha=alpha)
    raw_var = t.var_y / t.n + c.var_y / c.n
    adj_var = ta.var_y / ta.n + ca.var_y / ca.n
    return r, {"theta": theta, "variance_reduction": 1 - adj_var / raw_var if raw_var > 0 else 0.0}


def lift(engine, campaign, *, memory_limit: str | None = READOUT_MEMORY_LIMIT, **options) -> LiftResult:
    """The readout of a launched campaign (see :meth:`geotarget.Engine.lift`), within DuckDB's ``memory_limit``.

    The limit is lowered to ``memory_limit`` while the readout runs and set
    back after (:mod:`geotarget.measure.budget`); None leaves it as it is.
    """
    return run_bounded(engine.store, lambda: _lift(engine, campaign, **options), memory_limit)


def _lift(engine, campaign, *, start=None, end=None, metric: str = "conversion", by: str | None = None,
          kind: str | None = None, k_min: int = DEFAULT_K_MIN, alpha: float = 0.05, cuped: bool = True,
          draws: int = 2000, seed: int = 0) -> LiftResult:
    if metric not in METRICS:
        raise InvalidInputError(f"metric must be one of {', '.join(METRICS)}, got {metric!r}")
    if not (0 < alpha < 1):
        raise InvalidInputError(f"alpha must be in (0, 1), e.g. 0.05, got {alpha!r}")
    if isinstance(k_min, bool) or not isinstance(k_min, int) or k_min < 2:
        raise InvalidInputError(f"k_min must be a whole number of at least 2, got {k_min!r}")
    store = engine.store
    launch = require_launch(store, campaign)
    start, end, _last, pre_start = _window(store, launch, start, end, kind)
    pre = pre_start if cuped else None
    nonzero: dict = {}
    if metric == "conversion":
        groups = conversion_summaries(store, campaign.id, start, end, pre, kind).get(None, {})
    else:
        values, params = revenue_values(campaign.id, start, end, pre, kind)
        groups = revenue_summaries(store, values, params, nonzero=nonzero).get(None, {})
    t, c = groups.get("treatment"), groups.get("control")
    nt, nc = (t.n if t else 0), (c.n if c else 0)
    if min(nt, nc) < k_min:
        raise PrivacyError(
            f"campaign {campaign.name!r} has {nt:,} treatment and {nc:,} control customers; a readout needs at "
            f"least {k_min} in each group (k_min); it cannot be measured at this size")
    figures = _readout(t, c, metric, alpha)
    details = {"test": figures.pop("test"), "alpha": alpha, "k_min": k_min, "kind": kind}
    for extra in ("df", "treatment_conversions", "control_conversions"):
        if extra in figures:
            details[extra] = figures.pop(extra)
    if metric == "revenue":
        revenue_small_values(store, values, params, nonzero, draws)
        none = NonZero(0, 0.0, 0.0)
        low, high = bootstrap_diff_ci(nonzero.get("treatment", none), nt, nonzero.get("control", none), nc,
                                      alpha=alpha, draws=draws, seed=seed)
        details.update(welch_ci_low=figures["ci_low"], welch_ci_high=figures["ci_high"],
                       ci_method=f"bootstrap percentile ({draws} resamples)")
        figures["ci_low"], figures["ci_high"] = low, high
    adjusted, info = _adjusted(t, c, alpha)
    if adjusted is not None:
        details.update(info, test_adj="welch")
    else:
        details["variance_reduction"] = None
    result = LiftResult(campaign=campaign.name, campaign_id=campaign.id, metric=metric, launch=launch, start=start,
                        end=end, pre_start=pre_start if adjusted is not None else None, figures=figures,
                        adjusted=adjusted, details=details, _engine=engine)
    if by is not None:
        result.by = by
        result.breakdown = _breakdown(engine, campaign, metric, start, end, None, kind, by, k_min, alpha)
    return result


def _breakdown(engine, campaign, metric, start, end, pre_start, kind, by: str, k_min: int, alpha: float):
    store = engine.store
    key_sql, table, registered = _breakdown_key(engine, campaign, by)
    try:
        if metric == "conversion":
            summaries = conversion_summaries(store, campaign.id, start, end, pre_start, kind, key_sql, table)
        else:
            values, params = revenue_values(campaign.id, start, end, pre_start, kind)
            summaries = revenue_summaries(store, values, params, key_sql, table)
    finally:
        if registered is not None:
            store.con.unregister(registered)
    charge_cells(len(summaries), what=f"the lift breakdown by {by!r}", field="by",
                 hint="break it down by a coarser h3_RES, a layer of fewer regions or a column of fewer values")
    rows = []
    for key in sorted(summaries, key=lambda k: (k is None, str(k))):
        g = summaries[key]
        t, c = g.get("treatment"), g.get("control")
        nt, nc = (t.n if t else 0), (c.n if c else 0)
        row = {by: None if key is None else str(key), "suppressed": min(nt, nc) < k_min}
        if not row["suppressed"]:
            r = _readout(t, c, metric, alpha)
            row.update({k: r[k] for k in KEYS})
        rows.append(row)
    frame = pd.DataFrame(rows, columns=[by, "suppressed", *KEYS])
    shown = ~frame["suppressed"].to_numpy(dtype=bool)
    frame["q_value"] = np.nan
    if shown.any():
        frame.loc[shown, "q_value"] = benjamini_hochberg(frame.loc[shown, "p_value"].to_numpy(dtype="float64"))
    frame["significant"] = (frame["q_value"] < alpha).fillna(False).astype(bool)
    return frame


def _breakdown_key(engine, campaign, by: str):
    """SQL for the breakdown key, what to join for it, and the name of a frame registered for it (or None)."""
    from geotarget.store.validation import _quote

    store = engine.store
    if not isinstance(by, str) or not by.strip():
        raise InvalidInputError("by must name store, h3_RES (e.g. h3_8), a region layer or a customer column")
    if by == "store":
        if store.scalar("SELECT count(*) FROM campaign_assignments WHERE campaign_id = $c AND store_id IS NOT NULL",
                        {"c": campaign.id}) == 0:
            raise InvalidInputError(f"campaign {campaign.name!r} has no stores (not a radius geofence); "
                                    "break it down by h3_8, a region layer or a customer column instead")
        return "a.store_id", None, None
    frame = store.frame("SELECT customer_id, lat, lng FROM campaign_assignments WHERE campaign_id = $c",
                        {"c": campaign.id})
    if by.lower().startswith("h3_"):
        from geotarget.geo.cells import cells_to_str, latlng_to_cells

        try:
            res = int(by[3:])
        except ValueError:
            raise InvalidInputError(f"by {by!r}: the H3 resolution must be a number, e.g. h3_8") from None
        if not 0 <= res <= 15:
            raise InvalidInputError(f"by {by!r}: H3 resolution must be in 0..15")
        charge_scan(len(frame), what=f"the lift breakdown by {by!r}")
        keys = cells_to_str(latlng_to_cells(frame["lat"].to_numpy(), frame["lng"].to_numpy(), res))
    elif by in engine.layers():
        import shapely

        regions = engine.regions(by)
        charge_scan(len(frame), len(regions), what=f"the lift breakdown by layer {by!r}",
                    hint="break it down by a layer of fewer regions or by h3_RES")
        keys = np.full(len(frame), None, dtype=object)
        lng, lat = frame["lng"].to_numpy(), frame["lat"].to_numpy()
        for rid, geom in zip(regions["region_id"], regions.geometry):
            check_time()
            hit = (keys == None) & shapely.intersects_xy(geom, lng, lat)
            keys[hit] = str(rid)
    else:
        columns = {c.lower(): c for c in store.columns("customers")}
        if by.lower() not in columns or by.lower() in ("customer_id", "lat", "lng", "cell"):
            layers = ", ".join(engine.layers()) or "none"
            raise InvalidInputError(
                f"by {by!r} is not store, h3_RES, a region layer ({layers}) or a customer column; "
                f"columns: {', '.join(sorted(set(columns.values()) - {'customer_id', 'lat', 'lng', 'cell'}))}")
        column = _quote(columns[by.lower()])
        return "kt.key", f"(SELECT customer_id, CAST({column} AS VARCHAR) AS key FROM customers)", None
    name = f"_lift_keys_{uuid.uuid4().hex[:10]}"
    store.con.register(name, pd.DataFrame({"customer_id": frame["customer_id"].to_numpy(dtype=object),
                                           "key": np.asarray(keys, dtype=object)}))
    return "kt.key", name, name
