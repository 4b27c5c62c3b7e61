"""Aggregation per H3 cell and per region, with a k-anonymity floor.

A heatmap is a table of aggregates, never of people. Each row is an H3 cell
(any resolution 0 to 15) or a region of an ingested layer, with the number of
eligible customers in it and one metric:

``count``
    customers;
``sum:COL`` / ``mean:COL`` / ``median:COL``
    of a numeric customer column (nulls are ignored, as in SQL and pandas);
``penetration:LAYER:COL``
    customers divided by the population column ``COL`` of region layer
    ``LAYER``, spread over cells (or other regions) by area.

**The k-anonymity floor.** A cell or region with fewer than ``k_min``
customers (default 10) is left out of the result, and so of every export and
map made from it; for ``sum``/``mean``/``median`` a row also needs
``k_min`` non-null values. The result says how many cells (or regions) and
customers were left out. The floor can only be switched off on purpose,
with ``allow_no_floor=True`` (CLI ``--no-privacy-floor``).

Opted-out and suppressed customers never count (see :mod:`geotarget.audience.privacy`).

**Which cell a customer counts in.** ``h3.latlng_to_cell(lat, lng, res)``,
at any resolution 0 to 15: the cell h3-py, h3pandas, DuckDB's h3 extension
and BigQuery give, so counts reconcile with theirs exactly, and every
customer lies inside the hexagon drawn for its cell. (H3 children overhang
their parents, so counts need not roll up: a res-8 count is not always the
sum of its res-9 children's.)

**How it stays fast.** Counts over the whole base or an audience come from
the in-memory customer snapshot: the first heatmap at a resolution finds
every customer's cell at that resolution (the ancestor of its res-15 cell,
checked, and the Rust indexer for the doubtful sixth,
:mod:`geotarget.geo.incircle`) and keeps the result beside the snapshot as
dense codes with their h3 names (:mod:`geotarget.audience.cellcodes`); later
heatmaps at that resolution are one ``numpy.bincount`` over runs of equal
codes and one frame built from numpy arrays. Metrics over a column read the
coordinates and values from DuckDB and index them with the Rust indexer.
"""

from __future__ import annotations

import contextlib
import json
import re
import uuid

import numpy as np
import pandas as pd

from geotarget.audience.budget import charge_cells, charge_scan, check_time
from geotarget.errors import ColumnNotFoundError, InvalidInputError
from geotarget.geo.cells import cells_to_str, latlng_to_cells
from geotarget.maps.metric import DEFAULT_K_MIN, RES_RANGE, SHARE_KINDS, Metric, check_k_min, parse_metric
from geotarget.maps.result import HeatmapResult
from geotarget.store.validation import _quote

__all__ = [
    "DEFAULT_K_MIN",
    "HeatmapResult",
    "Metric",
    "check_k_min",
    "heatmap",
    "parse_metric",
]

_NUMERIC = re.compile(r"^(TINYINT|SMALLINT|INTEGER|BIGINT|HUGEINT|UTINYINT|USMALLINT|UINTEGER|UBIGINT|UHUGEINT"
                      r"|FLOAT|DOUBLE|REAL|DECIMAL.*)$")


# -- aggregation ---------------------------------------------------------------------------------------------


def _eligible(eng) -> str:
    from geotarget.audience.privacy import eligible_customers_sql

    return eligible_customers_sql(eng.store.columns("customers"))


def _audience_ids(audience) -> pd.DataFrame:
    """Distinct customer ids of an Audience, a DataFrame with ``customer_id``, or an iterable of ids."""
    if hasattr(audience, "to_pandas"):
        audience = audience.to_pandas()
    if isinstance(audience, pd.DataFrame):
        if "customer_id" not in audience.columns:
            raise ColumnNotFoundError("an audience frame needs a customer_id column")
        ids = audience["customer_id"]
    else:
        ids = pd.Series(list(audience))
    return pd.DataFrame({"customer_id": ids.astype(str).drop_duplicates().to_numpy()})


