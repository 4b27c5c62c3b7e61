"""Distances on the Earth, and the exact "within radius" test.

The exactness contract of geotarget: a point is within ``radius_m`` of a centre
if and only if its WGS84 geodesic distance, as computed by
``pyproj.Geod(ellps="WGS84").inv`` (the same ellipsoidal distance PostGIS uses
for ``geography``), is at most ``radius_m``.

Computing the geodesic for every candidate is slow, so :func:`within_radius`
first uses the spherical haversine, which never differs from the WGS84
geodesic by more than 0.6 % for distances up to a few hundred kilometres, and
only sends the thin band where the two could disagree to pyproj.
"""

from __future__ import annotations

import functools
import math
from typing import TYPE_CHECKING

import numpy as np

from geotarget.units import EARTH_RADIUS_M

__all__ = [
    "BAND_RELATIVE",
    "WGS84",
    "geodesic_distance_m",
    "fast_distance_m",
    "haversine_m",
    "local_distance_m",
    "local_error_bound_m",
    "within_radius",
]


if TYPE_CHECKING:  # pragma: no cover
    from pyproj import Geod

#: pyproj.Geod(ellps="WGS84"): the ellipsoid of every exact distance (created on first use).
WGS84: Geod


@functools.cache
def _geod():
    """The ellipsoid every exact distance in geotarget is measured on (``WGS84``)."""
    from pyproj import Geod  # imported on the first exact measurement: a CLI call that needs none starts sooner

    return Geod(ellps="WGS84")


def __getattr__(name: str):
    if name == "WGS84":  # pyproj.Geod(ellps="WGS84"), created on first use
        globals()["WGS84"] = value = _geod()
        return value
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


#: Half-width of the uncertain band, relative to the radius. The sphere of
#: mean radius and the WGS84 ellipsoid disagree by at most about 0.56 % on a
#: distance; the band is wider than that, so a point outside it is decided
#: the same way by both measures.
BAND_RELATIVE = 0.01

_BAND_ABSOLUTE_M = 0.5


def haversine_m(lat1, lng1, lat2, lng2) -> np.ndarray:
    """Great-circle distance on the mean-radius sphere, in metres (vectorized).

    Examples
    --------
    >>> round(float(haversine_m(0.0, 0.0, 0.0, 1.0)))
    111195
    """
    lat1 = np.radians(np.asarray(lat1, dtype="float64"))
    lat2 = np.radians(np.asarray(lat2, dtype="float64"))
    dlat = lat2 - lat1
    dlng = np.radians(np.asarray(lng2, dtype="float64") - np.asarray(lng1, dtype="float64"))
    a = np.sin(dlat * 0.5) ** 2 + np.cos(lat1) * np.cos(lat2) * np.sin(dlng * 0.5) ** 2
    return 2.0 * EARTH_RADIUS_M * np.arcsin(np.sqrt(np.clip(a, 0.0, 1.0)))


def geodesic_distance_m(lat1, lng1, lat2, lng2) -> np.ndarray:
    """WGS84 geodesic distance in metres (vectorized; pyproj ``Geod.inv``).

    Examples
    --------
    >>> round(float(geodesic_distance_m(0.0, 0.0, 0.0, 1.0)), 3)
    111319.491
    """
    lat1, lng1, lat2, lng2 = np.broadcast_arrays(
        np.asarray(lat1, dtype="float64"),
        np.asarray(lng1, dtype="float64"),
        np.asarray(lat2, dtype="float64"),
        np.asarray(lng2, dtype="float64"),
    )
    shape = lat1.shape
    if lat1.size == 0:
        return np.zeros(shape)
    _, _, dist = _geod().inv(
        np.ascontiguousarray(lng1, dtype="float64").ravel(),
        np.ascontiguousarray(lat1, dtype="float64").ravel(),
        np.ascontiguousarray(lng2, dtype="float64").ravel(),
        np.ascontiguousarray(lat2, dtype="float64").ravel(),
    )
    return np.asarray(dist, dtype="float64").reshape(shape)


_A = 6378137.0
_F = 1 / 298.257223563
_E2 = _F * (2 - _F)
_D2R = math.pi / 180.0

#: Above this latitude the local-plane distance is not used (meridians converge).
LOCAL_MAX_LAT = 80.0


