"""The standard cells of many points, when a likely cell is known for each: check it, index only the doubtful.

A point's standard cell at resolution ``r`` is ``latlng_to_cell(lat, lng, r)``.
When each point comes with a *guess* at ``r`` that is nearly always right
(the ancestor of its fine cell: wrong for about 6.5 % of points, because
children overhang their parents), most points can be settled without the
H3 indexer: a point closer to the centre of its guessed cell than every
edge of that cell lies inside it, so the guess is its cell.

Why that is exact. H3 draws each cell on the gnomonic projection of an
icosahedron face, where its edges are straight; the gnomonic projection maps
straight lines to great circles, so every edge of a cell (including the
extra vertices where it crosses a face edge) is a great-circle arc, and the
distance from the centre to an arc is at least the distance to its whole
great circle. The smallest of those distances is the radius of a spherical
cap around the centre that lies inside the cell: every point in the cap is
in the cell. H3's own floating-point arithmetic moves the boundaries it
decides by off the great circles by a hair (up to about 2 mm at res 15 and
far less at coarser resolutions, measured by bisection along rays from cell
centres), so each cap is shrunk by :data:`MARGIN_M` (50 times that) and by
one part in a million. The test is
made with chord lengths between unit vectors, which keep their precision for
small distances. Points outside their cap (about a tenth of them, near
edges) are indexed by :func:`~geotarget.geo.cells.latlng_to_cells`.

The cap of each distinct guessed cell is computed once with h3-py, so this
pays off only when many points share each guess; :func:`latlng_to_cells_guided`
falls back to indexing every point otherwise. Tests compare it with h3-py
point by point, near pentagons and icosahedron edges too.
"""

from __future__ import annotations

import h3
import numpy as np

from geotarget.geo.cells import _index_workers, _pool, _rust_coordinates_to_cells, cells_to_resolutions, latlng_to_cells
from geotarget.units import EARTH_RADIUS_M

__all__ = ["cell_caps", "latlng_to_cells_guided"]

#: Points per distinct guessed cell below which indexing every point is cheaper than the caps.
MIN_POINTS_PER_CELL = 32
_SHRINK = 1.0 - 1e-6
#: How much closer to the centre than the nearest edge's great circle a cap ends (metres on the sphere).
MARGIN_M = 0.1
_MARGIN_RAD = MARGIN_M / EARTH_RADIUS_M


def _unit(lat_deg, lng_deg) -> np.ndarray:
    lat, lng = np.radians(lat_deg), np.radians(lng_deg)
    cos_lat = np.cos(lat)
    return np.stack((cos_lat * np.cos(lng), cos_lat * np.sin(lng), np.sin(lat)), axis=-1)


