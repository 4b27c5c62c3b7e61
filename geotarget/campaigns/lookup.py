"""The reverse lookup: which stores are near a point, which promotions apply there.

Both questions are answered from an immutable in-memory snapshot built from
the database in one transaction and tagged with its ``data_version``; a write
(ingest, campaign change) makes the engine build a new one and swap it in, so
a lookup never mixes two states.

How a lookup stays exact and fast (single points: plain ``math``, no numpy):

- **Grid** (:mod:`geotarget.geo.grid`). Every store with radius campaigns is
  filed, under the box of its largest radius, in the buckets of a multi-level
  lat/lng grid; so is every region polygon, in the buckets its polygon
  touches. The box of a geodesic disk is provably wide enough.
- **Stores.** A store's campaigns are sorted by radius, so one distance per
  nearby store decides all of them with a binary search. The haversine
  decides unless the geodesic could be on the other side of a radius (the
  two differ by under 1 %); then ``pyproj.Geod`` measures it once.
- **Regions.** A bucket lying wholly inside a polygon answers without a
  test; in an edge bucket ``shapely.intersects_xy`` decides (boundary
  inside), as audiences do.
- **Cells.** An explicit cell set is a dict lookup of the parent, at each
  resolution present, of the point's resolution-15 cell.
"""

from __future__ import annotations

import math
import threading
from bisect import bisect_left
from dataclasses import dataclass, field

from geotarget.geo import grid as _grid
from geotarget.geo.geodesy import _A, _E2, LOCAL_MAX_LAT, WGS84, local_error_bound_m
from geotarget.units import EARTH_RADIUS_M

__all__ = ["LookupCache", "LookupSnapshot", "build_snapshot"]

_TWO_R = 2.0 * EARTH_RADIUS_M
_REL = 0.01  # the haversine and the WGS84 geodesic differ by less than this, relatively (about 0.56 % at most)
_ABS = 0.5  # metres of slack on top


def _geodesic_m(lat1: float, lng1: float, lat2: float, lng2: float) -> float:
    return WGS84.inv(lng1, lat1, lng2, lat2)[2]


def _local_bounds(lat1: float, lng1: float, lat2: float, lng2: float, low: float, high: float):
    """Narrow [low, high] around the geodesic distance with the local-plane ellipsoidal distance.

    The scalar form of :func:`geotarget.geo.geodesy.local_distance_m`, whose error
    :func:`geotarget.geo.geodesy.local_error_bound_m` bounds (centimetres at city
    scale); used below 80 degrees of latitude and 150 km only.

    Examples
    --------
    >>> lo, hi = _local_bounds(40.758, -73.9855, 40.78, -73.96, 3000.0, 3500.0)
    >>> bool(lo <= _geodesic_m(40.758, -73.9855, 40.78, -73.96) <= hi), round(float(hi - lo), 3)
    (True, 0.021)
    """
    far = max(abs(lat1), abs(lat2))
    if far > LOCAL_MAX_LAT or low > 150_000.0:
        return low, high
    phi = math.radians((lat1 + lat2) * 0.5)
    s = math.sin(phi)
    w2 = 1.0 - _E2 * s * s
    n = _A / math.sqrt(w2)
    m = n * (1.0 - _E2) / w2
    dy = math.radians(lat2 - lat1) * m
    dx = math.radians((lng2 - lng1 + 180.0) % 360.0 - 180.0) * n * math.cos(phi)
    d = math.hypot(dx, dy)
    err = float(local_error_bound_m(min(high, 150_000.0) * 1.02, far))
    return max(low, d - err), min(high, d + err)


