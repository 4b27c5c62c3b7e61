"""H3 cells, vectorized: standard containment for answers, the hierarchy for coverings.

**The cell of a point** at resolution ``r`` is always H3's own
``latlng_to_cell(lat, lng, r)`` (:func:`latlng_to_cells`, on all cores). Every
answer that names or draws a cell (heatmaps, ring audiences, cell geofences,
export columns, coverage hexes) uses it, so geotarget's cells agree with
h3-py, h3pandas, DuckDB's h3 extension and BigQuery. :func:`in_cells` decides
membership of points in a set of cells of any resolutions that way.

**Coverings** use the hierarchy of the one fine cell (resolution
:data:`FINE_RES`) stored per point. An H3 index keeps its resolution in bits
52-55 and one 3-bit digit per resolution below that, unused digits all 7, so
the ancestor at ``res`` is bit arithmetic (:func:`cells_to_parents`) and the
descendants of a cell at a fixed finer resolution are one contiguous integer
range (:func:`descendant_range`): a covering of coarse cells becomes a few
range scans over points sorted by their fine cell. H3 children overhang their
parents, so the ancestor of a point's fine cell is *not* always the cell that
contains the point (about 6.5 % of points at res 8); a covering is therefore
only a conservative candidate filter (:func:`candidate_ranges` adds each
cell's neighbours), and the candidates are then decided by
:func:`in_cells`.
"""

from __future__ import annotations

import functools
import math
import os
import threading
from concurrent.futures import ThreadPoolExecutor

import h3
import numpy as np

from geotarget.errors import InvalidInputError
from geotarget.units import EARTH_RADIUS_M

__all__ = [
    "FINE_RES",
    "candidate_ranges",
    "cell_column_res",
    "cell_ranges",
    "cells_to_parents",
    "cells_to_resolutions",
    "cells_to_str",
    "covering_res",
    "descendant_range",
    "disk_covering",
    "in_cells",
    "latlng_to_cells",
    "str_to_cells",
]

#: Resolution of the one cell stored per point (about 0.9 m2 cells).
FINE_RES = 15

_RES_SHIFT = np.uint64(52)
_RES_MASK = np.uint64(0xF << 52)

try:  # h3ronpy is the Rust binding: about 3x faster than a Python loop.
    from h3ronpy.vector import coordinates_to_cells as _rust_coordinates_to_cells
except ImportError:  # pragma: no cover - exercised only without h3ronpy
    _rust_coordinates_to_cells = None


def _low_digits_mask(res: int) -> np.uint64:
    """Mask of the digit bits below ``res`` (digits res+1 .. 15)."""
    return np.uint64((1 << (3 * (15 - res))) - 1)


def _check_res(res: int) -> int:
    if not isinstance(res, (int, np.integer)) or isinstance(res, bool) or not 0 <= int(res) <= 15:
        raise InvalidInputError(f"H3 resolution must be an integer in [0, 15], got {res!r}")
    return int(res)


_PARALLEL_MIN = 100_000  # points per slice below which one thread is faster than handing off work
_POOL = None
_POOL_LOCK = threading.Lock()


