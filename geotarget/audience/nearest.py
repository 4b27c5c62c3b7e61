"""Each customer's nearest centre, exactly: the many-store radius audience, assigned nearest-first.

A customer in a dense area sits in the disks of many stores. Rather than
refine every store's disk and merge, each candidate of the merged coverings
is given its nearest centre on the sphere (a k-d tree of unit vectors), and
only that one distance is refined to the WGS84 geodesic; the few near-ties
within the sphere/ellipsoid margin are settled with the geodesic against every
centre that could be nearest. Per-centre ``within`` counts are computed only
when asked (:func:`within_counts`).
"""

from __future__ import annotations

import numpy as np

from geotarget.audience import budget as _budget
from geotarget.audience.membership import _charge_disks, _disk_ranges, _radius_members
from geotarget.geo.geodesy import fast_distance_m, geodesic_distance_m
from geotarget.units import EARTH_RADIUS_M

__all__ = ["within_counts"]


def _nearest(index, centers_lat, centers_lng, radius_m):
    """Members of many centres, each assigned its nearest centre exactly (WGS84), nearest first.

    Returns ``(positions, centre of each, distance_m of each, within)``; ``within``
    (customers in range of each centre, counted once per centre) is None for
    several centres: :func:`within_counts` computes it when asked.

    Instead of refining every centre's disk and merging (a customer of a dense
    area sits in many disks), each candidate of the merged coverings is given
    its nearest centre on the sphere (a k-d tree of unit vectors), and only
    that distance is refined. The sphere and the WGS84 ellipsoid disagree by
    at most ``_SPHERE_RELATIVE`` of a distance, so the spherical nearest is the
    geodesic nearest unless the second is within that margin; those few
    near-ties are settled with the exact geodesic against every centre that
    could be nearest.
    """
    _charge_disks(index, centers_lat, centers_lng, radius_m)
    centers_lat = np.asarray(centers_lat, dtype="float64")
    centers_lng = np.asarray(centers_lng, dtype="float64")
    if centers_lat.size == 1:
        pos, dist, _ = _radius_members(index, float(centers_lat[0]), float(centers_lng[0]), radius_m)
        return pos, np.zeros(pos.size, dtype=np.int64), dist, np.array([pos.size])
    empty = (np.zeros(0, dtype=np.int64), np.zeros(0, dtype=np.int64), np.zeros(0), None)
    ranges = [_disk_ranges(round(float(a), 12), round(float(b), 12), radius_m, index.res)
              for a, b in zip(centers_lat, centers_lng)]
    cand = index.positions_in_ranges(_merge_ranges(np.concatenate([r for r in ranges if r.size] or [np.zeros((0, 2))])))
    if cand.size == 0:
        return empty
    _budget.charge_candidates(cand.size)
    _budget.check_time()
    from scipy.spatial import cKDTree

    margin = 1.0 + _SPHERE_RELATIVE
    reach = radius_m * margin / (2.0 - margin) + 1.0  # a sphere distance no centre in range can exceed
    tree = cKDTree(_unit_vectors(centers_lat, centers_lng))
    chord, nearest = tree.query(_unit_vectors(index.lat[cand], index.lng[cand]), k=2,
                                distance_upper_bound=_chord(reach), workers=-1)
    keep = np.isfinite(chord[:, 0])
    cand, chord, nearest = cand[keep], chord[keep], nearest[keep]
    which = nearest[:, 0].astype(np.int64)
    # near-ties: the second sphere-nearest could be the geodesic nearest
    s1, s2 = _arc(chord[:, 0]), _arc(chord[:, 1])
    tied = np.flatnonzero(s2 * (2.0 - margin) <= s1 * margin)
    if tied.size:
        which[tied] = _settle_ties(tree, index.lat[cand[tied]], index.lng[cand[tied]], s1[tied] * margin / (2.0 - margin),
                                   centers_lat, centers_lng)
    dist = np.empty(cand.size)
    order = np.argsort(which, kind="stable")
    bounds = np.flatnonzero(np.diff(which[order])) + 1
    for group in np.split(order, bounds):
        k = int(which[group[0]])
        dist[group] = _refined_distance(index.lat[cand[group]], index.lng[cand[group]],
                                        float(centers_lat[k]), float(centers_lng[k]), radius_m)
    inside = dist <= radius_m
    return cand[inside], which[inside], dist[inside], None


