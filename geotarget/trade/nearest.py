"""Each customer's nearest store, by WGS84 geodesic distance, for many customers and stores at once.

A k-d tree on the unit sphere proposes candidates; the geodesic (pyproj)
decides wherever the sphere's answer could differ from the ellipsoid's.
"""

from __future__ import annotations

import numpy as np

from ..errors import InvalidInputError

__all__ = ["nearest_store"]

#: The unit vectors below are the ellipsoid's normals (geodetic lat/lng). Along the surface, a geodesic's
#: length per radian between normals lies between WGS84's least and greatest radius of curvature (6,335 and
#: 6,400 km: a ratio under 1.0102), so a store whose angle exceeds the nearest one's by more than that can never
#: be nearer on the ellipsoid. The band of 1 + 2 x this keeps a margin.
_SPHERE_SLACK = 0.01


def _unit_vectors(lat, lng) -> np.ndarray:
    phi = np.radians(np.asarray(lat, dtype="float64"))
    lam = np.radians(np.asarray(lng, dtype="float64"))
    return np.column_stack([np.cos(phi) * np.cos(lam), np.cos(phi) * np.sin(lam), np.sin(phi)])


def nearest_store(lat, lng, store_lat, store_lng, *, with_distance: bool = True):
    """Index of the geodesically nearest store for each point, and the distance in metres.

    Candidates come from a k-d tree on the unit sphere; the geodesic distance
    (pyproj) decides among every store within 1 % of the nearest on the
    sphere, which always holds the nearest on the WGS84 ellipsoid. Ties go
    to the lower index. With ``with_distance=False`` the distances are not
    computed (None is returned in their place).

    Examples
    --------
    >>> idx, d = nearest_store([40.0, 40.0], [-74.0, -73.0], [40.0, 40.0], [-73.1, -74.01])
    >>> idx.tolist(), [round(float(v)) for v in d]
    ([1, 0], [854, 8539])
    """
    from scipy.spatial import cKDTree

    from ..geo.geodesy import geodesic_distance_m

    lat = np.asarray(lat, dtype="float64").ravel()
    lng = np.asarray(lng, dtype="float64").ravel()
    slat = np.asarray(store_lat, dtype="float64").ravel()
    slng = np.asarray(store_lng, dtype="float64").ravel()
    if slat.size == 0:
        raise InvalidInputError("nearest_store needs at least one store")
    n = lat.size
    best = np.zeros(n, dtype="int64")
    best_d = np.zeros(n)
    if n == 0:
        return best, best_d
    tree = cKDTree(_unit_vectors(slat, slng))
    pts = _unit_vectors(lat, lng)
    band = 1.0 + 2 * _SPHERE_SLACK
    # most points: the second store on the sphere is well beyond the first, so the first wins on the ellipsoid too
    k = min(2, slat.size)
    chord, idx = tree.query(pts, k=k, workers=-1)
    chord, idx = chord.reshape(n, k), idx.reshape(n, k)
    angle = 2.0 * np.arcsin(np.clip(chord / 2.0, 0.0, 1.0))
    best[:] = idx[:, 0]
    todo = np.flatnonzero(angle[:, -1] <= angle[:, 0] * band + 1e-12) if k > 1 else np.zeros(0, dtype="int64")
    k = min(4, slat.size)
    while todo.size:  # near-ties: let the geodesic decide among every store inside the band
        chord, idx = tree.query(pts[todo], k=k, workers=-1)
        chord, idx = chord.reshape(todo.size, k), idx.reshape(todo.size, k)
        angle = 2.0 * np.arcsin(np.clip(chord / 2.0, 0.0, 1.0))
        geo = geodesic_distance_m(lat[todo][:, None], lng[todo][:, None], slat[idx], slng[idx])
        order = np.lexsort((idx, geo), axis=1)  # by distance, ties to the lower index
        best[todo] = idx[np.arange(todo.size), order[:, 0]]
        # if the k-th candidate is still inside the band, a farther store might win: look again with more
        todo = todo[(angle[:, -1] <= angle[:, 0] * band + 1e-12) & (k < slat.size)]
        k = min(k * 4, slat.size)
    if not with_distance:
        return best, None
    best_d[:] = geodesic_distance_m(lat, lng, slat[best], slng[best])
    return best, best_d