@contextlib.contextmanager
def _source(eng, audience, exclude: bool = False):
    """FROM/WHERE text selecting eligible customers in ``audience`` (or, with ``exclude``, outside it)."""
    where = _eligible(eng)
    if audience is None:
        yield f"FROM customers WHERE {where}"
        return
    import pyarrow as pa

    con = eng.store.con
    name = f"_gt_audience_{uuid.uuid4().hex}"
    if hasattr(audience, "positions") and hasattr(audience, "_index"):  # an Audience: its ids are distinct
        ids = pa.table({"customer_id": audience._index.take_ids(audience.positions)})
    else:
        ids = pa.Table.from_pandas(_audience_ids(audience), preserve_index=False)
    con.register(name, ids)
    try:
        member = "NOT IN" if exclude else "IN"
        yield f"FROM customers WHERE {where} AND customer_id {member} (SELECT customer_id FROM {name})"
    finally:
        con.unregister(name)


def _value_column(eng, metric: Metric) -> str | None:
    """Validate the metric's customer column and return it quoted (None for count/penetration)."""
    if metric.kind in ("count", "penetration"):
        return None
    cols = eng.store.columns("customers")
    numeric = sorted(c for c, t in cols.items() if _NUMERIC.match(t) and c != "cell")
    if metric.column not in cols:
        raise ColumnNotFoundError(
            f"customers have no column {metric.column!r}; numeric columns: {', '.join(numeric) or 'none'}")
    if metric.column not in numeric:
        raise InvalidInputError(
            f"column {metric.column!r} is {cols[metric.column]}, not numeric; numeric columns: "
            f"{', '.join(numeric) or 'none'}")
    return _quote(metric.column)


def _value_sql(metric: Metric, col: str | None) -> str:
    if col is None:
        return ""
    fn = {"sum": "sum", "mean": "avg", "median": "median"}[metric.kind]
    return f", count({col}) AS n_values, {fn}(CAST({col} AS DOUBLE)) AS value"


def _check_res(res) -> int:
    if isinstance(res, bool) or not isinstance(res, (int, np.integer)) or not RES_RANGE[0] <= res <= RES_RANGE[1]:
        raise InvalidInputError(f"heatmap resolution must be an integer in [{RES_RANGE[0]}, {RES_RANGE[1]}], "
                                f"got {res!r}")
    return int(res)


def _population(eng, metric: Metric):
    """(polygons, population) of the metric's layer, validated."""
    gdf = eng.regions(metric.layer)
    props = pd.DataFrame([json.loads(p) if p else {} for p in gdf["properties"]])
    if metric.column not in props.columns:
        raise ColumnNotFoundError(f"layer {metric.layer!r} has no column {metric.column!r}; columns: "
                                  f"{', '.join(map(str, props.columns)) or 'none'}")
    pop = pd.to_numeric(props[metric.column], errors="coerce")
    if pop.isna().all():
        raise InvalidInputError(f"column {metric.column!r} of layer {metric.layer!r} holds no numbers")
    return np.asarray(gdf.geometry, dtype=object), pop.fillna(0.0).to_numpy(dtype="float64")


def _floor_mask(customers: np.ndarray, n_values: np.ndarray | None, k_min: int) -> np.ndarray:
    """The k-anonymity floor: which rows hold at least ``k_min`` customers (and values, for a value metric)."""
    keep = customers >= k_min
    if n_values is not None:
        keep &= n_values >= k_min
    return keep


def _floor(df: pd.DataFrame, k_min: int) -> tuple[pd.DataFrame, int, int]:
    """Rows meeting the floor, and (rows, customers) left out."""
    customers = df["customers"].to_numpy()
    keep = _floor_mask(customers, df["n_values"].to_numpy() if "n_values" in df.columns else None, k_min)
    shown = df.loc[keep].drop(columns=["n_values"], errors="ignore")
    return shown, int(keep.size - keep.sum()), int(customers[~keep].sum())


def _finish(shown: pd.DataFrame, metric: Metric, population) -> pd.DataFrame:
    if metric.kind == "count":
        shown["value"] = shown["customers"].astype("float64")
    elif metric.kind == "penetration":
        shown["population"] = np.round(population, 3)
        with np.errstate(divide="ignore", invalid="ignore"):
            shown["value"] = np.where(population > 0, shown["customers"] / population, np.nan)
    return shown.reset_index(drop=True)


