"""The reverse lookup: which stores are near a point, which promotions apply there.

Both questions are answered from an immutable in-memory snapshot built from
the database in one transaction and tagged with its ``data_version``; a write
(ingest, campaign change) makes the engine build a new one and swap it in, so
a lookup never mixes two states.

How a lookup stays exact and fast (single points: plain ``math``, no numpy):

- **Grid.** Each geofence shape (a store circle of a campaign's radius, or a
  region polygon) is filed in the buckets of a lat/lng grid that its
  conservative bounding box touches. The grid has several levels (bucket
  sides 0.005 to 20.48 degrees) and each shape goes to the level where its
  box spans at most four buckets a side. The box of a geodesic circle is
  provably wide enough: on WGS84 a metre of latitude is at least
  ``1 / (a (1 - e^2))`` radians and a metre of longitude at least
  ``1 / (a cos(lat))``, ``a`` the equatorial radius.
- **Refine.** Candidates are tested exactly: the haversine decides every
  point further than 1 % of the radius (plus 0.5 m) from the edge, where it
  provably agrees with the WGS84 geodesic; the rest go to ``pyproj.Geod``.
  Regions use ``shapely.intersects_xy`` (boundary inside), as audiences do.
- **Cells.** An explicit cell set is a dict lookup of the parent, at each
  resolution present, of the point's resolution-15 cell.
"""

from __future__ import annotations

import math
import threading
from dataclasses import dataclass, field

import numpy as np

from .cells import _hav_m
from .geodesy import BAND_RELATIVE, WGS84

__all__ = ["LookupSnapshot", "build_snapshot", "bounding_box", "grid_level"]

#: Bucket side in degrees of each grid level.
LEVELS = tuple(0.005 * 4**k for k in range(7))
_SPAN = 4  # buckets per side at most, when choosing a level
_KEY = 1 << 17  # more than 360 / 0.005 buckets of longitude
_A = 6378137.0
_E2 = (1 / 298.257223563) * (2 - 1 / 298.257223563)
_M_PER_DEG_LAT_MIN = _A * (1 - _E2) * math.pi / 180.0  # meridian metres per degree at the equator
_M_PER_DEG_LNG_EQ = _A * math.pi / 180.0
_SLACK = 1.001


