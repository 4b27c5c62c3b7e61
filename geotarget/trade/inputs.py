"""What trade-area analysis reads from a database: stores, customers, cells and population.

Every cell here is the *standard* H3 cell of a point,
``h3.latlng_to_cell(lat, lng, res)``, computed from the point's latitude and
longitude (never the parent of a stored finer cell: H3 children overhang
their parents).
"""

from __future__ import annotations

import json

import numpy as np
import pandas as pd

from ..audience.budget import charge_cells, charge_scan
from ..errors import ColumnNotFoundError, InvalidInputError, NotFoundError
from ..geo.cells import cells_to_str, latlng_to_cells
from ..store.validation import _quote as quote_identifier

__all__: list[str] = []  # internal to geotarget.trade: its helpers are not public API

#: Resolutions trade areas and Huff models may be computed at.
RES_RANGE = (5, 11)


def check_res(res) -> int:
    """Validate an H3 resolution for trade-area work (5 to 11)."""
    if isinstance(res, bool) or not isinstance(res, (int, np.integer)) or not RES_RANGE[0] <= res <= RES_RANGE[1]:
        raise InvalidInputError(f"res must be an integer in [{RES_RANGE[0]}, {RES_RANGE[1]}], got {res!r}")
    return int(res)


def cell_centres(cells) -> tuple[np.ndarray, np.ndarray]:
    """(lat, lng) of the centres of H3 cells given as uint64 (vectorized, h3ronpy)."""
    from h3ronpy.vector import cells_to_coordinates

    cells = np.asarray(cells, dtype="uint64")
    if cells.size == 0:
        return np.zeros(0), np.zeros(0)
    batch = cells_to_coordinates(cells)
    return (np.asarray(batch.column("lat").to_numpy(), dtype="float64"),
            np.asarray(batch.column("lng").to_numpy(), dtype="float64"))


def customer_cells(lat, lng, res: int) -> np.ndarray:
    """The standard res-``res`` cell of each point: ``h3.latlng_to_cell(lat, lng, res)``."""
    return latlng_to_cells(lat, lng, check_res(res))


def _numeric(frame: pd.DataFrame, col: str, what: str) -> np.ndarray:
    values = pd.to_numeric(frame[col], errors="coerce").to_numpy(dtype="float64")
    bad = ~np.isfinite(values) | (values <= 0)
    if bad.any():
        sid = frame["store_id"].iloc[int(np.flatnonzero(bad)[0])]
        raise InvalidInputError(f"{what} column {col!r} must be a positive number for every store; "
                                f"store {sid!r} has {frame[col].iloc[int(np.flatnonzero(bad)[0])]!r}")
    return values


def load_stores(eng, *, brand_col: str | None = None, attract_col: str | None = None) -> pd.DataFrame:
    """Stores with ``store_id``, ``name``, ``lat``, ``lng``, ``brand`` and ``attractiveness``.

    ``brand`` is the ``brand_col`` column as text (``""`` without one: one
    brand); ``attractiveness`` is ``attract_col`` (1.0 without one), which
    must be positive.
    """
    cols = eng.store.columns("stores")
    for col, what in ((brand_col, "brand"), (attract_col, "attractiveness")):
        if col is not None and col not in cols:
            raise ColumnNotFoundError(f"stores have no {what} column {col!r}; columns: {', '.join(cols)}")
    extra = [c for c in dict.fromkeys([brand_col, attract_col]) if c is not None]
    select = ", ".join(["store_id", "name", "lat", "lng"] + [quote_identifier(c) for c in extra if
                                                             c not in ("store_id", "name", "lat", "lng")])
    frame = eng.store.frame(f"SELECT {select} FROM stores ORDER BY store_id")
    if frame.empty:
        raise NotFoundError("the database holds no stores; ingest stores first (geotarget ingest stores FILE)")
    out = frame[["store_id", "name", "lat", "lng"]].copy()
    out["store_id"] = out["store_id"].astype(str)
    out["brand"] = frame[brand_col].fillna("").astype(str) if brand_col else ""
    out["attractiveness"] = _numeric(frame, attract_col, "attractiveness") if attract_col else 1.0
    return out.reset_index(drop=True)


def load_customers(eng, *, columns=(), ordered: bool = False) -> pd.DataFrame:
    """Eligible customers (not opted out, not suppressed): ``customer_id``, ``lat``, ``lng`` and ``columns``.

    In table order, or by ``customer_id`` with ``ordered`` (for a sample that must not depend on load order).
    """
    from ..audience.privacy import eligible_customers_sql

    cols = eng.store.columns("customers")
    for col in columns:
        if col not in cols:
            raise ColumnNotFoundError(f"customers have no column {col!r}; columns: {', '.join(cols)}")
    select = ", ".join(["customer_id", "lat", "lng"] + [quote_identifier(c) for c in dict.fromkeys(columns)])
    order = " ORDER BY customer_id" if ordered else ""
    frame = eng.store.frame(f"SELECT {select} FROM customers WHERE {eligible_customers_sql(cols)}{order}")
    charge_scan(len(frame), what="the trade-area analysis", hint="ask for a coarser res or fewer stores")
    return frame


def region_population(eng, layer: str, column: str) -> tuple[np.ndarray, np.ndarray, pd.DataFrame]:
    """(polygons, population, ids) of region layer ``layer``, population from property ``column``."""
    gdf = eng.regions(layer)
    props = pd.DataFrame([json.loads(p) if p else {} for p in gdf["properties"]])
    if column not in props.columns:
        raise ColumnNotFoundError(f"layer {layer!r} has no column {column!r}; columns: "
                                  f"{', '.join(map(str, props.columns)) or 'none'}")
    pop = pd.to_numeric(props[column], errors="coerce")
    if pop.isna().all():
        raise InvalidInputError(f"column {column!r} of layer {layer!r} holds no numbers")
    ids = gdf[["region_id", "name"]].reset_index(drop=True)
    return np.asarray(gdf.geometry, dtype=object), pop.fillna(0.0).to_numpy(dtype="float64"), ids


def cell_population(cells, region_geoms, region_pop) -> np.ndarray:
    """Population of each cell: every region's population spread over the cells by area."""
    from ..maps.geometry import apportion, cells_to_polygons

    cells = np.asarray(cells, dtype="uint64")
    if cells.size == 0:
        return np.zeros(0)
    return apportion(region_geoms, region_pop, cells_to_polygons(cells))


def cells_covering(region_geoms, res: int) -> np.ndarray:
    """Every res-``res`` cell that overlaps one of the polygons (sorted uint64)."""
    import h3
    import shapely
    from pyproj import Geod

    geod = Geod(ellps="WGS84")
    area_km2 = sum(abs(geod.geometry_area_perimeter(g)[0]) for g in region_geoms if g is not None) / 1e6
    charge_cells(int(area_km2 / h3.average_hexagon_area(res, "km^2")), what=f"the population cells at res {res}",
                 field="res", hint="ask for a coarser res or use a layer of smaller regions")
    found: set[str] = set()
    for geom in region_geoms:
        for part in shapely.get_parts(geom):
            if part.geom_type != "Polygon" or part.is_empty:
                continue
            shape = h3.geo_to_h3shape(shapely.geometry.mapping(part))
            found.update(h3.h3shape_to_cells_experimental(shape, res, contain="overlap"))
    return np.sort(np.asarray([h3.str_to_int(c) for c in found], dtype="uint64"))


def cell_strings(cells) -> list[str]:
    """H3 cells as their usual hexadecimal strings."""
    return cells_to_str(np.asarray(cells, dtype="uint64"))