def local_distance_m(lat1, lng1, lat2, lng2) -> np.ndarray:
    """Ellipsoidal distance on the local tangent plane at the mid-latitude (vectorized).

    Uses the WGS84 meridian and prime-vertical radii of curvature at the
    mid-latitude. Its error grows with the cube of the distance; see
    :func:`local_error_bound_m`. Sub-millimetre at a few kilometres.
    ``lat1``/``lng1`` is a single point (the centre); ``lat2``/``lng2`` arrays.

    Examples
    --------
    >>> d = float(local_distance_m(40.758, -73.9855, 40.78, -73.96))
    >>> abs(d - float(geodesic_distance_m(40.758, -73.9855, 40.78, -73.96))) < 0.001
    True
    """
    lat0 = float(lat1)
    lat = np.asarray(lat2, dtype="float64")
    shape = lat.shape
    lat = lat.reshape(-1)
    dlng = np.asarray(lng2, dtype="float64").reshape(-1) - float(lng1)
    if dlng.size and (dlng.max() > 180.0 or dlng.min() < -180.0):
        dlng = (dlng + 180.0) % 360.0 - 180.0
    dlat = lat - lat0
    half = dlat * (0.5 * _D2R)
    if half.size and np.abs(half).max() < 0.02:
        # sin(lat0 + h) by its Taylor series: no transcendental call per point
        s0, c0 = math.sin(lat0 * _D2R), math.cos(lat0 * _D2R)
        h2 = half * half
        s = s0 * (1.0 - h2 * (0.5 - h2 / 24.0)) + c0 * half * (1.0 - h2 * (1.0 / 6.0 - h2 / 120.0))
    else:
        s = np.sin((lat + lat0) * (0.5 * _D2R))
    s *= s  # sin^2 of the mid-latitude
    w2 = 1.0 - _E2 * s
    # dx^2 = (dlng a)^2 cos^2 / w2 ;  dy^2 = (dlat a (1 - e2))^2 / w2^3
    dlng = dlng * (_D2R * _A)
    dlng *= dlng
    dlng *= 1.0 - s
    dlat = dlat * (_D2R * _A * (1.0 - _E2))
    dlat *= dlat
    dlat /= w2 * w2
    dlng += dlat
    dlng /= w2
    return np.sqrt(dlng, out=dlng).reshape(shape)


def local_error_bound_m(distance_m: float, max_abs_lat: float) -> float:
    """A safe upper bound on ``|local_distance_m - geodesic|`` for distances up to ``distance_m``.

    The error of the local-plane formula is of third order in distance and
    grows with ``tan(lat)**2``. The constant was fitted on pyproj's geodesic
    (largest error seen: 0.045 * d**3 / a**2 * (1 + tan**2 lat)) and is used
    here with a five-fold margin, plus one centimetre.
    """
    t = np.tan(np.radians(min(abs(max_abs_lat), LOCAL_MAX_LAT)))
    return 0.25 * distance_m**3 / _A**2 * (1.0 + t * t) + 0.01


def within_radius(
    lat: np.ndarray,
    lng: np.ndarray,
    center_lat: float,
    center_lng: float,
    radius_m: float,
    *,
    with_distance: bool = False,
):
    """Exact WGS84 "distance <= radius" test for many points and one centre.

    Candidates are measured with a fast formula (the local-plane ellipsoidal
    distance, or the haversine near the poles); only points whose fast
    distance is within that formula's error bound of the radius are measured
    again with pyproj's geodesic, so the answer equals the geodesic one.

    Parameters
    ----------
    lat, lng : array-like
        Candidate points in degrees.
    center_lat, center_lng : float
        The centre in degrees.
    radius_m : float
        The radius in metres.
    with_distance : bool, default False
        Also return the distance of the points inside: exact in the band, and
        within :func:`local_error_bound_m` (millimetres) elsewhere.

    Returns
    -------
    numpy.ndarray of bool, or (mask, distance_m)
        ``mask[i]`` is True if point ``i`` is within the radius. With
        ``with_distance`` the distance of each inside point is returned too,
        aligned with ``np.flatnonzero(mask)``.

    Examples
    --------
    >>> import numpy as np
    >>> within_radius(np.array([0.0, 0.0]), np.array([0.01, 0.02]), 0.0, 0.0, 1500.0)
    array([ True, False])
    """
    lat = np.asarray(lat, dtype="float64")
    lng = np.asarray(lng, dtype="float64")
    approx, band = fast_distance_m(center_lat, center_lng, lat, lng, radius_m)
    mask = approx <= radius_m - band
    unsure = np.flatnonzero(np.abs(approx - radius_m) <= band)
    if unsure.size:
        exact = geodesic_distance_m(center_lat, center_lng, lat[unsure], lng[unsure])
        mask[unsure] = exact <= radius_m
        approx = approx.copy()
        approx[unsure] = exact
    if not with_distance:
        return mask
    return mask, approx[mask]


def fast_distance_m(center_lat: float, center_lng: float, lat: np.ndarray, lng: np.ndarray, radius_m: float):
    """Fast distances from a centre and the error bound that holds for them up to ``radius_m``.

    Returns ``(distance_m, band_m)``: every distance of at most about
    ``radius_m`` is within ``band_m`` of the WGS84 geodesic.
    """
    max_lat = max(abs(center_lat), float(np.abs(lat).max()) if lat.size else 0.0)
    if max_lat <= LOCAL_MAX_LAT and radius_m <= 150_000:
        return local_distance_m(center_lat, center_lng, lat, lng), local_error_bound_m(radius_m * 1.02, max_lat)
    return haversine_m(center_lat, center_lng, lat, lng), BAND_RELATIVE * radius_m + _BAND_ABSOLUTE_M