def _counts_from_index(eng, res: int, audience, exclude: bool) -> dict | None:
    """Customers per cell straight from the in-memory snapshot, or None when it cannot answer.

    The snapshot holds exactly the eligible customers; their standard cells at
    ``res`` are kept beside it as dense codes (:mod:`geotarget.audience.cellcodes`),
    so a count is one ``bincount``. Returns numpy columns ``cell``, ``h3``, ``customers``.
    """
    from geotarget.audience.audience import Audience
    from geotarget.audience.cellcodes import cell_codes

    index = eng._index_cache.get()
    positions = None
    if audience is not None:
        if not (isinstance(audience, Audience) and audience._index is index):
            return None
        positions = audience.positions
    charge_scan(len(index), what=f"the heatmap at res {res}")
    codes = cell_codes(index, res)
    if exclude and positions is not None:  # everyone's counts less the audience's: only the audience is read
        counts = codes.counts() - codes.counts(positions)
    else:
        counts = codes.counts(positions)
    shown = np.flatnonzero(counts) if positions is not None else slice(None)  # every cell holds someone
    return {"cell": codes.cells[shown], "h3": codes.names[shown], "customers": counts[shown].astype("int64")}


def _values_from_index(eng, res: int, metric: Metric, audience, values: np.ndarray) -> dict | None:
    """Customers and the metric per cell from the snapshot: ``values`` holds the column for each of its customers.

    ``values`` is aligned with the snapshot of ``audience`` (NaN for null);
    the cells are the snapshot's kept cell codes, so nothing is indexed again.
    The same columns as :func:`_counts_from_points`.
    """
    from geotarget.audience.audience import Audience
    from geotarget.audience.cellcodes import cell_codes

    index = eng._index_cache.get()
    if not (isinstance(audience, Audience) and audience._index is index) or values.size != len(index):
        return None
    codes = cell_codes(index, res)
    code = codes.codes[audience.positions]
    v = values[audience.positions]
    has = ~np.isnan(v)
    size = codes.cells.size
    customers = np.bincount(code, minlength=size)
    n_values = np.bincount(code[has], minlength=size)
    if metric.kind == "median":
        med = pd.Series(v[has]).groupby(code[has]).median()
        value = np.full(size, np.nan)
        value[med.index.to_numpy()] = med.to_numpy(dtype="float64")
    else:
        total = np.bincount(code[has], weights=v[has], minlength=size)
        with np.errstate(divide="ignore", invalid="ignore"):
            value = np.where(n_values > 0, total if metric.kind == "sum" else total / n_values, np.nan)
    shown = np.flatnonzero(customers)
    return {"cell": codes.cells[shown], "h3": codes.names[shown], "customers": customers[shown].astype("int64"),
            "n_values": n_values[shown].astype("int64"), "value": value[shown]}


_AGG = {"sum": "sum", "mean": "mean", "median": "median"}


def _counts_from_points(eng, res: int, metric: Metric, col: str | None, audience, exclude: bool) -> dict:
    """Customers (and the metric's values) per standard cell, from the customers' coordinates."""
    value_sql = f", CAST({col} AS DOUBLE) AS v" if col else ""
    with _source(eng, audience, exclude) as source:
        pts = eng.store.frame(f"SELECT lat, lng{value_sql} {source}")
    charge_scan(len(pts), what=f"the heatmap at res {res}")
    cells = latlng_to_cells(pts["lat"].to_numpy(), pts["lng"].to_numpy(), res)
    if not col:
        distinct, counts = np.unique(cells, return_counts=True)
        return {"cell": distinct, "customers": counts.astype("int64")}
    grouped = pd.DataFrame({"cell": cells, "v": pts["v"].to_numpy(dtype="float64")}).groupby("cell", sort=True)["v"]
    value = grouped.sum(min_count=1) if metric.kind == "sum" else grouped.agg(_AGG[metric.kind])
    return {"cell": value.index.to_numpy(dtype="uint64"), "customers": grouped.size().to_numpy(dtype="int64"),
            "n_values": grouped.count().to_numpy(dtype="int64"), "value": value.to_numpy(dtype="float64")}


