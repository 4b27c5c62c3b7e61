"""The geodesic truth every answer is checked against, written independently of geotarget.

Membership in a radius is decided by ``pyproj.Geod(ellps="WGS84").inv``. To
keep 10-million-point checks affordable, a spherical distance screens every
candidate first and only points in a band around the radius (far wider than
any sphere/ellipsoid disagreement) get the ellipsoidal distance. Disagreements
with a peer are then measured exactly, so each check reports how far from the
boundary its worst miss lies: 0.01 m or less counts as "on the boundary".
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

import numpy as np
from pyproj import Geod

__all__ = [
    "BOUNDARY_M",
    "Agreement",
    "compare_heatmap",
    "heatmap_truth",
    "compare_rows",
    "distance_error",
    "many_truth",
    "nearest_check",
    "radius_offset",
    "region_offset",
    "region_truth",
    "single_truth",
]

GEOD = Geod(ellps="WGS84")
_MEAN_RADIUS_M = 6_371_008.8
_SCREEN_BAND = 0.01  # relative; sphere and ellipsoid differ by < 0.6 %

#: Points at most this far from a boundary may fall either way.
BOUNDARY_M = 0.01


def _geodesic(lat1, lng1, lat2, lng2) -> np.ndarray:
    lat1, lng1, lat2, lng2 = (np.ascontiguousarray(np.broadcast_to(v, np.broadcast(lat1, lng1, lat2, lng2).shape),
                                                   dtype="float64") for v in (lat1, lng1, lat2, lng2))
    if lat1.size == 0:
        return np.zeros(lat1.shape)
    return np.asarray(GEOD.inv(lng1, lat1, lng2, lat2)[2])


def _sphere(lat1, lng1, lat2, lng2) -> np.ndarray:
    p1, p2 = np.radians(lat1), np.radians(lat2)
    h = np.sin((p2 - p1) / 2) ** 2 + np.cos(p1) * np.cos(p2) * np.sin(np.radians(lng2 - lng1) / 2) ** 2
    return 2 * _MEAN_RADIUS_M * np.arcsin(np.sqrt(np.minimum(h, 1.0)))


def _within(lat, lng, clat, clng, radius_m) -> np.ndarray:
    approx = _sphere(clat, clng, lat, lng)
    inside = approx <= radius_m * (1 - _SCREEN_BAND)
    band = np.flatnonzero(np.abs(approx - radius_m) <= radius_m * _SCREEN_BAND)
    inside[band] = _geodesic(clat, clng, lat[band], lng[band]) <= radius_m
    return inside


def single_truth(lat, lng, clat, clng, radius_m) -> np.ndarray:
    """Boolean mask of the points within ``radius_m`` (WGS84 geodesic) of one centre."""
    return _within(np.asarray(lat), np.asarray(lng), clat, clng, radius_m)


class _LatIndex:
    """Points sorted by latitude, sliced per centre by binary search."""

    def __init__(self, lat, lng):
        self.order = np.argsort(lat, kind="stable")
        self.lat = np.asarray(lat)[self.order]
        self.lng = np.asarray(lng)[self.order]

    def candidates(self, clat, clng, radius_m) -> np.ndarray:
        dlat = np.degrees(radius_m / 6_335_000.0) * 1.05  # meridian radius of curvature >= 6,335 km
        lo, hi = np.searchsorted(self.lat, [clat - dlat, clat + dlat])
        dlng = dlat / np.cos(np.radians(abs(clat) + dlat))
        sel = np.flatnonzero(np.abs(self.lng[lo:hi] - clng) <= dlng) + lo
        return sel


def many_truth(lat, lng, store_lat, store_lng, radius_m) -> np.ndarray:
    """Boolean mask of the points within ``radius_m`` of at least one store."""
    index = _LatIndex(lat, lng)
    hit = np.zeros(len(index.lat), dtype=bool)
    for clat, clng in zip(store_lat, store_lng):
        sel = index.candidates(clat, clng, radius_m)
        sel = sel[~hit[sel]]
        hit[sel[_within(index.lat[sel], index.lng[sel], clat, clng, radius_m)]] = True
    out = np.zeros_like(hit)
    out[index.order] = hit
    return out


def region_truth(lat, lng, polygons) -> np.ndarray:
    """Boolean mask of the points covered by any polygon (boundary counts as inside)."""
    import shapely

    lat = np.asarray(lat)
    lng = np.asarray(lng)
    hit = np.zeros(lat.size, dtype=bool)
    for poly in polygons:
        xmin, ymin, xmax, ymax = poly.bounds
        sel = np.flatnonzero((lng >= xmin) & (lng <= xmax) & (lat >= ymin) & (lat <= ymax) & ~hit)
        shapely.prepare(poly)
        hit[sel[shapely.covers(poly, shapely.points(lng[sel], lat[sel]))]] = True
    return hit


@dataclass
class Agreement:
    """How one answer compares with the truth."""

    count: int
    truth: int
    missing: int
    extra: int
    worst_miss_m: float  # largest distance from the boundary among wrong points
    note: str = ""

    @property
    def exact(self) -> bool:
        return self.worst_miss_m <= BOUNDARY_M

    def as_dict(self) -> dict:
        return asdict(self) | {"exact": self.exact}


def compare_rows(rows: np.ndarray, truth: np.ndarray, boundary_offset) -> Agreement:
    """Compare result row positions with a truth mask.

    ``boundary_offset(wrong_rows)`` gives each wrong point's distance from the
    boundary in metres, measured exactly.
    """
    rows = np.asarray(rows, dtype="int64")
    got = np.zeros(truth.size, dtype=bool)
    got[rows] = True
    dupes = rows.size - int(got.sum())
    wrong = np.flatnonzero(got != truth)
    missing = int((truth & ~got).sum())
    worst = float(np.max(boundary_offset(wrong))) if wrong.size else 0.0
    note = f"{dupes} duplicate rows" if dupes else ""
    return Agreement(int(got.sum()), int(truth.sum()), missing, int(wrong.size) - missing, worst, note)


def radius_offset(lat, lng, centres_lat, centres_lng, radius_m, *, cap: int = 20_000):
    """A ``boundary_offset`` for radius answers: |nearest geodesic distance - radius|."""
    centres_lat = np.asarray(centres_lat, dtype="float64")
    centres_lng = np.asarray(centres_lng, dtype="float64")

    def offset(wrong: np.ndarray) -> np.ndarray:
        wrong = wrong[:cap]
        best = np.full(wrong.size, np.inf)
        for clat, clng in zip(centres_lat, centres_lng):
            best = np.minimum(best, _geodesic(clat, clng, lat[wrong], lng[wrong]))
        return np.abs(best - radius_m)

    return offset


def region_offset(lat, lng, polygons, *, cap: int = 20_000):
    """A ``boundary_offset`` for polygon answers: metres from the nearest polygon edge (approx.)."""
    import shapely

    boundary = shapely.union_all([p.boundary for p in polygons])

    def offset(wrong: np.ndarray) -> np.ndarray:
        wrong = wrong[:cap]
        deg = shapely.distance(boundary, shapely.points(lng[wrong], lat[wrong]))
        return np.asarray(deg) * 111_000.0 * np.cos(np.radians(np.asarray(lat[wrong])))

    return offset


def nearest_check(rows, store_ids, distance_m, lat, lng, stores, *, sample: int = 2000, seed: int = 7) -> dict:
    """On a sample of result rows, is the assigned store the geodesic nearest, and how exact is ``distance_m``?"""
    rows = np.asarray(rows)
    if rows.size == 0:
        return {"checked": 0, "nearest_ok": 0, "max_distance_error_m": 0.0}
    pick = np.random.default_rng(seed).choice(rows.size, size=min(sample, rows.size), replace=False)
    r = rows[pick]
    s_lat = stores["lat"].to_numpy()
    s_lng = stores["lng"].to_numpy()
    dist = np.stack([_geodesic(a, b, lat[r], lng[r]) for a, b in zip(s_lat, s_lng)])
    best = dist.min(axis=0)
    pos = {sid: i for i, sid in enumerate(stores["store_id"])}
    assigned = np.array([pos[s] for s in np.asarray(store_ids)[pick]])
    assigned_d = dist[assigned, np.arange(r.size)]
    return {
        "checked": int(r.size),
        "nearest_ok": int((assigned_d - best <= BOUNDARY_M).sum()),
        "max_distance_error_m": float(np.max(np.abs(np.asarray(distance_m, dtype="float64")[pick] - assigned_d))),
    }


def distance_error(rows, distance_m, lat, lng, clat, clng, *, sample: int = 20_000) -> float:
    """Largest |reported distance - geodesic distance| over a sample of rows, in metres."""
    rows = np.asarray(rows)
    if rows.size == 0:
        return 0.0
    step = max(1, rows.size // sample)
    r = rows[::step]
    return float(np.max(np.abs(np.asarray(distance_m, dtype="float64")[::step] - _geodesic(clat, clng, lat[r], lng[r]))))


def heatmap_truth(lat, lng, res: int, k_min: int) -> tuple[np.ndarray, np.ndarray]:
    """(cells, counts) of the cells holding at least ``k_min`` points, each point in ``h3.latlng_to_cell``.

    Computed with h3ronpy (the Rust binding of the same C library; the test
    suite checks that it agrees with h3-py point for point).
    """
    from h3ronpy.vector import coordinates_to_cells

    cells = np.asarray(coordinates_to_cells(np.asarray(lat, dtype="float64"), np.asarray(lng, dtype="float64"), res),
                       dtype="uint64")
    uniq, counts = np.unique(cells, return_counts=True)
    return uniq[counts >= k_min], counts[counts >= k_min]


def compare_heatmap(cells, counts, truth_cells, truth_counts) -> Agreement:
    """Cell-by-cell comparison of a count heatmap with the truth."""
    got = dict(zip(np.asarray(cells, dtype="uint64").tolist(), np.asarray(counts).tolist()))
    want = dict(zip(np.asarray(truth_cells, dtype="uint64").tolist(), np.asarray(truth_counts).tolist()))
    missing = sum(1 for c in want if c not in got)
    extra = sum(1 for c in got if c not in want)
    differ = sum(1 for c, n in want.items() if c in got and got[c] != n)
    note = f"{differ} cells with a different count" if differ else ""
    return Agreement(len(got), len(want), missing, extra, 0.0 if not (missing or extra or differ) else float("inf"), note)