@dataclass(frozen=True, eq=False)
class LookupSnapshot:
    """Stores, campaigns and their geofence indexes at one ``data_version``.

    Built by :func:`build_snapshot` and never changed afterwards, except that
    the customer checks are attached to ``extra`` once, on first use.
    """

    version: int
    campaigns: tuple  # every stored campaign, sorted by name
    windows: tuple  # campaign position -> (start_ts, end_ts)
    store_ids: tuple
    store_names: tuple
    store_lat: tuple
    store_lng: tuple
    store_grid: dict  # level -> bucket -> store positions, every store at every level
    fence_grid: tuple  # grid of the stores with radius campaigns, by their largest radius
    store_rad: tuple  # store position -> (lat radians, lng radians, cos lat)
    store_radii: tuple  # store position -> radii ascending
    store_from: tuple  # store position -> k -> campaigns with radius >= radii[k]
    region_sure: tuple  # grid: bucket -> campaigns of the regions holding the whole bucket
    region_edge: tuple  # grid: bucket -> regions whose edge crosses the bucket
    regions: tuple  # region number -> (prepared polygon, campaigns)
    cell_res: tuple
    cell_campaigns: dict  # H3 cell (int) -> campaign positions
    extra: dict = field(default_factory=dict)

    def campaigns_at(self, lat: float, lng: float, ts: float) -> list[int]:
        """Positions of the active campaigns whose geofence holds the point at ``ts`` (epoch seconds), in name order."""
        found: set = set()
        phi, lam = math.radians(lat), math.radians(lng)
        cos_phi = math.cos(phi)
        sin, asin = math.sin, math.asin
        for level, table in self.fence_grid:
            for i in table.get(_grid.bucket(level, lat, lng), ()):
                slat, slng, scos = self.store_rad[i]
                a = sin((slat - phi) * 0.5) ** 2 + cos_phi * scos * sin((slng - lam) * 0.5) ** 2
                d = _TWO_R * asin(math.sqrt(min(1.0, a)))
                radii = self.store_radii[i]
                low = d / (1.0 + _REL) - _ABS  # the geodesic distance lies in [low, high]
                if low > radii[-1]:
                    continue
                k = bisect_left(radii, low)
                high = d / (1.0 - _REL) + _ABS
                if k < len(radii) and radii[k] < high:  # a radius could fall either side: narrow, then measure
                    low, high = _local_bounds(lat, lng, self.store_lat[i], self.store_lng[i], low, high)
                    k = bisect_left(radii, low)
                    if k < len(radii) and radii[k] < high:
                        k = bisect_left(radii, _geodesic_m(lat, lng, self.store_lat[i], self.store_lng[i]))
                if k < len(radii):
                    found.update(self.store_from[i][k])
        for level, table in self.region_sure:
            hit = table.get(_grid.bucket(level, lat, lng))
            if hit:
                found.update(hit)
        for level, table in self.region_edge:
            for r in table.get(_grid.bucket(level, lat, lng), ()):
                geom, camps = self.regions[r]
                if _intersects(geom, lng, lat):
                    found.update(camps)
        if self.cell_res:
            from h3.api.basic_int import latlng_to_cell

            fine = latlng_to_cell(lat, lng, 15)
            for res in self.cell_res:
                low_bits = (1 << (3 * (15 - res))) - 1
                hit = self.cell_campaigns.get((fine & ~((0xF << 52) | low_bits)) | (res << 52) | low_bits)
                if hit:
                    found.update(hit)
        return sorted(found & self.live_at(ts))

    def live_at(self, ts: float) -> frozenset:
        """Positions of the active campaigns whose window holds ``ts``; cached between window edges."""
        cached = self.extra.get("live")
        if cached is not None and cached[0] <= ts < cached[1]:
            return cached[2]
        lo, hi = -math.inf, math.inf
        live = []
        for pos, (start, end) in enumerate(self.windows):
            if start <= ts < end:
                live.append(pos)
                hi = min(hi, end)
            elif ts < start:
                hi = min(hi, start)
            else:
                lo = max(lo, end)
            if start <= ts:
                lo = max(lo, start)
        live_set = frozenset(p for p in live if self.campaigns[p].status == "active")
        self.extra["live"] = (lo, hi, live_set)  # one tuple swapped in whole: safe for concurrent readers
        return live_set

    def stores_within(self, lat: float, lng: float, radius_m: float) -> list[tuple[float, int]]:
        """(exact geodesic distance, store position) of the stores within the radius, nearest first."""
        level, keys = _grid.box_buckets(*_grid.bounding_box(lat, lng, radius_m))
        table = self.store_grid.get(level, {})
        phi, lam = math.radians(lat), math.radians(lng)
        cos_phi = math.cos(phi)
        sin, asin = math.sin, math.asin
        limit = (radius_m + _ABS) * (1.0 + _REL)
        near = []
        for key in keys:
            for i in table.get(key, ()):
                slat, slng, scos = self.store_rad[i]
                a = sin((slat - phi) * 0.5) ** 2 + cos_phi * scos * sin((slng - lam) * 0.5) ** 2
                if _TWO_R * asin(math.sqrt(min(1.0, a))) <= limit:
                    near.append(i)
        if not near:
            return []
        if len(near) > 8:
            import numpy as np

            from geotarget.geo.geodesy import WGS84

            n = len(near)
            dist = WGS84.inv(np.full(n, lng), np.full(n, lat), np.array([self.store_lng[i] for i in near]),
                             np.array([self.store_lat[i] for i in near]))[2].tolist()
        else:
            dist = [_geodesic_m(lat, lng, self.store_lat[i], self.store_lng[i]) for i in near]
        out = [(d, i) for d, i in zip(dist, near) if d <= radius_m]
        out.sort()  # store positions follow store ids, so ties go by id
        return out


