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
- **Cells.** An explicit cell set is a dict lookup of the cell containing the
  point (``latlng_to_cell``) at each resolution present.
"""

from __future__ import annotations

import math
import threading
from dataclasses import dataclass, field

from geotarget.geo import geodesy as _geodesy
from geotarget.geo import grid as _grid
from geotarget.geo.geodesy import _A, _E2, LOCAL_MAX_LAT, local_error_bound_m
from geotarget.units import EARTH_RADIUS_M

__all__ = ["LookupCache", "LookupSnapshot", "build_snapshot"]

_TWO_R = 2.0 * EARTH_RADIUS_M
_REL = 0.01  # the haversine and the WGS84 geodesic differ by less than this, relatively (about 0.56 % at most)
_ABS = 0.5  # metres of slack on top


def _geodesic_m(lat1: float, lng1: float, lat2: float, lng2: float) -> float:
    return _geodesy.WGS84.inv(lng1, lat1, lng2, lat2)[2]


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
    arrays: dict = field(default_factory=dict)  # the same indexes as numpy arrays (see _arrays)
    extra: dict = field(default_factory=dict)

    def campaigns_at(self, lat: float, lng: float, ts: float) -> list[int]:
        """Positions of the active campaigns whose geofence holds the point at ``ts`` (epoch seconds), in name order.

        Nearby stores are measured all at once (numpy): a point in a dense
        metro sees hundreds of stores and thousands of (store, radius) pairs.
        """
        import numpy as np

        arr = self.arrays
        found = []
        stores = [table[key] for level, table in arr["fence"] if (key := _grid.bucket(level, lat, lng)) in table]
        if stores:
            found += self._radius_hits(np.concatenate(stores) if len(stores) > 1 else stores[0], lat, lng)
        for level, table in arr["region_sure"]:
            hit = table.get(_grid.bucket(level, lat, lng))
            if hit is not None:
                found.append(hit)
        edge = [table[key] for level, table in arr["region_edge"] if (key := _grid.bucket(level, lat, lng)) in table]
        if edge:
            regions = np.concatenate(edge) if len(edge) > 1 else edge[0]
            for r in regions[_intersects_many(arr["region_geoms"][regions], lng, lat)].tolist():
                found.append(arr["region_camps"][r])
        if self.cell_res:
            from h3.api.basic_int import latlng_to_cell

            for res in self.cell_res:  # the cell containing the point at each resolution fenced
                hit = arr["cell_camps"].get(latlng_to_cell(lat, lng, res))
                if hit is not None:
                    found.append(hit)
        if not found:
            return []
        mask = np.zeros(len(self.campaigns), dtype=bool)
        for chunk in found:
            mask[chunk] = True
        mask &= self.live_mask(ts)
        return np.flatnonzero(mask).tolist()

    def _radius_hits(self, idx, lat: float, lng: float) -> list:
        """Campaign positions of the radius geofences around the stores ``idx`` that hold the point."""
        import numpy as np

        arr = self.arrays
        phi, lam = math.radians(lat), math.radians(lng)
        a = (np.sin((arr["store_phi"][idx] - phi) * 0.5) ** 2
             + math.cos(phi) * arr["store_cos"][idx] * np.sin((arr["store_lam"][idx] - lam) * 0.5) ** 2)
        d = _TWO_R * np.arcsin(np.sqrt(np.minimum(1.0, a)))
        low = d / (1.0 + _REL) - _ABS  # the geodesic distance lies in [low, high]
        near = low <= arr["store_maxr"][idx]
        if not near.any():
            return []
        idx, d, low = idx[near], d[near], low[near]
        high = d / (1.0 - _REL) + _ABS
        starts, ends = arr["pair_ptr"][idx], arr["pair_ptr"][idx + 1]
        lengths = ends - starts
        owner = np.repeat(np.arange(idx.size), lengths)
        pairs = np.arange(lengths.sum()) + np.repeat(starts - np.cumsum(lengths) + lengths, lengths)
        radius, camp = arr["pair_r"][pairs], arr["pair_c"][pairs]
        out = [camp[radius >= high[owner]]]
        unsure = np.flatnonzero((radius >= low[owner]) & (radius < high[owner]))
        if unsure.size:  # a radius could fall either side: narrow with the local plane, then measure
            keep = np.zeros(unsure.size, dtype=bool)
            bounds: dict = {}
            for j, p in enumerate(unsure.tolist()):
                o, r = int(owner[p]), float(radius[p])
                if o not in bounds:
                    i = int(idx[o])
                    bounds[o] = [*_local_bounds(lat, lng, self.store_lat[i], self.store_lng[i], float(low[o]),
                                                float(high[o])), None, i]
                lo, hi, exact, i = bounds[o]
                if lo <= r < hi:
                    if exact is None:
                        exact = bounds[o][2] = _geodesic_m(lat, lng, self.store_lat[i], self.store_lng[i])
                    keep[j] = r >= exact
                else:
                    keep[j] = r >= hi
            out.append(camp[unsure[keep]])
        return out

    def live_mask(self, ts: float):
        """:meth:`live_at` as a boolean array over campaign positions (cached alike)."""
        live = self.live_at(ts)
        cached = self.extra.get("live_mask")
        if cached is not None and cached[0] is live:
            return cached[1]
        import numpy as np

        mask = np.zeros(len(self.campaigns), dtype=bool)
        mask[list(live)] = True
        self.extra["live_mask"] = (live, mask)
        return mask

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

            n = len(near)
            dist = _geodesy.WGS84.inv(np.full(n, lng), np.full(n, lat), np.array([self.store_lng[i] for i in near]),
                             np.array([self.store_lat[i] for i in near]))[2].tolist()
        else:
            dist = [_geodesic_m(lat, lng, self.store_lat[i], self.store_lng[i]) for i in near]
        out = [(d, i) for d, i in zip(dist, near) if d <= radius_m]
        out.sort()  # store positions follow store ids, so ties go by id
        return out


def _intersects_many(geoms, x: float, y: float):
    """Which of the (prepared) polygons hold the point, boundary included."""
    import shapely

    return shapely.intersects_xy(geoms, x, y)


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
    per_store: dict = {}  # centre position (stores first, then campaign points) -> [(radius, campaign)]
    points: dict = {}  # (lat, lng) of a point geofence -> centre position, after the stores
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
        elif fence["kind"] == "points":
            for la, ln in fence["points"]:
                i = points.setdefault((float(la), float(ln)), len(store_ids) + len(points))
                per_store.setdefault(i, []).append((fence["radius_m"], pos))
        elif fence["kind"] == "regions":
            for rid in fence["regions"]:
                if (fence["layer"], rid) in regions:
                    per_region.setdefault((fence["layer"], rid), []).append(pos)
        else:
            import h3

            for cell in fence["cells"]:
                cell_campaigns.setdefault(h3.str_to_int(cell), []).append(pos)
    # campaign points become centres after the stores: the radius test is the same, and stores_near,
    # which reads only store_grid and the first len(store_ids) positions, never sees them
    slat = slat + tuple(la for la, _ in points)
    slng = slng + tuple(ln for _, ln in points)
    fence_grid: dict = {}
    radii, suffix = [()] * len(slat), [()] * len(slat)
    for i, pairs in per_store.items():
        radii[i], suffix[i] = _suffixes(pairs)
        level, keys = _grid.box_buckets(*_grid.bounding_box(slat[i], slng[i], radii[i][-1]))
        for key in keys:
            fence_grid.setdefault(level, {}).setdefault(key, []).append(i)
    sure, edge, region_list = _index_regions(regions, per_region)
    cell_res = tuple(sorted({(cell >> 52) & 0xF for cell in cell_campaigns}))
    cell_campaigns = {k: tuple(sorted(set(v))) for k, v in cell_campaigns.items()}
    arrays = _arrays(slat, slng, per_store, _grid.freeze(fence_grid), sure, edge, region_list, cell_campaigns)
    return LookupSnapshot(
        version=version, campaigns=campaigns, windows=tuple(c._window for c in campaigns), store_ids=store_ids,
        store_names=tuple(None if r[1] is None else str(r[1]) for r in stores), store_lat=slat, store_lng=slng,
        store_grid=dict(_grid.freeze(store_grid)), fence_grid=_grid.freeze(fence_grid),
        store_rad=tuple((math.radians(a), math.radians(b), math.cos(math.radians(a))) for a, b in zip(slat, slng)),
        store_radii=tuple(radii), store_from=tuple(suffix), region_sure=sure, region_edge=edge,
        regions=tuple(region_list), cell_res=cell_res, cell_campaigns=cell_campaigns, arrays=arrays,
    )


def _arrays(slat, slng, per_store, fence_grid, sure, edge, region_list, cell_campaigns) -> dict:
    """The indexes in the form :meth:`LookupSnapshot.campaigns_at` reads: numpy arrays per bucket.

    Radius geofences are (store, radius, campaign) pairs grouped by store
    (``pair_ptr`` delimits each store's pairs, as in a CSR matrix).
    """
    import numpy as np

    n = len(slat)
    lengths = np.zeros(n, dtype=np.int64)
    radius, camp, maxr = [], [], np.full(n, -np.inf)
    for i in range(n):
        pairs = per_store.get(i, ())
        lengths[i] = len(pairs)
        for r, pos in pairs:
            radius.append(r)
            camp.append(pos)
        if pairs:
            maxr[i] = max(r for r, _ in pairs)

    def ids(values):
        return np.asarray(values, dtype=np.int64)

    geoms = np.empty(len(region_list), dtype=object)
    geoms[:] = [g for g, _ in region_list]
    return {
        "store_phi": np.radians(np.asarray(slat, dtype="float64")),
        "store_lam": np.radians(np.asarray(slng, dtype="float64")),
        "store_cos": np.cos(np.radians(np.asarray(slat, dtype="float64"))),
        "store_maxr": maxr,
        "pair_ptr": np.concatenate(([0], np.cumsum(lengths))).astype(np.int64),
        "pair_r": np.asarray(radius, dtype="float64"),
        "pair_c": ids(camp),
        "fence": tuple((lvl, {k: ids(v) for k, v in t.items()}) for lvl, t in fence_grid),
        "region_sure": tuple((lvl, {k: ids(v) for k, v in t.items()}) for lvl, t in sure),
        "region_edge": tuple((lvl, {k: ids(v) for k, v in t.items()}) for lvl, t in edge),
        "region_geoms": geoms,
        "region_camps": tuple(ids(c) for _, c in region_list),
        "cell_camps": {k: ids(v) for k, v in cell_campaigns.items()},
    }


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