#: The WGS84 geodesic and the mean-radius sphere's great circle differ by less than this, relatively:
#: the ellipsoid's radii of curvature lie within 6335.4-6399.6 km, i.e. -0.56 % to +0.45 % of 6371.0 km.
_SPHERE_RELATIVE = 0.006


def within_counts(index, centers_lat, centers_lng, radius_m) -> np.ndarray:
    """Customers within the radius of each centre, a customer counted for every centre in range."""
    return np.array([_radius_members(index, float(a), float(b), radius_m)[0].size
                     for a, b in zip(centers_lat, centers_lng)], dtype=np.int64)


def _merge_ranges(ranges: np.ndarray) -> np.ndarray:
    """Inclusive [lo, hi] uint64 ranges merged where they overlap or touch."""
    if ranges.shape[0] <= 1:
        return ranges.astype(np.uint64)
    ranges = ranges.astype(np.uint64)
    ranges = ranges[np.argsort(ranges[:, 0], kind="stable")]
    lo, hi = ranges[:, 0], np.maximum.accumulate(ranges[:, 1])
    starts = np.concatenate(([True], lo[1:] > hi[:-1] + np.uint64(1)))
    first = np.flatnonzero(starts)
    last = np.concatenate((first[1:] - 1, [len(lo) - 1]))
    return np.column_stack((lo[first], hi[last]))


def _unit_vectors(lat, lng) -> np.ndarray:
    phi, lam = np.radians(lat), np.radians(lng)
    cos_phi = np.cos(phi)
    return np.column_stack((cos_phi * np.cos(lam), cos_phi * np.sin(lam), np.sin(phi)))


def _chord(arc_m):
    return 2.0 * np.sin(np.minimum(np.asarray(arc_m, dtype="float64") / EARTH_RADIUS_M, np.pi) / 2.0)


def _arc(chord) -> np.ndarray:
    """Sphere distance (metres, mean radius) of a unit-vector chord; inf stays inf."""
    with np.errstate(invalid="ignore"):
        return 2.0 * EARTH_RADIUS_M * np.arcsin(np.minimum(chord, 2.0) / 2.0)


def _settle_ties(tree, lat, lng, reach_m, centers_lat, centers_lng) -> np.ndarray:
    """The geodesic-nearest centre of each point among every centre within ``reach_m`` on the sphere."""
    reach = _chord(reach_m * 1.0000001 + 0.01)
    units = _unit_vectors(lat, lng)
    k = min(8, tree.n)
    chord, near = tree.query(units, k=k, distance_upper_bound=float(reach.max()), workers=-1)
    chord, near = chord.reshape(len(lat), k), near.reshape(len(lat), k)
    valid = chord <= reach[:, None]
    owner, slot = np.nonzero(valid)
    centre = near[owner, slot].astype(np.int64)
    full = np.flatnonzero(valid[:, -1]) if k < tree.n else np.zeros(0, dtype=np.int64)
    if full.size:  # more than k centres in reach: take them all
        keep = ~np.isin(owner, full)
        owner, centre = owner[keep], centre[keep]
        groups = tree.query_ball_point(units[full], reach[full])
        sizes = np.fromiter((len(g) for g in groups), dtype=np.int64, count=len(groups))
        owner = np.concatenate((owner, np.repeat(full, sizes)))
        centre = np.concatenate((centre, np.fromiter((c for g in groups for c in g), dtype=np.int64,
                                                     count=int(sizes.sum()))))
    d = geodesic_distance_m(lat[owner], lng[owner], centers_lat[centre], centers_lng[centre])
    # per point, the smallest distance; equal distances go to the first centre, as one by one would
    order = np.lexsort((centre, d, owner))
    first = np.concatenate(([True], owner[order][1:] != owner[order][:-1]))
    return centre[order][first]


def _refined_distance(plat, plng, clat: float, clng: float, radius_m: float) -> np.ndarray:
    """Distances exact where they decide membership (the geodesic inside the fast formula's error band)."""
    dist, band = fast_distance_m(clat, clng, plat, plng, radius_m)
    if band - 0.01 > 0.001:
        return geodesic_distance_m(clat, clng, plat, plng)
    unsure = np.flatnonzero(np.abs(dist - radius_m) <= band)
    if unsure.size:
        dist[unsure] = geodesic_distance_m(clat, clng, plat[unsure], plng[unsure])
    return dist
