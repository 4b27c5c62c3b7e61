"""Customer-derived trade areas: the smallest set of cells holding a share of a store's customers.

**Assignment.** Each eligible customer belongs to one store: the one named
in a ``home_store`` column, or else the nearest store by WGS84 geodesic
distance (:func:`nearest_store`).

**Order.** For each store, the standard res-``res`` cells of its customers
(``h3.latlng_to_cell(lat, lng, res)``) are taken in order of geodesic
distance from the store to the cell's centre (ties by cell id), until the
cells hold at least ``share`` of the store's customers. The area is the
shortest such prefix: without its farthest cell it would hold less than
``share``.

**Output.** :class:`TradeAreas`: the cells of every area, and one polygon per
store and share (the union of its cells, optionally smoothed) carrying area,
customers, population (a region layer spread over the cells by area) and
penetration (customers per person).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd

from ..errors import InvalidInputError, NotFoundError
from . import inputs
from .nearest import nearest_store

__all__ = ["TradeAreas", "trade_area_cells", "trade_areas"]

#: Largest (stores x cells) key space counted with a dense bincount rather than a sort.
_DENSE_PAIRS = 50_000_000


def trade_area_cells(store_index, cells, store_lat, store_lng, shares=(0.5, 0.7, 0.9)) -> pd.DataFrame:
    """The cells of each store's trade areas, from each customer's store and cell (the array core).

    Parameters
    ----------
    store_index : array-like of int
        The store (position in ``store_lat``) of each customer.
    cells : array-like of uint64
        The H3 cell of each customer (all at one resolution).
    store_lat, store_lng : array-like of float
    shares : sequence of float
        Shares of customers, each in (0, 1].

    Returns
    -------
    pandas.DataFrame
        One row per (store, cell) in distance order: ``store``, ``cell``,
        ``distance_m``, ``customers``, ``cum_customers``, ``store_customers``,
        then one boolean column per share (``in_70`` for 0.7: whether the cell
        is in that area).

    Examples
    --------
    >>> import h3
    >>> cells = [h3.str_to_int(h3.latlng_to_cell(40.75 + d, -73.99, 8)) for d in (0.0, 0.0, 0.01, 0.02)]
    >>> frame = trade_area_cells([0, 0, 0, 0], cells, [40.75], [-73.99], shares=[0.5])
    >>> frame["customers"].tolist(), int(frame["in_50"].sum())
    ([2, 1, 1], 1)
    """
    shares = _check_shares(shares)
    sidx = np.asarray(store_index, dtype="int64").ravel()
    cells = np.asarray(cells, dtype="uint64").ravel()
    if sidx.size != cells.size:
        raise InvalidInputError(f"store_index has {sidx.size} values but cells has {cells.size}; give one each")
    slat = np.asarray(store_lat, dtype="float64")
    slng = np.asarray(store_lng, dtype="float64")
    if sidx.size and (sidx.min() < 0 or sidx.max() >= slat.size):
        raise InvalidInputError(f"store_index must hold store positions in [0, {slat.size - 1}], "
                                f"got {int(sidx.min())}..{int(sidx.max())}")
    # customers per (store, cell): one key per pair, counted by bincount when the key space is small, else sorted
    ucells, cinv = np.unique(cells, return_inverse=True)
    n_cells = max(ucells.size, 1)
    key = sidx * n_cells + cinv.astype("int64")
    if slat.size * n_cells <= _DENSE_PAIRS:
        tally = np.bincount(key, minlength=slat.size * n_cells)
        pair = np.flatnonzero(tally)
        count = tally[pair].astype("int64")
    else:
        pair, count = np.unique(key, return_counts=True)
    store, cpos = pair // n_cells, pair % n_cells
    cell = ucells[cpos]
    from ..geo.geodesy import geodesic_distance_m

    clat, clng = inputs.cell_centres(ucells)
    dist = geodesic_distance_m(slat[store], slng[store], clat[cpos], clng[cpos]) if store.size else np.zeros(0)
    order = np.lexsort((cell, dist, store))
    store, cell, dist, count = store[order], cell[order], dist[order], count[order]
    cum = np.cumsum(count)
    group = np.ones(store.size, dtype=bool)
    group[1:] = store[1:] != store[:-1]
    gstart = np.flatnonzero(group)
    glen = np.diff(np.append(gstart, store.size))
    offset = np.repeat(np.concatenate(([0], cum[gstart[1:] - 1])) if gstart.size else np.zeros(0, "int64"), glen)
    cum_in = cum - offset
    total = np.repeat(cum_in[np.append(gstart[1:] - 1, store.size - 1)] if gstart.size else np.zeros(0, "int64"),
                      glen)
    out = pd.DataFrame({"store": store, "cell": cell, "distance_m": dist, "customers": count,
                        "cum_customers": cum_in, "store_customers": total})
    before = cum_in - count
    for s in shares:
        need = np.ceil(np.round(s * total, 9))  # customers the area must hold, as a whole number
        out[_share_col(s)] = before < need
    return out


def _share_col(share: float) -> str:
    return f"in_{round(share * 100, 6):g}"


def _check_shares(shares) -> list[float]:
    vals = [shares] if isinstance(shares, (int, float, np.floating)) else list(shares)
    if not vals:
        raise InvalidInputError("give at least one share, e.g. 0.7")
    out = []
    for s in vals:
        if isinstance(s, bool) or not isinstance(s, (int, float, np.floating, np.integer)) or not 0 < s <= 1:
            raise InvalidInputError(f"a trade-area share must be in (0, 1], got {s!r}; e.g. 0.7 for 70 %")
        out.append(float(s))
    return sorted(dict.fromkeys(out))


@dataclass
class TradeAreas:
    """Trade areas of stores at one or more shares.

    Attributes
    ----------
    cells : pandas.DataFrame
        Every (store, cell) of the stores' customers in distance order, with
        ``store_id``, ``h3``, ``distance_m``, ``customers``, ``cum_customers``,
        ``store_customers`` and one ``in_XX`` column per share.
    shares : list of float
    res : int
    """

    cells: pd.DataFrame
    stores: pd.DataFrame
    shares: list
    res: int
    assignment: str
    population: pd.Series | None = None
    smooth: bool = False
    _areas: object = field(default=None, repr=False)

    def __repr__(self) -> str:
        return (f"<TradeAreas {len(self.stores)} store(s) at shares {', '.join(f'{s:g}' for s in self.shares)}, "
                f"res {self.res}, assignment={self.assignment}>")

    def area_cells(self, store_id: str, share: float) -> np.ndarray:
        """The cells (uint64, distance order) of one store's area at ``share``."""
        col = _share_col(float(share))
        if col not in self.cells.columns:
            raise NotFoundError(f"share {share!r} was not computed; shares: {', '.join(map(str, self.shares))}")
        rows = self.cells[(self.cells["store_id"] == str(store_id)) & self.cells[col]]
        return rows["cell"].to_numpy(dtype="uint64")

    @property
    def areas(self):
        """One polygon per store and share (GeoDataFrame, EPSG:4326), built on first use.

        Columns: ``store_id``, ``share``, ``cells``, ``customers``,
        ``store_customers``, ``customer_share``, ``max_distance_m``,
        ``area_km2``, ``population`` and ``penetration`` (NaN without a region
        layer), ``geometry``.
        """
        if self._areas is None:
            self._areas = _build_areas(self)
        return self._areas

    def summary(self) -> str:
        """One line per share: stores, median cells and median area."""
        a = self.areas
        parts = [f"{s:.0%}: median {a.loc[a['share'] == s, 'cells'].median():.0f} cells, "
                 f"{a.loc[a['share'] == s, 'area_km2'].median():.2f} km2" for s in self.shares]
        return f"{len(self.stores)} store(s), res {self.res}; " + "; ".join(parts)

    def shown_areas(self, k_min: int = 10, *, allow_no_floor: bool = False):
        """The polygons holding at least ``k_min`` customers (the k-anonymity floor of every export and map)."""
        from ..maps.metric import check_k_min

        k = check_k_min(k_min, allow_no_floor)
        return self.areas[self.areas["customers"] >= k].reset_index(drop=True)

    def save(self, path: str | Path, *, k_min: int = 10, allow_no_floor: bool = False) -> Path:
        """Write the polygons as GeoJSON (``.geojson``) or GeoParquet (``.parquet``), above the floor."""
        path = Path(path)
        suffix = path.suffix.lower()
        gdf = self.shown_areas(k_min, allow_no_floor=allow_no_floor)
        if suffix in (".geojson", ".json"):
            gdf.to_file(path, driver="GeoJSON")
        elif suffix in (".parquet", ".geoparquet"):
            gdf.to_parquet(path, index=False)
        else:
            raise InvalidInputError(f"cannot write {str(path)!r}: use .geojson or .parquet (GeoParquet)")
        return path

    def to_map(self, **options):
        """Folium map of the areas (one layer per share) and the stores."""
        from .maps import trade_area_map

        return trade_area_map(self, **options)

    def to_png(self, path: str | Path, **options) -> Path:
        """PNG of the areas and the stores."""
        from .maps import trade_area_png

        return trade_area_png(self, Path(path), **options)