def cell_caps(cells) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Centre (lat, lng in degrees) and ``sin(radius / 2) ** 2`` of a spherical cap inside each cell.

    Examples
    --------
    >>> cell = h3.str_to_int(h3.latlng_to_cell(40.758, -73.9855, 8))
    >>> lat, lng, half2 = cell_caps([cell])
    >>> radius_m = 2 * np.arcsin(np.sqrt(half2[0])) * 6_371_007.2
    >>> edge_m = h3.average_hexagon_edge_length(8, "m")
    >>> bool(0.8 * edge_m < radius_m < edge_m)
    True
    """
    names = [h3.int_to_str(c) for c in np.asarray(cells, dtype="uint64").tolist()]
    centre = np.array([h3.cell_to_latlng(n) for n in names], dtype="float64").reshape(-1, 2)
    rings = [h3.cell_to_boundary(n) for n in names]
    width = max((len(r) for r in rings), default=0)
    # pad each ring with its first vertex: the padding edges have no length and are skipped below
    padded = np.array([list(r) + [r[0]] * (width + 1 - len(r)) for r in rings], dtype="float64")
    v = _unit(padded[..., 0], padded[..., 1]) if len(rings) else np.zeros((0, 1, 3))
    normals = np.cross(v[:, :-1], v[:, 1:])  # the great circle of each edge
    norm = np.linalg.norm(normals, axis=-1)
    sine = np.abs(np.einsum("cek,ck->ce", normals, _unit(centre[:, 0], centre[:, 1])))
    with np.errstate(divide="ignore", invalid="ignore"):
        sine = np.where(norm > 0, sine / np.where(norm > 0, norm, 1.0), np.inf)
    radius = np.maximum(np.arcsin(np.clip(np.min(sine, axis=1, initial=1.0), 0.0, 1.0)) - _MARGIN_RAD, 0.0) * _SHRINK
    return centre[:, 0].copy(), centre[:, 1].copy(), np.sin(radius / 2.0) ** 2


_BLOCK = 1 << 15  # points per block: the temporaries of one block stay in the CPU's cache


def _inside(lat, lng, codes, caps) -> np.ndarray:
    """Which points lie inside the cap of their guessed cell (one block).

    ``sin(d/2)**2 = sin(dlat/2)**2 + cos(lat) cos(lat_c) sin(dlng/2)**2`` (haversine), bounded from
    above with ``|sin x| <= |x|`` and ``cos(lat) <= cos(lat_c) + |dlat|``: no trigonometry per point,
    and a point found inside the cap by the bound is inside it. NaN never counts as inside.
    """
    c_lat, c_lng, c_cos, half2 = (np.take(a, codes) for a in caps)
    dlat = lat - c_lat
    dlat *= np.pi / 180.0
    dlng = lng - c_lng
    if np.abs(dlng).max(initial=0.0) > 180.0:  # the short way round, across the antimeridian
        dlng -= 360.0 * np.round(dlng / 360.0)
    dlng *= np.pi / 180.0
    cos_bound = np.abs(dlat)
    cos_bound += c_cos
    np.minimum(cos_bound, 1.0, out=cos_bound)
    cos_bound *= c_cos
    dlng *= dlng
    dlng *= cos_bound
    dlat *= dlat
    dlat += dlng
    dlat *= 0.25
    return dlat < half2


def _settle(lat, lng, guess, codes, caps, res) -> np.ndarray:
    """Cells of one slice: the guess where the point is inside its cap, the indexer elsewhere."""
    inside = np.empty(guess.size, dtype=bool)
    for lo in range(0, guess.size, _BLOCK):
        hi = lo + _BLOCK
        inside[lo:hi] = _inside(lat[lo:hi], lng[lo:hi], codes[lo:hi], caps)
    out = guess.copy()
    doubtful = np.flatnonzero(~inside)
    if doubtful.size:  # in this thread: a slice may already run on the shared pool
        a, b = lat[doubtful], lng[doubtful]
        out[doubtful] = (np.asarray(_rust_coordinates_to_cells(a, b, res), dtype="uint64")
                         if _rust_coordinates_to_cells is not None else latlng_to_cells(a, b, res))
    return out


def latlng_to_cells_guided(lat, lng, guess, *, min_points_per_cell: int = MIN_POINTS_PER_CELL) -> np.ndarray:
    """``latlng_to_cell`` of every point, at the resolution of ``guess``, checking each point's guess first.

    Parameters
    ----------
    lat, lng : array-like of float
        Valid coordinates in degrees.
    guess : array-like of uint64
        One cell per point, all at the same resolution: the answer's
        resolution. Sorted guesses (as the ancestors of cell-sorted points
        are) are grouped fastest; any order gives the same answer.
    min_points_per_cell : int
        Below this many points per distinct guess, every point is indexed.

    Returns
    -------
    numpy.ndarray of uint64, equal to ``latlng_to_cells(lat, lng, res)``.

    Examples
    --------
    >>> from geotarget.geo.cells import cells_to_parents, cells_to_str
    >>> lat, lng = np.full(100, 40.758) + np.linspace(0, 0.01, 100), np.full(100, -73.9855)
    >>> guess = cells_to_parents(latlng_to_cells(lat, lng, 15), 8)
    >>> cells_to_str(latlng_to_cells_guided(lat, lng, guess)) == [h3.latlng_to_cell(a, b, 8)
    ...                                                          for a, b in zip(lat, lng)]
    True
    """
    lat = np.ascontiguousarray(lat, dtype="float64")
    lng = np.ascontiguousarray(lng, dtype="float64")
    guess = np.ascontiguousarray(guess, dtype="uint64")
    if guess.size == 0:
        return np.zeros(0, dtype="uint64")
    res = int(cells_to_resolutions(guess[:1])[0])
    sorted_ = bool(np.all(guess[1:] >= guess[:-1]))
    if sorted_:
        starts = np.flatnonzero(np.concatenate(([True], guess[1:] != guess[:-1])))
        distinct = guess[starts]
    else:
        distinct = np.unique(guess)
    if distinct.size * min_points_per_cell > guess.size:
        return latlng_to_cells(lat, lng, res)
    if sorted_:
        codes = np.repeat(np.arange(starts.size, dtype=np.int32), np.diff(np.append(starts, guess.size)))
    else:
        codes = np.searchsorted(distinct, guess).astype(np.int32)
    c_lat, c_lng, half2 = cell_caps(distinct)
    caps = (c_lat, c_lng, np.cos(np.radians(c_lat)), half2)
    workers = _index_workers(guess.size)
    if workers == 1:
        return _settle(lat, lng, guess, codes, caps, res)
    # numpy's arithmetic and the Rust indexer release the GIL: slices run on all cores at once
    bounds = np.linspace(0, guess.size, workers + 1).astype(int)
    parts = _pool().map(lambda i: _settle(*(a[bounds[i]:bounds[i + 1]] for a in (lat, lng, guess, codes)),
                                          caps, res), range(workers))
    return np.concatenate(list(parts))
