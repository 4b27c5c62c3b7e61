"""Geometry behind heatmaps and maps: hexagons, geodesic rings, areas.

Everything that is drawn or exported goes through here, so that every
coordinate leaves geotarget rounded to :data:`COORD_DECIMALS` decimals
(about 11 cm), in GeoJSON's (lng, lat) order.
"""

from __future__ import annotations

import h3
import numpy as np

from geotarget.audience.budget import check_time

__all__ = [
    "COORD_DECIMALS",
    "apportion",
    "cells_to_polygons",
    "cells_to_rings",
    "equal_area_crs",
    "extent",
    "geodesic_ring",
    "round_geometry",
]

#: Decimals kept on every coordinate written to a map or an export.
COORD_DECIMALS = 6


def cells_to_rings(cells) -> list[np.ndarray]:
    """Closed boundary rings (lng, lat; rounded) of H3 cells given as uint64."""
    rings = []
    for cell in np.asarray(cells, dtype="uint64").tolist():
        boundary = np.asarray(h3.cell_to_boundary(h3.int_to_str(cell)))[:, ::-1]  # (lat, lng) -> (lng, lat)
        rings.append(np.round(np.vstack([boundary, boundary[:1]]), COORD_DECIMALS))
    return rings


def cells_to_polygons(cells) -> np.ndarray:
    """Shapely hexagons (lng, lat; rounded) of H3 cells given as uint64.

    Examples
    --------
    >>> poly = cells_to_polygons([0x882A100D2DFFFFF])[0]
    >>> len(poly.exterior.coords)
    7
    """
    import shapely

    rings = cells_to_rings(cells)
    return np.asarray(shapely.polygons(rings) if rings else [], dtype=object)


def round_geometry(geoms):
    """Geometries with every coordinate rounded to :data:`COORD_DECIMALS` decimals."""
    import shapely

    return shapely.transform(geoms, lambda xy: np.round(xy, COORD_DECIMALS))


def geodesic_ring(lat: float, lng: float, radius_m: float, *, n: int = 128):
    """A polygon of ``n`` points at exactly ``radius_m`` (WGS84) from a centre.

    Drawn from the ellipsoid's forward problem, so the ring is the true edge
    of a radius audience, not a circle of pixels or a planar buffer.

    Examples
    --------
    >>> from geotarget.geo.geodesy import geodesic_distance_m
    >>> ring = geodesic_ring(40.758, -73.9855, 3218.688)
    >>> x, y = ring.exterior.coords[5]
    >>> abs(float(geodesic_distance_m(40.758, -73.9855, y, x)) - 3218.688) < 0.5
    True
    """
    import shapely

    from geotarget.geo.geodesy import WGS84

    azimuths = np.linspace(0.0, 360.0, n, endpoint=False)
    lngs, lats, _ = WGS84.fwd(np.full(n, lng), np.full(n, lat), azimuths, np.full(n, float(radius_m)))
    coords = np.round(np.column_stack([lngs, lats]), COORD_DECIMALS)
    return shapely.Polygon(coords)


def equal_area_crs(lat: float, lng: float) -> str:
    """A Lambert azimuthal equal-area projection centred on (lat, lng), as PROJ text."""
    return f"+proj=laea +lat_0={lat:.6f} +lon_0={lng:.6f} +datum=WGS84 +units=m +no_defs"


#: Target/source pairs intersected at once by :func:`apportion` between checks of the time limit.
_PAIRS_PER_STEP = 4096


def apportion(source_geoms, values, target_geoms) -> np.ndarray:
    """Spread ``values`` of source polygons over target polygons by area.

    Each target receives ``value * area(target ∩ source) / area(source)``
    from every source it overlaps, with areas measured in an equal-area
    projection centred on the sources. Sources with no area give nothing.

    Parameters
    ----------
    source_geoms, target_geoms : array-like of shapely geometries (lng, lat)
    values : array-like of float
        One value per source (e.g. its population).

    Returns
    -------
    numpy.ndarray of float
        One apportioned value per target.

    Examples
    --------
    >>> import shapely
    >>> src = [shapely.box(0.0, 0.0, 0.02, 0.01)]
    >>> out = apportion(src, [100.0], [shapely.box(0.0, 0.0, 0.01, 0.01), shapely.box(0.5, 0.5, 0.6, 0.6)])
    >>> [round(float(v), 3) for v in out]
    [50.0, 0.0]
    """
    import shapely
    from pyproj import Transformer

    source = np.asarray(source_geoms, dtype=object)
    target = np.asarray(target_geoms, dtype=object)
    out = np.zeros(len(target), dtype="float64")
    if len(source) == 0 or len(target) == 0:
        return out
    minx, miny, maxx, maxy = shapely.total_bounds(source)
    to_m = Transformer.from_crs("EPSG:4326", equal_area_crs((miny + maxy) / 2, (minx + maxx) / 2), always_xy=True)

    def project(geoms):
        return shapely.transform(geoms, lambda xy: np.column_stack(to_m.transform(xy[:, 0], xy[:, 1])))

    src_m = project(source)
    tgt_m = project(target)
    src_area = shapely.area(src_m)
    tree = shapely.STRtree(src_m)
    ti, si = tree.query(tgt_m, predicate="intersects")
    if ti.size == 0:
        return out
    shared = np.empty(ti.size, dtype="float64")
    for start in range(0, ti.size, _PAIRS_PER_STEP):  # in steps, so a request's time limit can stop it
        check_time()
        part = slice(start, start + _PAIRS_PER_STEP)
        shared[part] = shapely.area(shapely.intersection(tgt_m[ti[part]], src_m[si[part]]))
    vals = np.asarray(values, dtype="float64")[si]
    with np.errstate(divide="ignore", invalid="ignore"):
        share = np.where(src_area[si] > 0, vals * shared / src_area[si], 0.0)
    np.add.at(out, ti, np.nan_to_num(share))
    return out