def aggregate_cells(eng, res: int, metric: Metric, *, audience=None, exclude_audience: bool = False,
                    k_min: int = DEFAULT_K_MIN, index_values: np.ndarray | None = None) -> HeatmapResult:
    """Aggregate eligible customers per standard H3 cell at ``res`` (``k_min`` already checked).

    A customer counts in ``h3.latlng_to_cell(lat, lng, res)``. With
    ``exclude_audience`` the customers outside ``audience`` are aggregated.
    ``index_values``, the metric's column for every customer of the current
    snapshot (NaN for null), lets an Audience of that snapshot be aggregated
    there instead of in DuckDB. Columns stay numpy arrays until the one
    frame of the result is made.
    """
    res = _check_res(res)
    if metric.kind in SHARE_KINDS:
        return _share(eng, metric, audience, k_min, res=res)
    col = _value_column(eng, metric)
    cols = _counts_from_index(eng, res, audience, exclude_audience) if col is None else None
    if cols is None and col is not None and index_values is not None and not exclude_audience:
        cols = _values_from_index(eng, res, metric, audience, index_values)
    if cols is None:
        cols = _counts_from_points(eng, res, metric, col, audience, exclude_audience)
    customers = cols["customers"]
    charge_cells(len(customers), what=f"the heatmap at res {res}", field="res",
                 hint="ask for a coarser res, or a heatmap per region (region_layer)")
    total = int(customers.sum())
    # -- the k-anonymity floor --
    keep = _floor_mask(customers, cols.get("n_values"), k_min)
    n_cells, n_customers = int(keep.size - keep.sum()), int(customers[~keep].sum())
    cells = np.asarray(cols["cell"][keep], dtype="uint64")
    shown = {"cell": cells, "h3": cols["h3"][keep] if "h3" in cols else cells_to_str(cells),
             "customers": customers[keep]}
    if metric.kind == "count":
        shown["value"] = shown["customers"].astype("float64")
    elif "value" in cols:
        shown["value"] = cols["value"][keep]
    frame = pd.DataFrame(shown)
    population = None
    if metric.kind == "penetration":
        from geotarget.maps.geometry import apportion, cells_to_polygons

        polys, pop = _population(eng, metric)
        population = apportion(polys, pop, cells_to_polygons(frame["cell"]))
        frame = _finish(frame, metric, population)
    return HeatmapResult(frame, metric, k_min, res=res, suppressed_cells=n_cells,
                         suppressed_customers=n_customers, total_customers=total,
                         hidden=np.asarray(cols["cell"][~keep], dtype="uint64"))


def _share(eng, metric: Metric, audience, k_min: int, *, res: int | None = None, layer: str | None = None):
    """A segment's share or index per cell or region, floored on both counts (see :mod:`geotarget.maps.share`)."""
    from geotarget.maps.share import check_segment, share_result

    check_segment(audience, metric)
    count = Metric("count")
    if layer is None:
        base = aggregate_cells(eng, res, count, k_min=1)
        seg = aggregate_cells(eng, res, count, audience=audience, k_min=1)
    else:
        base = aggregate_regions(eng, layer, count, k_min=1)
        seg = aggregate_regions(eng, layer, count, audience=audience, k_min=1)
    return share_result(base, seg, metric, k_min)