def _merge_cells(cells: np.ndarray):
    """The union of H3 cells as one shapely (multi)polygon (lng, lat), merged by H3 itself."""
    import h3
    import shapely

    if cells.size == 0:
        return shapely.Polygon()
    shape = h3.cells_to_h3shape([h3.int_to_str(int(c)) for c in cells.tolist()])
    return shapely.geometry.shape(shape.__geo_interface__)


def _build_areas(ta: TradeAreas):
    import geopandas as gpd
    import shapely
    from pyproj import Transformer

    from ..maps.geometry import equal_area_crs, round_geometry

    rows, geoms = [], []
    # plain arrays, one slice per store (the cells frame is grouped by store, in distance order)
    c = ta.cells
    sid = c["store_id"].astype(str).to_numpy()
    cell_arr = c["cell"].to_numpy(dtype="uint64")
    cust_arr = c["customers"].to_numpy(dtype="int64")
    dist_arr = c["distance_m"].to_numpy(dtype="float64")
    total_arr = c["store_customers"].to_numpy(dtype="int64")
    inside = {s: c[_share_col(s)].to_numpy(dtype=bool) for s in ta.shares}
    pop_arr = ta.population.reindex(cell_arr).fillna(0.0).to_numpy() if ta.population is not None else None
    starts = np.flatnonzero(np.r_[True, sid[1:] != sid[:-1]]) if sid.size else np.zeros(0, dtype=int)
    bounds = dict(zip(sid[starts], zip(starts, np.r_[starts[1:], sid.size])))
    # one equal-area projection for every area: areas are exact in it anywhere; smoothing uses its metres
    crs = equal_area_crs(float(ta.stores["lat"].mean()), float(ta.stores["lng"].mean())) if len(ta.stores) else \
        equal_area_crs(0.0, 0.0)
    to_m = Transformer.from_crs("EPSG:4326", crs, always_xy=True)
    to_deg = Transformer.from_crs(crs, "EPSG:4326", always_xy=True)
    edge_m = 0.0
    if ta.smooth:
        import h3

        edge_m = float(h3.average_hexagon_edge_length(ta.res, unit="m"))
    for store_id in ta.stores["store_id"].astype(str):
        lo, hi = bounds.get(store_id, (0, 0))
        total = int(total_arr[lo]) if hi > lo else 0
        for s in ta.shares:
            pick = np.arange(lo, hi)[inside[s][lo:hi]]
            cells = cell_arr[pick]
            union = _merge_cells(cells)
            merged_m = shapely.transform(union, lambda xy: np.column_stack(to_m.transform(xy[:, 0], xy[:, 1])))
            if ta.smooth and cells.size:
                closed = shapely.buffer(shapely.buffer(merged_m, edge_m, quad_segs=8), -edge_m, quad_segs=8)
                merged_m = shapely.union(closed, merged_m)  # a polygonal closing may shave a corner: keep every cell
                union = shapely.transform(merged_m, lambda xy: np.column_stack(to_deg.transform(xy[:, 0], xy[:, 1])))
            customers = int(cust_arr[pick].sum())
            population = float(pop_arr[pick].sum()) if pop_arr is not None else np.nan
            rows.append({
                "store_id": store_id, "share": s, "cells": int(cells.size), "customers": customers,
                "store_customers": total, "customer_share": customers / total if total else np.nan,
                "max_distance_m": float(dist_arr[pick].max()) if pick.size else 0.0,
                "area_km2": float(shapely.area(merged_m)) / 1e6, "population": population,
                "penetration": customers / population if population and population > 0 else np.nan,
            })
            geoms.append(union)
    columns = ["store_id", "share", "cells", "customers", "store_customers", "customer_share", "max_distance_m",
               "area_km2", "population", "penetration"]
    return gpd.GeoDataFrame(pd.DataFrame(rows, columns=columns),
                            geometry=round_geometry(np.asarray(geoms, dtype=object)), crs="EPSG:4326")


