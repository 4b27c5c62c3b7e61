"""A multi-level lat/lng bucket grid, and conservative boxes around geodesic disks.

Shapes are filed in the buckets their box touches, at the level where the box
spans at most :data:`SPAN` buckets a side; a point looks up its one bucket at
each level in use. Levels double in size from 0.005 degrees (about 550 m of
latitude) to about 20 degrees.
"""

from __future__ import annotations

import math

__all__ = ["bounding_box", "box_buckets", "bucket", "bucket_bounds", "buckets", "freeze", "level_for", "LEVELS", "SPAN"]

#: Bucket side in degrees of each level.
LEVELS = tuple(0.005 * 2**k for k in range(13))
#: Most buckets a side a shape spans at its level.
SPAN = 8
_KEY = 1 << 17  # more than 360 / 0.005 buckets of longitude
_A = 6378137.0
_E2 = (1 / 298.257223563) * (2 - 1 / 298.257223563)
_M_PER_DEG_LAT_MIN = _A * (1 - _E2) * math.pi / 180.0  # meridian radius of curvature is least at the equator
_M_PER_DEG_LNG_EQ = _A * math.pi / 180.0  # the prime-vertical radius is at least a
_SLACK = 1.001


def bounding_box(lat: float, lng: float, radius_m: float) -> tuple[float, float, list[tuple[float, float]]]:
    """A lat/lng box holding every point within geodesic ``radius_m``: (lat_lo, lat_hi, lng_ranges).

    On WGS84 a geodesic of length ``s`` moves at most ``s / (a (1 - e^2))``
    radians in latitude and, staying within that latitude band, at most
    ``s / (a cos(lat_far))`` radians in longitude. Longitude ranges are split
    at the antimeridian; near a pole the box takes every longitude.

    Examples
    --------
    >>> lo, hi, lngs = bounding_box(0.0, 179.99, 5000.0)
    >>> round(hi - lo, 4), [tuple(round(v, 3) for v in r) for r in lngs]
    (0.0905, [(179.945, 180.0), (-180.0, -179.965)])
    """
    dlat = radius_m / _M_PER_DEG_LAT_MIN * _SLACK + 1e-9
    lat_lo, lat_hi = max(-90.0, lat - dlat), min(90.0, lat + dlat)
    lat_far = max(abs(lat_lo), abs(lat_hi))
    cos_far = math.cos(math.radians(lat_far))
    if lat_far >= 89.9 or cos_far <= 0:
        return lat_lo, lat_hi, [(-180.0, 180.0)]
    dlng = radius_m / (_M_PER_DEG_LNG_EQ * cos_far) * _SLACK + 1e-9
    if dlng >= 180.0:
        return lat_lo, lat_hi, [(-180.0, 180.0)]
    lo, hi = lng - dlng, lng + dlng
    ranges = [(max(lo, -180.0), min(hi, 180.0))]
    if hi >= 180.0:
        ranges.append((-180.0, max(hi - 360.0, -180.0)))
    if lo <= -180.0:
        ranges.append((min(lo + 360.0, 180.0), 180.0))
    return lat_lo, lat_hi, ranges


def level_for(lat_extent: float, lng_extent: float) -> int:
    """The finest level whose buckets cover the extents with at most :data:`SPAN` a side."""
    for k, side in enumerate(LEVELS):
        if lat_extent <= SPAN * side and lng_extent <= SPAN * side:
            return k
    return len(LEVELS) - 1


def bucket(level: int, lat: float, lng: float) -> int:
    """The key of the bucket holding a point at a level."""
    side = LEVELS[level]
    return min(int((lat + 90.0) // side), int(180.0 / side)) * _KEY + min(int((lng + 180.0) // side),
                                                                          int(360.0 / side))


def buckets(level: int, lat_lo: float, lat_hi: float, lng_ranges) -> list[int]:
    """Keys of every bucket a box touches."""
    y0, y1 = bucket(level, lat_lo, 0.0) // _KEY, bucket(level, lat_hi, 0.0) // _KEY
    out = []
    for lo, hi in lng_ranges:
        x0, x1 = bucket(level, 0.0, lo) % _KEY, bucket(level, 0.0, hi) % _KEY
        out.extend(iy * _KEY + ix for iy in range(y0, y1 + 1) for ix in range(x0, x1 + 1))
    return out


def box_buckets(lat_lo: float, lat_hi: float, lng_ranges) -> tuple[int, list[int]]:
    """The level for a box and the keys of the buckets it touches there."""
    level = level_for(lat_hi - lat_lo, max(hi - lo for lo, hi in lng_ranges))
    return level, buckets(level, lat_lo, lat_hi, lng_ranges)


def bucket_bounds(level: int, key: int, eps: float = 1e-9) -> tuple[float, float, float, float]:
    """(xmin, ymin, xmax, ymax) of a bucket, widened by ``eps`` degrees."""
    side = LEVELS[level]
    iy, ix = divmod(key, _KEY)
    return (ix * side - 180.0 - eps, iy * side - 90.0 - eps, (ix + 1) * side - 180.0 + eps,
            (iy + 1) * side - 90.0 + eps)


def freeze(tables: dict) -> tuple:
    """{level: {key: list}} as ((level, {key: tuple}), ...), finest level first."""
    return tuple((lvl, {k: tuple(v) for k, v in t.items()}) for lvl, t in sorted(tables.items()))