def aggregate_regions(eng, layer: str, metric: Metric, *, audience=None,
                      k_min: int = DEFAULT_K_MIN) -> HeatmapResult:
    """Aggregate eligible customers per region of ``layer`` (a floor already validated)."""
    from geotarget.geo.regions import assign_regions

    if metric.kind in SHARE_KINDS:
        return _share(eng, metric, audience, k_min, layer=layer)

    regions = eng.regions(layer)
    charge_cells(len(regions), what=f"the heatmap over layer {layer!r}", field="region_layer",
                 hint="use a layer of fewer regions, or a heatmap per H3 cell (res)")
    col = _value_column(eng, metric)
    polys = np.asarray(regions.geometry, dtype=object)
    value_sql = f", CAST({col} AS DOUBLE) AS v" if col else ""
    with _source(eng, audience) as source:
        pts = eng.store.frame(f"SELECT lat, lng{value_sql} {source}")
    charge_scan(len(pts), what=f"the heatmap over layer {layer!r}", hint="use a smaller layer or a coarser res")
    # a point on a shared border, or in two overlapping regions, counts once (see geotarget.geo.regions)
    which = assign_regions(polys, pts["lat"].to_numpy(dtype="float64"), pts["lng"].to_numpy(dtype="float64"))
    placed = np.flatnonzero(which >= 0)
    assigned = pd.DataFrame({"r": which[placed]})
    check_time()
    if col:
        assigned["v"] = pts["v"].to_numpy()[placed]
    grouped = assigned.groupby("r")
    df = pd.DataFrame({"customers": grouped.size()})
    if col:
        df["n_values"] = grouped["v"].count()
        df["value"] = grouped["v"].agg(metric.kind)
    shown, n_regions, n_customers = _floor(df, k_min)
    rows = shown.index.to_numpy()
    hidden = polys[np.setdiff1d(df.index.to_numpy(), rows)]
    shown.insert(0, "region_id", regions["region_id"].to_numpy()[rows])
    shown.insert(1, "name", regions["name"].to_numpy()[rows])
    population = None
    if metric.kind == "penetration":
        from geotarget.maps.geometry import apportion

        src, pop = _population(eng, metric)
        population = pop[rows] if metric.layer == layer else apportion(src, pop, polys[rows])
    return HeatmapResult(_finish(shown, metric, population), metric, k_min, layer=layer,
                         suppressed_regions=n_regions, suppressed_customers=n_customers, total_customers=len(pts),
                         unassigned_customers=len(pts) - len(placed), geometry=polys[rows], hidden=hidden)


def heatmap(eng, res: int = 8, metric: str | Metric = "count", *, audience=None, region_layer: str | None = None,
            k_min: int | None = DEFAULT_K_MIN, allow_no_floor: bool = False) -> HeatmapResult:
    """Aggregate customers per H3 cell or per region, above a k-anonymity floor.

    Parameters
    ----------
    eng : Engine
    res : int, default 8
        H3 resolution, 0 to 15 (ignored with ``region_layer``).
    metric : str or Metric, default "count"
        ``count``, ``sum:COL``, ``mean:COL``, ``median:COL``, ``penetration:LAYER:COL``,
        ``share`` or ``index`` (the audience as a segment of all customers).
    audience : Audience, DataFrame or iterable of ids, optional
        Aggregate only these customers (still only the eligible ones); the
        segment for ``share`` and ``index``.
    region_layer : str, optional
        Aggregate per region of this ingested layer instead of per cell.
    k_min : int, default 10
        Rows with fewer customers (or values) are left out.
    allow_no_floor : bool, default False
        Must be True for a ``k_min`` below 2, which turns the floor off.

    Returns
    -------
    HeatmapResult

    Examples
    --------
    >>> import geotarget, pandas as pd
    >>> eng = geotarget.open(":memory:")
    >>> df = pd.DataFrame({"customer_id": [f"c{i}" for i in range(12)], "lat": [40.758] * 12,
    ...                    "lng": [-73.9855] * 11 + [-73.90], "spend": range(12)})
    >>> _ = eng.ingest_customers(df)
    >>> hm = heatmap(eng, 8, "mean:spend", k_min=5)
    >>> hm.cells[["h3", "customers", "value"]].values.tolist(), hm.suppressed_cells, hm.suppressed_customers
    ([['882a100d67fffff', 11, 5.0]], 1, 1)
    """
    k = check_k_min(k_min, allow_no_floor)
    metric = parse_metric(metric)
    if region_layer is not None:
        return aggregate_regions(eng, region_layer, metric, audience=audience, k_min=k)
    return aggregate_cells(eng, res, metric, audience=audience, k_min=k)