def trade_areas(eng, stores=None, *, share=(0.5, 0.7, 0.9), res: int = 8, home_store_col: str | None = None,
                brand_col: str | None = None, brand: str | None = None, region_layer: str | None = None,
                population_col: str | None = None, smooth: bool = False) -> TradeAreas:
    """Customer-derived trade areas of stores.

    Parameters
    ----------
    eng : Engine
    stores : str or list of str, optional
        Store ids whose areas are wanted (default: every candidate store).
    share : float or sequence of float
        Shares of each store's customers, e.g. 0.7 or (0.5, 0.7, 0.9).
    res : int
        H3 resolution of the cells (5-11).
    home_store_col : str, optional
        Customer column naming each customer's store; without it customers
        belong to their geodesically nearest store.
    brand_col, brand : str, optional
        With both, only stores of ``brand`` take customers (and have areas):
        the others are competitors.
    region_layer, population_col : str, optional
        Population per cell (spread by area) for ``population`` and
        ``penetration``.
    smooth : bool
        Smooth each polygon (a closing by one cell edge), which fills notches
        and pinholes between cells.

    Returns
    -------
    TradeAreas

    Examples
    --------
    >>> import geotarget, pandas as pd
    >>> eng = geotarget.open(":memory:")
    >>> _ = eng.ingest_stores(pd.DataFrame({"store_id": ["S1", "S2", "R1"], "lat": [40.75, 40.70, 40.72],
    ...                                     "lng": [-73.99, -73.95, -73.97], "brand": ["ours", "ours", "rival"]}))
    >>> _ = eng.ingest_customers(pd.DataFrame({"customer_id": ["a", "b", "c"], "lat": [40.751, 40.752, 40.701],
    ...                                        "lng": [-73.99, -73.98, -73.95], "home": ["S1", "S2", "S2"]}))
    >>> ta = trade_areas(eng, share=0.5, brand_col="brand", brand="ours")
    >>> ta.areas[["store_id", "customers", "store_customers"]].values.tolist()
    [['S1', 1, 2], ['S2', 1, 1]]
    """
    shares = _check_shares(share)
    res = inputs.check_res(res)
    if (brand_col is None) != (brand is None):
        raise InvalidInputError("give brand_col and brand together, e.g. brand_col='chain', brand='Jewel-Osco'")
    if (region_layer is None) != (population_col is None):
        raise InvalidInputError("give region_layer and population_col together")
    all_stores = inputs.load_stores(eng, brand_col=brand_col)
    own = all_stores if brand is None else all_stores[all_stores["brand"] == str(brand)].reset_index(drop=True)
    if own.empty:
        raise NotFoundError(f"no store has {brand_col} = {brand!r}; brands: "
                            f"{', '.join(sorted(all_stores['brand'].unique())[:10])}")
    cust = inputs.load_customers(eng, columns=[home_store_col] if home_store_col else [])
    if home_store_col:
        pos = {s: i for i, s in enumerate(own["store_id"])}
        sidx = cust[home_store_col].map(lambda s: pos.get(str(s), -1) if pd.notna(s) else -1).to_numpy("int64")
        keep = sidx >= 0
        cust, sidx = cust.loc[keep], sidx[keep]
        assignment = f"column {home_store_col}"
    else:
        sidx, _ = nearest_store(cust["lat"].to_numpy(), cust["lng"].to_numpy(), own["lat"], own["lng"],
                                with_distance=False)
        assignment = "nearest store (geodesic)"
    cells = inputs.customer_cells(cust["lat"].to_numpy(), cust["lng"].to_numpy(), res)
    frame = trade_area_cells(sidx, cells, own["lat"].to_numpy(), own["lng"].to_numpy(), shares)
    frame.insert(0, "store_id", own["store_id"].to_numpy()[frame.pop("store").to_numpy()])
    frame.insert(2, "h3", inputs.cell_strings(frame["cell"]))
    if stores is not None:
        wanted = [stores] if isinstance(stores, str) else [str(s) for s in stores]
        if not wanted:
            raise InvalidInputError("stores is empty; name at least one store id, or leave it out for every store")
        missing = [s for s in wanted if s not in set(own["store_id"])]
        if missing:
            raise NotFoundError(f"store {missing[0]!r} not found among the stores that take customers; "
                                f"e.g. {', '.join(own['store_id'][:5])}")
        own = own[own["store_id"].isin(wanted)].reset_index(drop=True)
        frame = frame[frame["store_id"].isin(wanted)].reset_index(drop=True)
    population = None
    if region_layer is not None:
        geoms, pops, _ = inputs.region_population(eng, region_layer, population_col)
        ucells = np.unique(frame["cell"].to_numpy(dtype="uint64"))
        population = pd.Series(inputs.cell_population(ucells, geoms, pops), index=ucells)
    return TradeAreas(frame, own, shares, res, assignment, population, smooth)