def bounding_box(lat: float, lng: float, radius_m: float) -> tuple[float, float, list[tuple[float, float]]]:
    """A lat/lng box holding every point within geodesic ``radius_m``, as (lat_lo, lat_hi, lng_ranges).

    Longitude ranges are split at the antimeridian.

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


def grid_level(lat_extent: float, lng_extent: float) -> int:
    """The finest grid level whose buckets cover the extents with at most four a side."""
    for k, side in enumerate(LEVELS):
        if lat_extent <= _SPAN * side and lng_extent <= _SPAN * side:
            return k
    return len(LEVELS) - 1


def _iy(side: float, lat: float) -> int:
    return min(int((lat + 90.0) // side), int(180.0 / side))


def _ix(side: float, lng: float) -> int:
    return min(int((lng + 180.0) // side), int(360.0 / side))


def _bucket(level: int, lat: float, lng: float) -> int:
    side = LEVELS[level]
    return _iy(side, lat) * _KEY + _ix(side, lng)


def _buckets(level: int, lat_lo: float, lat_hi: float, lng_ranges) -> list[int]:
    side = LEVELS[level]
    rows = range(_iy(side, lat_lo), _iy(side, lat_hi) + 1)
    out = []
    for lo, hi in lng_ranges:
        cols = range(_ix(side, lo), _ix(side, hi) + 1)
        out.extend(iy * _KEY + ix for iy in rows for ix in cols)
    return out


class _Grid:
    """Items filed by bucket at several levels; ``at(lat, lng)`` lists the candidates."""

    def __init__(self):
        self.levels: dict[int, dict[int, list[int]]] = {}

    def add_box(self, item: int, lat_lo: float, lat_hi: float, lng_ranges, keep=None) -> None:
        extent = max(hi - lo for lo, hi in lng_ranges)
        level = grid_level(lat_hi - lat_lo, extent)
        table = self.levels.setdefault(level, {})
        for key in _buckets(level, lat_lo, lat_hi, lng_ranges):
            if keep is None or keep(level, key):
                table.setdefault(key, []).append(item)

    def frozen(self) -> tuple:
        return tuple((lvl, {k: tuple(v) for k, v in table.items()}) for lvl, table in sorted(self.levels.items()))


def _bucket_box(level: int, key: int):
    side = LEVELS[level]
    iy, ix = divmod(key, _KEY)
    eps = 1e-9
    return (ix * side - 180.0 - eps, iy * side - 90.0 - eps, (ix + 1) * side - 180.0 + eps, (iy + 1) * side - 90.0 + eps)


# -- exact tests on one point ------------------------------------------------------
def within(lat: float, lng: float, clat: float, clng: float, radius_m: float) -> bool:
    """Exact WGS84 test ``geodesic distance <= radius_m`` for one point (scalar).

    Examples
    --------
    >>> within(40.0, -74.0, 40.0, -74.0, 1.0), within(40.01, -74.0, 40.0, -74.0, 1000.0)
    (True, False)
    """
    d = _hav_m(clat, clng, lat, lng)
    band = BAND_RELATIVE * radius_m + 0.5
    if d <= radius_m - band:
        return True
    if d > radius_m + band:
        return False
    return WGS84.inv(clng, clat, lng, lat)[2] <= radius_m


@dataclass(frozen=True, eq=False)
class LookupSnapshot:
    """Stores, live-able campaigns and their geofences at one ``data_version``.

    Built by :func:`build_snapshot`; never mutated afterwards (the customer
    table for segment checks is attached once, lazily).
    """

    version: int
    campaigns: tuple  # every stored campaign, sorted by name
    store_ids: tuple
    store_names: tuple
    store_lat: tuple
    store_lng: tuple
    store_grid: dict  # level -> bucket -> store positions
    shape_grid: tuple  # ((level, bucket -> shape ids), ...)
    circles: tuple  # shape id -> (lat, lng, radius_m) or None
    polygons: tuple  # shape id -> (prepared geometry, xmin, ymin, xmax, ymax) or None
    shape_campaigns: tuple  # shape id -> campaign positions
    cell_res: tuple
    cell_campaigns: dict  # H3 cell (int) -> campaign positions
    windows: tuple  # campaign position -> (start_ts, end_ts)
    extra: dict = field(default_factory=dict)

    # -- promotions ---------------------------------------------------------------
    def campaigns_at(self, lat: float, lng: float, ts: float) -> list[int]:
        """Positions of the active campaigns whose geofence holds the point at time ``ts`` (epoch seconds)."""
        found = set()
        shapes = set()
        for level, table in self.shape_grid:
            ids = table.get(_bucket(level, lat, lng))
            if ids:
                shapes.update(ids)
        for sid in shapes:
            circle = self.circles[sid]
            if circle is not None:
                if not within(lat, lng, circle[0], circle[1], circle[2]):
                    continue
            else:
                geom, xmin, ymin, xmax, ymax = self.polygons[sid]
                if not (xmin <= lng <= xmax and ymin <= lat <= ymax) or not _intersects(geom, lng, lat):
                    continue
            found.update(self.shape_campaigns[sid])
        if self.cell_res:
            from h3.api.basic_int import latlng_to_cell

            fine = latlng_to_cell(lat, lng, 15)
            for res in self.cell_res:
                low = (1 << (3 * (15 - res))) - 1
                parent = (fine & ~((0xF << 52) | low)) | (res << 52) | low
                hit = self.cell_campaigns.get(parent)
                if hit:
                    found.update(hit)
        windows = self.windows
        return sorted(i for i in found if windows[i][0] <= ts < windows[i][1])

    # -- stores ------------------------------------------------------------------
    def stores_within(self, lat: float, lng: float, radius_m: float) -> list[tuple[float, int]]:
        """(exact geodesic distance, store position) of the stores within the radius, nearest first."""
        lat_lo, lat_hi, lngs = bounding_box(lat, lng, radius_m)
        level = grid_level(lat_hi - lat_lo, max(hi - lo for lo, hi in lngs))
        table = self.store_grid.get(level, {})
        slat, slng = self.store_lat, self.store_lng
        limit = radius_m * (1.0 + BAND_RELATIVE) + 0.5
        near = []
        for key in _buckets(level, lat_lo, lat_hi, lngs):
            for i in table.get(key, ()):
                if _hav_m(lat, lng, slat[i], slng[i]) <= limit:
                    near.append(i)
        if not near:
            return []
        if len(near) > 16:
            dist = WGS84.inv(np.full(len(near), lng), np.full(len(near), lat),
                             np.array([slng[i] for i in near]), np.array([slat[i] for i in near]))[2].tolist()
        else:
            dist = [WGS84.inv(lng, lat, slng[i], slat[i])[2] for i in near]
        out = [(d, i) for d, i in zip(dist, near) if d <= radius_m]
        out.sort(key=lambda p: (p[0], self.store_ids[p[1]]))
        return out


def _intersects(geom, x: float, y: float) -> bool:
    import shapely

    return bool(shapely.intersects_xy(geom, x, y))


def _region_shapes(con, fences) -> dict:
    """(layer, region_id) -> prepared polygon, for the regions the campaigns use."""
    import shapely

    wanted = {(f["layer"], r) for f in fences for r in f["regions"]}
    if not wanted:
        return {}
    layers = sorted({w[0] for w in wanted})
    rows = []
    for layer in layers:
        rows += con.execute("SELECT layer, region_id, geometry FROM regions WHERE layer = $l",
                            {"l": layer}).fetchall()
    out = {}
    for layer, rid, wkb in rows:
        if (layer, rid) in wanted:
            geom = shapely.from_wkb(bytes(wkb))
            if not geom.is_valid:
                geom = shapely.make_valid(geom)
            shapely.prepare(geom)
            out[(layer, rid)] = geom
    return out


def build_snapshot(store) -> LookupSnapshot:
    """Read stores, campaigns and the regions they use in one transaction and index them."""
    from .campaigns import load_campaigns

    con = store.con
    con.execute("BEGIN TRANSACTION")
    try:
        version = int(con.execute("SELECT value FROM meta WHERE key = 'data_version'").fetchall()[0][0])
        stores = con.execute("SELECT store_id, name, lat, lng FROM stores ORDER BY store_id").fetchall()
        campaigns = tuple(load_campaigns(con))
        live = [c for c in campaigns if c.status == "active"]
        regions = _region_shapes(con, [c.geofence for c in live if c.geofence["kind"] == "regions"])
    finally:
        con.execute("COMMIT")
    return _index(version, stores, campaigns, regions)


def _index(version, stores, campaigns, regions) -> LookupSnapshot:
    import shapely

    store_ids = tuple(str(r[0]) for r in stores)
    slat = tuple(float(r[2]) for r in stores)
    slng = tuple(float(r[3]) for r in stores)
    position = {s: i for i, s in enumerate(store_ids)}
    store_grid: dict = {}
    for i, (la, ln) in enumerate(zip(slat, slng)):
        for level in range(len(LEVELS)):
            store_grid.setdefault(level, {}).setdefault(_bucket(level, la, ln), []).append(i)
    store_grid = {lvl: {k: tuple(v) for k, v in t.items()} for lvl, t in store_grid.items()}

    grid = _Grid()
    circles, polygons, shape_campaigns = [], [], []
    shape_of: dict = {}
    cell_campaigns: dict = {}

    def shape(key, circle=None, polygon=None) -> int:
        sid = shape_of.get(key)
        if sid is None:
            sid = shape_of[key] = len(circles)
            circles.append(circle)
            polygons.append(polygon)
            shape_campaigns.append([])
            if circle is not None:
                grid.add_box(sid, *bounding_box(*circle))
            else:
                geom = polygon[0]

                def touches(level, bucket, geom=geom):
                    return bool(shapely.intersects(geom, shapely.box(*_bucket_box(level, bucket))))
                grid.add_box(sid, polygon[2], polygon[4], [(polygon[1], polygon[3])], keep=touches)
        return sid

    for pos, c in enumerate(campaigns):
        if c.status != "active":
            continue
        fence = c.geofence
        if fence["kind"] == "radius":
            for s in fence["stores"]:
                i = position.get(s)
                if i is not None:  # a store removed since the campaign was made no longer counts
                    shape_campaigns[shape(("c", i, fence["radius_m"]), circle=(slat[i], slng[i],
                                                                              fence["radius_m"]))].append(pos)
        elif fence["kind"] == "regions":
            for rid in fence["regions"]:
                geom = regions.get((fence["layer"], rid))
                if geom is not None:
                    xmin, ymin, xmax, ymax = geom.bounds
                    shape_campaigns[shape(("r", fence["layer"], rid),
                                          polygon=(geom, xmin, ymin, xmax, ymax))].append(pos)
        else:
            import h3

            for cell in fence["cells"]:
                cell_campaigns.setdefault(h3.str_to_int(cell), []).append(pos)
    cell_res = tuple(sorted({(cell >> 52) & 0xF for cell in cell_campaigns}))
    return LookupSnapshot(
        version=version, campaigns=campaigns, store_ids=store_ids,
        store_names=tuple(None if r[1] is None else str(r[1]) for r in stores), store_lat=slat, store_lng=slng,
        store_grid=store_grid, shape_grid=grid.frozen(), circles=tuple(circles), polygons=tuple(polygons),
        shape_campaigns=tuple(tuple(sorted(set(v))) for v in shape_campaigns), cell_res=cell_res,
        cell_campaigns={k: tuple(sorted(set(v))) for k, v in cell_campaigns.items()},
        windows=tuple(c._window for c in campaigns),
    )


class LookupCache:
    """Holds the newest snapshot and swaps in a rebuilt one when the data version moves."""

    def __init__(self, store):
        self._store = store
        self._lock = threading.Lock()
        self._snapshot: LookupSnapshot | None = None

    def get(self) -> LookupSnapshot:
        """The snapshot of the current data version (built on first use after a write)."""
        snap = self._snapshot
        if snap is not None and snap.version == self._store.data_version:
            return snap
        with self._lock:
            snap = self._snapshot
            if snap is None or snap.version != self._store.data_version:
                snap = build_snapshot(self._store)
                self._snapshot = snap
        return snap