def _index_workers(n: int) -> int:
    return max(1, min(os.cpu_count() or 1, 8, n // _PARALLEL_MIN))


def _pool():
    global _POOL
    with _POOL_LOCK:
        if _POOL is None:
            _POOL = ThreadPoolExecutor(max_workers=min(os.cpu_count() or 1, 8), thread_name_prefix="geotarget-h3")
        return _POOL


def latlng_to_cells(lat, lng, res: int = FINE_RES) -> np.ndarray:
    """Index points into H3 cells, vectorized.

    Parameters
    ----------
    lat, lng : array-like of float
        Valid coordinates in degrees (validate first; NaN is not accepted).
    res : int, default FINE_RES
        The H3 resolution.

    Returns
    -------
    numpy.ndarray of uint64

    Examples
    --------
    >>> cells_to_str(latlng_to_cells([40.758], [-73.9855], 9)) == [h3.latlng_to_cell(40.758, -73.9855, 9)]
    True
    """
    res = _check_res(res)
    lat = np.ascontiguousarray(lat, dtype="float64")
    lng = np.ascontiguousarray(lng, dtype="float64")
    if lat.size == 0:
        return np.zeros(0, dtype="uint64")
    if _rust_coordinates_to_cells is not None:
        workers = _index_workers(lat.size)
        if workers == 1:
            return np.asarray(_rust_coordinates_to_cells(lat, lng, res), dtype="uint64")
        # The Rust indexer releases the GIL: index slices on all cores at once.
        bounds = np.linspace(0, lat.size, workers + 1).astype(int)
        parts = _pool().map(lambda i: np.asarray(_rust_coordinates_to_cells(
            lat[bounds[i]:bounds[i + 1]], lng[bounds[i]:bounds[i + 1]], res), dtype="uint64"), range(workers))
        return np.concatenate(list(parts))
    return np.fromiter(
        (h3.str_to_int(h3.latlng_to_cell(a, b, res)) for a, b in zip(lat.tolist(), lng.tolist())),
        dtype="uint64",
        count=lat.size,
    )


def cells_to_parents(cells, res: int) -> np.ndarray:
    """Parents at ``res`` of cells at a finer (or equal) resolution.

    Pure bit arithmetic, equal to ``h3.cell_to_parent`` cell by cell. The
    parent of a point's fine cell is not always the cell containing the point
    (children overhang); use :func:`latlng_to_cells` for that.

    Examples
    --------
    >>> c = latlng_to_cells([40.758], [-73.9855], 15)
    >>> cells_to_str(cells_to_parents(c, 9)) == [h3.cell_to_parent(h3.latlng_to_cell(40.758, -73.9855, 15), 9)]
    True
    """
    res = _check_res(res)
    cells = np.asarray(cells, dtype="uint64")
    low = _low_digits_mask(res)
    return (cells & ~(_RES_MASK | low)) | (np.uint64(res) << _RES_SHIFT) | low


def descendant_range(cell: int, fine_res: int = FINE_RES) -> tuple[int, int]:
    """Inclusive integer range holding every descendant of ``cell`` at ``fine_res``.

    Every valid cell at ``fine_res`` inside the range descends from ``cell``;
    a point sorted by its fine cell is found with two binary searches.

    Examples
    --------
    >>> lo, hi = descendant_range(h3.str_to_int(h3.latlng_to_cell(40.758, -73.9855, 9)), 15)
    >>> fine = int(latlng_to_cells([40.758], [-73.9855], 15)[0])
    >>> lo <= fine <= hi
    True
    """
    cell = int(cell)
    res = (cell >> 52) & 0xF
    if fine_res < res:
        raise InvalidInputError(f"fine_res {fine_res} is coarser than the cell's resolution {res}")
    keep = ~((0xF << 52) | ((1 << (3 * (15 - res))) - 1)) & 0xFFFFFFFFFFFFFFFF
    below_fine = (1 << (3 * (15 - fine_res))) - 1
    base = (cell & keep) | (fine_res << 52) | below_fine
    between = ((1 << (3 * (15 - res))) - 1) ^ below_fine
    return base, base | between


def cell_ranges(cells, fine_res: int = FINE_RES) -> np.ndarray:
    """Merged, sorted inclusive ranges covering the descendants of ``cells``.

    Returns
    -------
    numpy.ndarray of shape (n, 2), dtype uint64
    """
    pairs = sorted(descendant_range(int(c), fine_res) for c in cells)
    merged: list[list[int]] = []
    for lo, hi in pairs:
        if merged and lo <= merged[-1][1] + 1:
            merged[-1][1] = max(merged[-1][1], hi)
        else:
            merged.append([lo, hi])
    return np.array(merged, dtype="uint64").reshape(-1, 2)


def cells_to_resolutions(cells) -> np.ndarray:
    """The resolution of each cell (bits 52-55)."""
    return ((np.asarray(cells, dtype="uint64") >> _RES_SHIFT) & np.uint64(0xF)).astype("int64")


def candidate_ranges(cells, fine_res: int = FINE_RES) -> np.ndarray:
    """Fine-cell ranges holding every point whose standard cell is one of ``cells``.

    A point in cell ``C`` (by ``latlng_to_cell``) has a fine cell whose
    ancestor at ``C``'s resolution is ``C`` or one of its six neighbours:
    descendants reach less than :data:`DESCENDANT_REACH` circumradii from
    their ancestor's centre, and the second ring of cells lies farther away.
    So the ranges of ``cells`` and their neighbours are a conservative
    candidate set; :func:`in_cells` then decides.

    Examples
    --------
    >>> cell = h3.str_to_int(h3.latlng_to_cell(40.758, -73.9855, 8))
    >>> fine = int(latlng_to_cells([40.758], [-73.9855], FINE_RES)[0])
    >>> any(lo <= fine <= hi for lo, hi in candidate_ranges([cell]).tolist())
    True
    """
    ring = set()
    for c in np.asarray(cells, dtype="uint64").tolist():
        ring.update(_neighbours(h3.int_to_str(c)))
    return cell_ranges([h3.str_to_int(c) for c in ring], fine_res)


def in_cells(lat, lng, cells) -> np.ndarray:
    """Whether each point lies in one of ``cells`` (any mix of resolutions), by ``latlng_to_cell``.

    Examples
    --------
    >>> cell = h3.str_to_int(h3.latlng_to_cell(40.758, -73.9855, 7))
    >>> in_cells([40.758, 41.0], [-73.9855, -73.0], [cell]).tolist()
    [True, False]
    """
    lat = np.asarray(lat, dtype="float64")
    lng = np.asarray(lng, dtype="float64")
    cells = np.unique(np.asarray(cells, dtype="uint64"))
    out = np.zeros(lat.shape, dtype=bool)
    if lat.size == 0 or cells.size == 0:
        return out
    resolutions = cells_to_resolutions(cells)
    for res in np.unique(resolutions).tolist():
        out |= np.isin(latlng_to_cells(lat, lng, res), cells[resolutions == res])
    return out


def cell_column_res(name: str) -> int | None:
    """The resolution named by an export column ``h3_<res>`` (``h3_0`` to ``h3_15``), else None.

    Examples
    --------
    >>> cell_column_res("h3_8"), cell_column_res("H3_15"), cell_column_res("h3_16"), cell_column_res("spend")
    (8, 15, None, None)
    """
    text = str(name).strip().lower()
    if not text.startswith("h3_") or not text[3:].isdigit():
        return None
    res = int(text[3:])
    return res if 0 <= res <= 15 else None


def cells_to_str(cells) -> list[str]:
    """H3 cells as hexadecimal strings (h3-py's form)."""
    return [f"{c:x}" for c in np.asarray(cells, dtype="uint64").tolist()]  # h3.int_to_str, without a call per cell


def str_to_cells(cells) -> np.ndarray:
    """Hexadecimal H3 strings (or ints) as a uint64 array, validated."""
    out = []
    for c in cells:
        try:
            value = h3.str_to_int(c.strip()) if isinstance(c, str) else int(c)
            valid = 0 <= value < 2**64 and h3.is_valid_cell(h3.int_to_str(value))
        except (TypeError, ValueError, OverflowError):
            valid = False
        if not valid:
            raise InvalidInputError(f"{c!r} is not a valid H3 cell; give one like '882a100d17fffff'")
        out.append(value)
    return np.array(out, dtype="uint64")


def _hav_m(lat1: float, lng1: float, lat2: float, lng2: float) -> float:
    """Scalar haversine in metres (math, not numpy: far cheaper per call)."""
    p1 = math.radians(lat1)
    p2 = math.radians(lat2)
    a = math.sin((p2 - p1) * 0.5) ** 2 + math.cos(p1) * math.cos(p2) * math.sin(math.radians(lng2 - lng1) * 0.5) ** 2
    return 2.0 * EARTH_RADIUS_M * math.asin(math.sqrt(min(1.0, max(0.0, a))))


#: How far a cell's descendants reach past its hexagon, as a multiple of its
#: circumradius. H3 children do not nest exactly inside their parent; measured
#: on this hierarchy the overhang is under 6 %, and 15 % is used.
DESCENDANT_REACH = 1.15


@functools.lru_cache(maxsize=1 << 17)
def _cell_reach(cell: str) -> tuple[float, float, float]:
    """A cell's centre and how far its descendants can reach from it (metres).

    Cached: the coverings of nearby stores visit the same cells again.
    """
    clat, clng = h3.cell_to_latlng(cell)
    circumradius = max(_hav_m(clat, clng, vlat, vlng) for vlat, vlng in h3.cell_to_boundary(cell))
    return clat, clng, DESCENDANT_REACH * circumradius


@functools.lru_cache(maxsize=1 << 17)
def _neighbours(cell: str) -> tuple[str, ...]:
    return tuple(h3.grid_disk(cell, 1))


def _cell_min_distance_m(center_lat: float, center_lng: float, cell: str) -> float:
    """A lower bound on the haversine distance from the centre to any point whose fine cell descends from ``cell``."""
    clat, clng, reach = _cell_reach(cell)
    return _hav_m(center_lat, center_lng, clat, clng) - reach


def covering_res(radius_m: float, *, cells_across: float = 16.0) -> int:
    """The finest resolution whose average hexagon edge is at least ``2 * radius_m / cells_across``."""
    target = 2.0 * radius_m / cells_across
    for res in range(FINE_RES, -1, -1):
        if h3.average_hexagon_edge_length(res, unit="m") >= target:
            return res
    return 0


def disk_covering(lat: float, lng: float, radius_m: float, *, res: int | None = None) -> np.ndarray:
    """H3 cells that together contain every point within ``radius_m`` of a centre.

    The covering is conservative: it can hold cells with no point in the disk,
    but it never misses a point whose fine cell descends from a cell outside
    it. It is grown breadth-first from the centre's cell over neighbours whose
    nearest possible descendant (distance to the cell centre less
    :data:`DESCENDANT_REACH` circumradii) could lie within the radius, widened
    by the largest possible sphere/ellipsoid disagreement. Because a geodesic from the
    centre to any point inside stays inside, the cells it crosses are all
    reached, at the poles, across the antimeridian and around pentagons alike.

    Parameters
    ----------
    lat, lng : float
        The centre in degrees.
    radius_m : float
        The radius in metres (WGS84 geodesic).
    res : int, optional
        The resolution of the covering; chosen from the radius when omitted.

    Returns
    -------
    numpy.ndarray of uint64

    Examples
    --------
    >>> cover = disk_covering(40.758, -73.9855, 3218.688)
    >>> fine = latlng_to_cells([40.75], [-73.99], FINE_RES)
    >>> parent = cells_to_parents(fine, int(h3.get_resolution(h3.int_to_str(int(cover[0])))))
    >>> bool(np.isin(parent, cover)[0])
    True
    """
    from geotarget.geo.geodesy import BAND_RELATIVE

    if res is None:
        res = covering_res(radius_m)
    res = _check_res(res)
    limit = radius_m * (1.0 + BAND_RELATIVE) + 1.0
    start = h3.latlng_to_cell(lat, lng, res)
    keep = {start}
    seen = {start}
    frontier = [start]
    while frontier:
        nxt = []
        for cell in frontier:
            for nb in _neighbours(cell):
                if nb in seen:
                    continue
                seen.add(nb)
                if _cell_min_distance_m(lat, lng, nb) <= limit:
                    keep.add(nb)
                    nxt.append(nb)
        frontier = nxt
    return np.array([h3.str_to_int(c) for c in keep], dtype="uint64")
