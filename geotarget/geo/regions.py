"""Which region of a layer each point counts in.

A point counts in a polygon that intersects it (boundary included, as
shapely's ``intersects`` says, in planar longitude/latitude). Regions of a
layer may overlap or share borders, and a point is counted once: in the
polygon that shapely's ``STRtree(polygons).query(point, "intersects")``
reports first, the rule region heatmaps have always used. Every region
heatmap and the consistent suppression of :mod:`geotarget.maps.suppression`
assign points with :func:`assign_regions`, so the two always agree.

How it stays fast: the points are bucketed once into a 256 x 256 grid over
the layer's bounds (a radix sort of 16-bit keys); each polygon looks only at the
points of the grid cells its bounds span, and inside its bounds, and tests
those against the prepared polygon (GEOS's fast path for one polygon against
many points). Only the few points that two or more polygons hold are asked
of the STRtree.
"""

from __future__ import annotations

import numpy as np

__all__ = ["assign_regions"]

_GRID = 256  # the points are bucketed into _GRID x _GRID cells of the layer's bounds (16-bit keys)


def assign_regions(geoms, lat, lng) -> np.ndarray:
    """For each point, the number of the polygon of ``geoms`` it counts in, or -1 when none holds it.

    Parameters
    ----------
    geoms : sequence of shapely geometries
        The layer's polygons.
    lat, lng : array-like of float
        The points, in degrees.

    Returns
    -------
    numpy.ndarray of int64

    Examples
    --------
    >>> import shapely
    >>> assign_regions([shapely.box(0, 0, 2, 2), shapely.box(3, 3, 4, 4)], [1.5, 3.5, 5.0], [1.5, 3.5, 5.0]).tolist()
    [0, 1, -1]
    """
    import shapely

    lat = np.asarray(lat, dtype="float64")
    lng = np.asarray(lng, dtype="float64")
    which = np.full(lat.size, -1, dtype=np.int64)
    geoms = np.asarray(geoms, dtype=object)
    if lat.size == 0 or geoms.size == 0:
        return which
    bounds = shapely.bounds(geoms)
    usable = ~np.isnan(bounds).any(axis=1)
    if not usable.any():
        return which
    minx, miny = bounds[usable, 0].min(), bounds[usable, 1].min()
    maxx, maxy = bounds[usable, 2].max(), bounds[usable, 3].max()
    inside = np.flatnonzero((lat >= miny) & (lat <= maxy) & (lng >= minx) & (lng <= maxx))
    if inside.size == 0:
        return which
    # a grid of G x G buckets over the layer's bounds: a radix sort of 16-bit keys, far cheaper than sorting floats
    sx, sy = (_GRID - 1) / max(maxx - minx, 1e-12), (_GRID - 1) / max(maxy - miny, 1e-12)
    col = ((lng[inside] - minx) * sx).astype(np.int64)
    row = ((lat[inside] - miny) * sy).astype(np.int64)
    key = (row * _GRID + col).astype(np.uint16)
    order = inside[np.argsort(key, kind="stable")]
    starts = np.concatenate(([0], np.cumsum(np.bincount(key, minlength=_GRID * _GRID))))
    sorted_lat, sorted_lng = lat[order], lng[order]
    found = np.full(order.size, -1, dtype=np.int64)
    holders = np.zeros(order.size, dtype=np.int8)  # how many polygons hold each point (counted up to 2)
    for k in np.flatnonzero(usable):
        x0, y0, x1, y1 = bounds[k]
        c0, c1 = (int(np.clip((v - minx) * sx, 0, _GRID - 1)) for v in (x0, x1))
        r0, r1 = (int(np.clip((v - miny) * sy, 0, _GRID - 1)) for v in (y0, y1))
        c0, r0, c1, r1 = max(c0 - 1, 0), max(r0 - 1, 0), min(c1 + 1, _GRID - 1), min(r1 + 1, _GRID - 1)
        rows = np.arange(r0, r1 + 1) * _GRID
        near = _ranges(starts[rows + c0], starts[rows + c1 + 1])
        x, y = sorted_lng[near], sorted_lat[near]
        near = near[(holders[near] < 2) & (x >= x0) & (x <= x1) & (y >= y0) & (y <= y1)]
        if near.size:
            geom = geoms[k]
            shapely.prepare(geom)  # one prepared polygon against many points
            hit = near[shapely.intersects_xy(geom, sorted_lng[near], sorted_lat[near])]
            found[hit] = k
            holders[hit] += 1
    which[order] = found
    shared = order[holders > 1]
    if shared.size:  # held by two or more: the STRtree's first answer decides, as it always has
        pi, ri = shapely.STRtree(geoms).query(shapely.points(lng[shared], lat[shared]), predicate="intersects")
        first_pi, first = np.unique(pi, return_index=True)
        which[shared[first_pi]] = ri[first]
    return which


def _ranges(lo: np.ndarray, hi: np.ndarray) -> np.ndarray:
    """The integers of every half-open range [lo, hi), concatenated."""
    lengths = np.maximum(hi - lo, 0)
    total = int(lengths.sum())
    if total == 0:
        return np.zeros(0, dtype=np.int64)
    offsets = np.repeat(lo - np.concatenate(([0], np.cumsum(lengths)[:-1])), lengths)
    return np.arange(total, dtype=np.int64) + offsets