def _intersects(geom, x: float, y: float) -> bool:
    import shapely

    return bool(shapely.intersects_xy(geom, x, y))


def _region_shapes(con, fences) -> dict:
    """(layer, region_id) -> polygon, for the regions the campaigns use."""
    import shapely

    wanted = {(f["layer"], r) for f in fences for r in f["regions"]}
    out = {}
    for layer in sorted({w[0] for w in wanted}):
        for rid, wkb in con.execute("SELECT region_id, geometry FROM regions WHERE layer = $l",
                                    {"l": layer}).fetchall():
            if (layer, rid) in wanted:
                geom = shapely.from_wkb(bytes(wkb))
                out[(layer, rid)] = geom if geom.is_valid else shapely.make_valid(geom)
    return out


def build_snapshot(store, previous: LookupSnapshot | None = None) -> LookupSnapshot:
    """Read stores, campaigns and the regions they use in one transaction, and index them.

    Campaigns unchanged since ``previous`` are reused rather than parsed again.
    """
    from geotarget.campaigns.campaign import load_campaigns

    reuse = {(c.id, c.updated_at): c for c in previous.campaigns} if previous is not None else None
    con = store.con
    con.execute("BEGIN TRANSACTION")
    try:
        version = int(con.execute("SELECT value FROM meta WHERE key = 'data_version'").fetchall()[0][0])
        stores = con.execute("SELECT store_id, name, lat, lng FROM stores ORDER BY store_id").fetchall()
        campaigns = tuple(load_campaigns(con, reuse=reuse))
        regions = _region_shapes(con, [c.geofence for c in campaigns
                                       if c.status == "active" and c.geofence["kind"] == "regions"])
    finally:
        con.execute("COMMIT")
    return _index(version, stores, campaigns, regions)


def _suffixes(pairs: list[tuple[float, int]]) -> tuple[tuple, tuple]:
    """Radii ascending, and for each the campaigns whose radius is at least it."""
    radii = sorted({r for r, _ in pairs})
    out, acc = [], set()
    by_radius: dict = {}
    for r, pos in pairs:
        by_radius.setdefault(r, []).append(pos)
    for r in reversed(radii):
        acc.update(by_radius[r])
        out.append(tuple(sorted(acc)))
    return tuple(radii), tuple(reversed(out))