#: Above this span (degrees), a map fits the bulk of the data instead of every outlier.
WIDE_SPAN_DEG = 20.0
#: The share of customers (by weight) a wide map may leave outside its view at each side.
WIDE_TRIM = 0.02


def _weighted_range(values: np.ndarray, weights: np.ndarray, trim: float) -> tuple[float, float]:
    order = np.argsort(values, kind="stable")
    cum = np.cumsum(weights[order])
    total = cum[-1]
    lo = values[order][min(np.searchsorted(cum, trim * total, side="left"), len(cum) - 1)]
    hi = values[order][min(np.searchsorted(cum, (1 - trim) * total, side="left"), len(cum) - 1)]
    return float(lo), float(hi)


def extent(results, *, trim: float = WIDE_TRIM) -> tuple[float, float, float, float]:
    """The lng/lat bounds (min_x, min_y, max_x, max_y) to fit a map of heatmap results to.

    Every cell or region fits when the data spans a city or a region. When it
    spans more than :data:`WIDE_SPAN_DEG` degrees (a country, the world),
    the view fits where the customers are: the areas between the ``trim``
    and ``1 - trim`` weighted quantiles of the customers, so a few far
    outliers do not shrink the data to specks. Latitudes stay within Web
    Mercator's ±85°; the world when there is nothing to show.

    Examples
    --------
    >>> import h3
    >>> from types import SimpleNamespace
    >>> import pandas as pd
    >>> cells = [h3.str_to_int(h3.latlng_to_cell(40.7 + i * 0.01, -74.0, 8)) for i in range(99)]
    >>> cells.append(h3.str_to_int(h3.latlng_to_cell(-33.9, 151.2, 8)))  # one far away
    >>> r = SimpleNamespace(level="cell", frame=pd.DataFrame({"cell": cells, "customers": [10] * 100}))
    >>> minx, miny, maxx, maxy = extent([r])
    >>> -75 < minx < maxx < -73 and 40.6 < miny < maxy < 41.8
    True
    """
    import shapely

    geoms, weights = [], []
    for r in results:
        if r.level == "cell":
            polys = cells_to_polygons(r.frame["cell"])
        elif r.geometry is not None:
            polys = np.asarray(r.geometry, dtype=object)
        else:
            continue
        geoms.extend(polys)
        w = r.frame["customers"].to_numpy(dtype="float64") if "customers" in r.frame else np.ones(len(polys))
        weights.extend(w[: len(polys)] if len(w) >= len(polys) else np.ones(len(polys)))
    if not geoms:
        return (-180.0, -85.0, 180.0, 85.0)
    geoms = np.asarray(geoms, dtype=object)
    minx, miny, maxx, maxy = (float(v) for v in shapely.total_bounds(geoms))
    if max(maxx - minx, maxy - miny) > WIDE_SPAN_DEG and len(geoms) > 1:
        b = shapely.bounds(geoms)
        cx, cy, w = (b[:, 0] + b[:, 2]) / 2, (b[:, 1] + b[:, 3]) / 2, np.maximum(np.asarray(weights), 1e-9)
        x0, x1 = _weighted_range(cx, w, trim)
        y0, y1 = _weighted_range(cy, w, trim)
        keep = (cx >= x0) & (cx <= x1) & (cy >= y0) & (cy <= y1)
        minx, miny, maxx, maxy = (float(v) for v in shapely.total_bounds(geoms[keep]))
    return (minx, max(miny, -85.0), maxx, min(maxy, 85.0))
