"""Market share and penetration, per trade area and per region.

**Penetration** is observed customers per person: the customers who live in
an area (exactly, point in polygon for regions; by their standard cell for
trade areas) divided by the area's population.

**Market share** is the Huff model's expectation: of the demand living in
the area, the share expected to patronise a store or a brand,
:math:`\\sum_i w_i P_{i,b} / \\sum_i w_i` over the area's cells. A cell
that straddles a region's edge counts with the fraction of its area inside
(its demand taken as spread evenly over the cell); with a population
column, each piece of a region weighs its share of the region's population
(the region's population spread over it by area), so the region's demand is
its population wherever the model's cells cover it.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from ..errors import InvalidInputError
from . import inputs
from .areas import TradeAreas
from .huff import HuffResult

__all__ = ["region_shares", "trade_area_shares"]


def trade_area_shares(areas: TradeAreas, model: HuffResult) -> pd.DataFrame:
    """Per store and share: customers, population, penetration, and Huff share of the store and its brand.

    The area's cells are looked up in ``model`` (same resolution); their
    demand weighs the cells. Columns: ``store_id``, ``share``, ``customers``,
    ``population``, ``penetration``, ``demand``, ``store_share``,
    ``brand``, ``brand_share``, ``missing_cells`` (area cells the model does
    not hold).

    Examples
    --------
    >>> import geotarget, pandas as pd
    >>> eng = geotarget.open(":memory:")
    >>> _ = eng.ingest_stores(pd.DataFrame({"store_id": ["S1", "S2", "R1"], "lat": [40.75, 40.70, 40.72],
    ...                                     "lng": [-73.99, -73.95, -73.97], "brand": ["ours", "ours", "rival"]}))
    >>> _ = eng.ingest_customers(pd.DataFrame({"customer_id": ["a", "b", "c"], "lat": [40.751, 40.752, 40.701],
    ...                                        "lng": [-73.99, -73.98, -73.95], "home": ["S1", "S2", "S2"]}))
    >>> from geotarget.trade import huff, trade_areas
    >>> ta = trade_areas(eng, share=1.0, brand_col="brand", brand="ours")
    >>> trade_area_shares(ta, huff(eng, brand_col="brand"))["missing_cells"].tolist()
    [0, 0]
    """
    if model.res != areas.res:
        raise InvalidInputError(f"the trade areas are at res {areas.res} but the Huff model at res {model.res}; "
                                "compute both at one resolution")
    pos = pd.Series(np.arange(len(model.cells)), index=model.cells["cell"].to_numpy(dtype="uint64"))
    ids = model.stores["store_id"].astype(str).tolist()
    brands = model.stores["brand"].astype(str).to_numpy()
    demand = model.cells["demand"].to_numpy(dtype="float64")
    polys = areas.areas.set_index(["store_id", "share"])
    rows = []
    for sid in areas.stores["store_id"]:
        if sid not in ids:
            raise InvalidInputError(f"store {sid!r} is not in the Huff model; build both from one database")
        j = ids.index(sid)
        own = brands == brands[j]
        for s in areas.shares:
            cells = areas.area_cells(sid, s)
            at = pos.reindex(cells).dropna().to_numpy(dtype="int64")
            w = demand[at]
            tot = float(w.sum())
            p = model.probabilities[at]
            poly = polys.loc[(sid, s)]
            rows.append({
                "store_id": sid, "share": s, "customers": int(poly["customers"]),
                "population": float(poly["population"]), "penetration": float(poly["penetration"]),
                "demand": tot, "store_share": float(w @ p[:, j]) / tot if tot > 0 else np.nan,
                "brand": brands[j], "brand_share": float(w @ p[:, own].sum(axis=1)) / tot if tot > 0 else np.nan,
                "missing_cells": int(cells.size - at.size),
            })
    return pd.DataFrame(rows)


def _cell_region_pieces(cells, region_geoms):
    """For overlapping (cell, region) pairs: positions, and the shared area as a fraction of the cell and of the region."""
    import shapely
    from pyproj import Transformer

    from ..maps.geometry import cells_to_polygons, equal_area_crs

    hexes = cells_to_polygons(cells)
    regions = np.asarray(region_geoms, dtype=object)
    if len(hexes) == 0 or len(regions) == 0:
        empty = np.zeros(0, dtype="int64")
        return empty, empty, np.zeros(0), np.zeros(0)
    minx, miny, maxx, maxy = shapely.total_bounds(regions)
    to_m = Transformer.from_crs("EPSG:4326", equal_area_crs((miny + maxy) / 2, (minx + maxx) / 2), always_xy=True)

    def project(geoms):
        return shapely.transform(geoms, lambda xy: np.column_stack(to_m.transform(xy[:, 0], xy[:, 1])))

    hex_m, reg_m = project(hexes), project(regions)
    ci, ri = shapely.STRtree(reg_m).query(hex_m, predicate="intersects")
    shared = shapely.area(shapely.intersection(hex_m[ci], reg_m[ri]))
    reg_area = shapely.area(reg_m)[ri]
    with np.errstate(divide="ignore", invalid="ignore"):
        of_region = np.where(reg_area > 0, shared / reg_area, 0.0)
    return ci, ri, shared / shapely.area(hex_m[ci]), of_region


def region_shares(eng, model: HuffResult, region_layer: str, *, population_col: str | None = None) -> pd.DataFrame:
    """Per region and brand: population, customers, penetration, demand and the brand's Huff share.

    Parameters
    ----------
    eng : Engine
    model : HuffResult
    region_layer : str
        The regions (e.g. community areas).
    population_col : str, optional
        The layer's population property, for ``population`` and
        ``penetration`` (NaN without it).

    Returns
    -------
    pandas.DataFrame
        One row per (region, brand): ``region_id``, ``name``, ``population``,
        ``customers``, ``penetration``, ``demand``, ``brand``,
        ``expected_demand``, ``share``.

    Examples
    --------
    >>> import geotarget, pandas as pd
    >>> eng = geotarget.open(":memory:")
    >>> _ = eng.ingest_stores(pd.DataFrame({"store_id": ["S1", "S2", "R1"], "lat": [40.75, 40.70, 40.72],
    ...                                     "lng": [-73.99, -73.95, -73.97], "brand": ["ours", "ours", "rival"]}))
    >>> _ = eng.ingest_customers(pd.DataFrame({"customer_id": ["a", "b", "c"], "lat": [40.751, 40.752, 40.701],
    ...                                        "lng": [-73.99, -73.98, -73.95], "home": ["S1", "S2", "S2"]}))
    >>> import shapely, geopandas as gpd
    >>> from geotarget.trade import huff
    >>> _ = eng.ingest_regions(gpd.GeoDataFrame({"name": ["box"]}, geometry=[shapely.box(-74.1, 40.6, -73.9, 40.8)],
    ...                                         crs=4326), layer="l")
    >>> shares = region_shares(eng, huff(eng, brand_col="brand"), "l")
    >>> shares["brand"].tolist(), round(float(shares["share"].sum()), 9)
    (['ours', 'rival'], 1.0)
    """
    import shapely

    gdf = eng.regions(region_layer)
    geoms = np.asarray(gdf.geometry, dtype=object)
    if population_col is not None:
        _, pop, _ = inputs.region_population(eng, region_layer, population_col)
    else:
        pop = np.full(len(geoms), np.nan)
    cust = inputs.load_customers(eng)
    customers = np.zeros(len(geoms), dtype="int64")
    if len(cust):
        points = shapely.points(cust["lng"].to_numpy(), cust["lat"].to_numpy())
        _, ri = shapely.STRtree(geoms).query(points, predicate="intersects")  # a point on an edge counts inside
        customers = np.bincount(ri, minlength=len(geoms))
    ci, ri, of_cell, of_region = _cell_region_pieces(model.cells["cell"].to_numpy(dtype="uint64"), geoms)
    if population_col is not None:  # the people of the region in each piece
        w = pop[ri] * of_region
    else:  # the cell's demand, taken as spread evenly over the cell
        w = model.cells["demand"].to_numpy(dtype="float64")[ci] * of_cell
    region_demand = np.bincount(ri, weights=w, minlength=len(geoms))
    brands = model.stores["brand"].astype(str).to_numpy()
    rows = []
    for b in sorted(set(brands)):
        pb = model.probabilities[:, brands == b].sum(axis=1)
        expected = np.bincount(ri, weights=w * pb[ci], minlength=len(geoms))
        with np.errstate(divide="ignore", invalid="ignore"):
            share = np.where(region_demand > 0, expected / region_demand, np.nan)
            pen = np.where(pop > 0, customers / pop, np.nan)
        rows.append(pd.DataFrame({
            "region_id": gdf["region_id"].to_numpy(), "name": gdf["name"].to_numpy(), "population": pop,
            "customers": customers, "penetration": pen, "demand": region_demand, "brand": b,
            "expected_demand": expected, "share": share,
        }))
    return pd.concat(rows, ignore_index=True).sort_values(["region_id", "brand"], kind="mergesort") \
        .reset_index(drop=True)