def _index(version, stores, campaigns, regions) -> LookupSnapshot:
    store_ids = tuple(str(r[0]) for r in stores)
    slat = tuple(float(r[2]) for r in stores)
    slng = tuple(float(r[3]) for r in stores)
    position = {s: i for i, s in enumerate(store_ids)}
    store_grid: dict = {}
    for i, (la, ln) in enumerate(zip(slat, slng)):
        for level in range(len(_grid.LEVELS)):
            store_grid.setdefault(level, {}).setdefault(_grid.bucket(level, la, ln), []).append(i)
    per_store: dict = {}
    per_region: dict = {}
    cell_campaigns: dict = {}
    for pos, c in enumerate(campaigns):
        if c.status != "active":
            continue
        fence = c.geofence
        if fence["kind"] == "radius":
            for s in fence["stores"]:
                if s in position:  # a store gone since the campaign was made no longer counts
                    per_store.setdefault(position[s], []).append((fence["radius_m"], pos))
        elif fence["kind"] == "regions":
            for rid in fence["regions"]:
                if (fence["layer"], rid) in regions:
                    per_region.setdefault((fence["layer"], rid), []).append(pos)
        else:
            import h3

            for cell in fence["cells"]:
                cell_campaigns.setdefault(h3.str_to_int(cell), []).append(pos)
    fence_grid: dict = {}
    radii, suffix = [()] * len(store_ids), [()] * len(store_ids)
    for i, pairs in per_store.items():
        radii[i], suffix[i] = _suffixes(pairs)
        level, keys = _grid.box_buckets(*_grid.bounding_box(slat[i], slng[i], radii[i][-1]))
        for key in keys:
            fence_grid.setdefault(level, {}).setdefault(key, []).append(i)
    sure, edge, region_list = _index_regions(regions, per_region)
    cell_res = tuple(sorted({(cell >> 52) & 0xF for cell in cell_campaigns}))
    return LookupSnapshot(
        version=version, campaigns=campaigns, windows=tuple(c._window for c in campaigns), store_ids=store_ids,
        store_names=tuple(None if r[1] is None else str(r[1]) for r in stores), store_lat=slat, store_lng=slng,
        store_grid=dict(_grid.freeze(store_grid)), fence_grid=_grid.freeze(fence_grid),
        store_rad=tuple((math.radians(a), math.radians(b), math.cos(math.radians(a))) for a, b in zip(slat, slng)),
        store_radii=tuple(radii), store_from=tuple(suffix), region_sure=sure, region_edge=edge,
        regions=tuple(region_list), cell_res=cell_res,
        cell_campaigns={k: tuple(sorted(set(v))) for k, v in cell_campaigns.items()},
    )


def _index_regions(regions: dict, per_region: dict):
    """Grids of the buckets wholly inside a region (campaigns directly) and on its edge (the region)."""
    import numpy as np
    import shapely

    sure: dict = {}
    edge: dict = {}
    region_list = []
    for key, camps in per_region.items():
        geom = regions[key]
        shapely.prepare(geom)
        number = len(region_list)
        region_list.append((geom, tuple(sorted(set(camps)))))
        xmin, ymin, xmax, ymax = geom.bounds
        level, keys = _grid.box_buckets(ymin, ymax, [(xmin, xmax)])
        boxes = shapely.box(*np.array([_grid.bucket_bounds(level, k) for k in keys]).T)
        inside = shapely.contains(geom, boxes)
        touching = shapely.intersects(geom, boxes)
        for k, whole, touch in zip(keys, inside, touching):
            if whole:
                sure.setdefault(level, {}).setdefault(k, set()).update(camps)
            elif touch:
                edge.setdefault(level, {}).setdefault(k, []).append(number)
    sure_frozen = tuple((lvl, {k: tuple(sorted(v)) for k, v in t.items()}) for lvl, t in sorted(sure.items()))
    return sure_frozen, _grid.freeze(edge), region_list


class LookupCache:
    """Holds the newest snapshot and swaps in a rebuilt one when the data version moves."""

    def __init__(self, store):
        self._store = store
        self._lock = threading.Lock()
        self._snapshot: LookupSnapshot | None = None
        self.last_segments = None  # the customer checks of an earlier snapshot, reused while customers are unchanged

    def clear(self) -> None:
        """Drop the snapshots held in memory, customer checks included (erasure calls it)."""
        with self._lock:
            self._snapshot = None
            self.last_segments = None

    def get(self) -> LookupSnapshot:
        """The snapshot of the current data version (built on first use after a write)."""
        snap = self._snapshot
        if snap is not None and snap.version == self._store.data_version:
            return snap
        with self._lock:
            snap = self._snapshot
            if snap is None or snap.version != self._store.data_version:
                snap = build_snapshot(self._store, snap)
                self._snapshot = snap
        return snap
