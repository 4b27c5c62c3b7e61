"""Which customers a geography holds: the cover-and-refine steps behind audiences.

Each function here answers one membership question exactly over a
:class:`~geotarget.audience.index.CustomerIndex` snapshot: within a radius (WGS84
geodesic), inside polygons (boundary counts inside), in an H3 k-ring (by the
cell containing each point, ``latlng_to_cell``), or matching segment filters.
Campaign geofences reuse them, so a promotion and its audience always agree.
"""

from __future__ import annotations

import functools
import uuid
import warnings

import h3
import numpy as np
import pyarrow as pa

from geotarget._arrow import numpy_view
from geotarget._lazy import lazy_module
from geotarget.audience import budget as _budget
from geotarget.audience.filters import compile_filters
from geotarget.audience.index import CustomerIndex
from geotarget.errors import InvalidInputError, InvalidLocationError, NotFoundError
from geotarget.geo.cells import cell_ranges, disk_covering, latlng_to_cells, str_to_cells
from geotarget.geo.geodesy import fast_distance_m, geodesic_distance_m
from geotarget.units import parse_radius

pd = lazy_module("pandas")  # imported on first use: the one-shot audience path never needs it

__all__ = ["parse_zone_text"]


# -- inputs ------------------------------------------------------------------
def _check_latlng(lat, lng, what: str = "point") -> tuple[float, float]:
    try:
        lat, lng = float(lat), float(lng)
    except (TypeError, ValueError):
        raise InvalidLocationError(f"{what} needs numeric lat and lng, got ({lat!r}, {lng!r})") from None
    if not (np.isfinite(lat) and -90 <= lat <= 90):
        raise InvalidLocationError(f"lat must be in [-90, 90], got {lat!r} for {what}; are lat and lng swapped?")
    if not (np.isfinite(lng) and -180 <= lng <= 180):
        raise InvalidLocationError(f"lng must be in [-180, 180], got {lng!r} for {what}")
    return lat, lng


def _parse_zone(zone) -> tuple[float, float, float]:
    """An exclusion zone: '40.75,-73.98,500m', (lat, lng, '500m') or dict."""
    if isinstance(zone, str):
        parts = [p.strip() for p in zone.split(",")]
        if len(parts) != 3:
            raise InvalidInputError(f"exclusion zone {zone!r} must be 'lat,lng,radius' e.g. '40.75,-73.98,500m'")
        zone = parts
    if isinstance(zone, dict):
        zone = (zone.get("lat"), zone.get("lng"), zone.get("radius", zone.get("radius_m")))
    if len(zone) != 3:
        raise InvalidInputError(f"exclusion zone {zone!r} must be (lat, lng, radius)")
    lat, lng = _check_latlng(zone[0], zone[1], "exclusion zone")
    radius = zone[2]
    metres = parse_radius(radius) if isinstance(radius, str) else parse_radius(radius_m=radius)
    return lat, lng, metres


@functools.lru_cache(maxsize=4096)
def _disk_ranges(lat: float, lng: float, radius_m: float, res: int) -> np.ndarray:
    return cell_ranges(disk_covering(lat, lng, radius_m), res)


def _polygon_res(geom) -> int:
    """A covering resolution giving a few hundred cells for this polygon."""
    xmin, ymin, xmax, ymax = geom.bounds
    km_lat = (ymax - ymin) * 111.2
    km_lng = (xmax - xmin) * 111.2 * max(np.cos(np.radians(max(abs(ymin), abs(ymax)))), 0.05)
    area_km2 = max(km_lat * km_lng, 1e-6)
    for res in range(12, -1, -1):
        if h3.average_hexagon_area(res, unit="km^2") * 300 >= area_km2:
            return res
    return 0


def _polygon_ranges(geom, res: int) -> np.ndarray:
    """Fine-cell ranges covering every point of a polygon, thin ones included (cached per polygon)."""
    import shapely

    return _polygon_ranges_wkb(shapely.to_wkb(geom), res)


@functools.lru_cache(maxsize=2048)
def _polygon_ranges_wkb(wkb: bytes, res: int) -> np.ndarray:
    """The covering behind :func:`_polygon_ranges`.

    Cells overlapping the polygon (H3's overlap containment, which keeps
    slivers thinner than a hexagon), plus every neighbour of the cells on
    its boundary: a point's res-15 cell may descend from the hexagon next to
    the one drawn around it (H3 children overhang their parent by under 0.1
    edge), and that neighbour may not touch the polygon itself. Cells wholly
    inside need no neighbours: the hexagon beside one shares an edge with it,
    and so touches the polygon.
    """
    import shapely

    geom = shapely.from_wkb(wkb)
    res_c = _polygon_res(geom)
    overlap: set[str] = set()
    inside: set[str] = set()
    for part in shapely.get_parts(geom):
        shape = h3.geo_to_h3shape(part)
        overlap.update(h3.h3shape_to_cells_experimental(shape, res_c, contain="overlap"))
        inside.update(h3.h3shape_to_cells_experimental(shape, res_c, contain="full"))
    cells = set(overlap)
    for cell in overlap - inside:
        cells.update(h3.grid_disk(cell, 1))
    return cell_ranges([h3.str_to_int(c) for c in cells], res)


# -- refining -------------------------------------------------------------------
def _radius_members(index: CustomerIndex, lat: float, lng: float, radius_m: float):
    """Positions within the radius of one centre, their distances, and the error band used.

    Distances are exact (geodesic) inside the band and within ``band`` of it
    elsewhere (millimetres at city scale).
    """
    pos = index.positions_in_ranges(_disk_ranges(round(lat, 12), round(lng, 12), radius_m, index.res))
    if pos.size == 0:
        return pos, np.zeros(0), 0.0
    plat = index.lat[pos]
    plng = index.lng[pos]
    dist, band = fast_distance_m(lat, lng, plat, plng, radius_m)
    unsure = np.flatnonzero(np.abs(dist - radius_m) <= band)
    if unsure.size:
        dist[unsure] = geodesic_distance_m(lat, lng, plat[unsure], plng[unsure])
    mask = dist <= radius_m
    pos, dist = pos[mask], dist[mask]
    if band - 0.01 > 0.001 and pos.size:
        # the fast formula may be off by more than a millimetre (polar or very
        # large radius): report exact geodesic distances instead
        dist = geodesic_distance_m(lat, lng, plat[mask], plng[mask])
    return pos, dist, band


def _charge_disks(index, centers_lat, centers_lng, radius_m) -> None:
    """Under a work budget: refuse too large an area, then too many candidates, before any refining."""
    if _budget.active() is None:
        return
    _budget.charge_area(len(centers_lat), radius_m)
    for clat, clng in zip(centers_lat, centers_lng):
        ranges = _disk_ranges(round(float(clat), 12), round(float(clng), 12), radius_m, index.res)
        _budget.charge_candidates(index.count_in_ranges(ranges))


def _layer_frame(engine, layer: str) -> pd.DataFrame:
    """A layer's rows, read once per data version (polygons rarely change; audiences reuse them)."""
    version = engine.store.data_version
    cache = engine.__dict__.setdefault("_layer_frames", {})
    hit = cache.get(layer)
    if hit is not None and hit[0] == version:
        return hit[1]
    frame = engine.store.frame(
        "SELECT region_id, name, geometry FROM regions WHERE layer = $l", {"l": layer})
    if len(cache) > 32:
        cache.clear()
    cache[layer] = (version, frame)
    return frame


@functools.lru_cache(maxsize=4096)
def _prepared(wkb: bytes):
    import shapely

    g = shapely.from_wkb(wkb)
    if not g.is_valid:
        warnings.warn("an invalid region polygon was repaired with shapely.make_valid", stacklevel=6)
        g = shapely.make_valid(g)
    shapely.prepare(g)
    return g


def _regions(engine, layer: str, names) -> list:
    """The prepared polygons of the named regions (every region of the layer when ``names`` is None)."""
    return [_prepared(bytes(b)) for b in _chosen_regions(engine, layer, names)["geometry"]]


def _region_of(index, positions, geoms) -> np.ndarray:
    """For each position, the number of the first polygon holding it (boundary inside), or -1."""
    import shapely

    which = np.full(positions.size, -1, dtype=np.int64)
    if positions.size == 0 or not geoms:
        return which
    x, y = index.lng[positions], index.lat[positions]
    for k, geom in enumerate(geoms):  # in the order asked for: a point keeps the first region holding it
        todo = np.flatnonzero(which < 0)
        if todo.size == 0:
            break
        minx, miny, maxx, maxy = shapely.bounds(geom)
        near = todo[(x[todo] >= minx) & (x[todo] <= maxx) & (y[todo] >= miny) & (y[todo] <= maxy)]
        if near.size:
            shapely.prepare(geom)  # one prepared polygon against many points: the fast path of GEOS
            which[near[shapely.intersects_xy(geom, x[near], y[near])]] = k
    return which


def _chosen_regions(engine, layer: str, names) -> pd.DataFrame:
    """The rows (region_id, name, geometry) of the named regions, in the order asked for."""
    if isinstance(names, str):
        names = [names]
    frame = _layer_frame(engine, layer)
    if frame.empty:
        known = ", ".join(engine.layers()) or "none yet"
        raise NotFoundError(f"region layer {layer!r} not found; layers: {known}")
    if names is None:
        chosen = frame
    else:
        by_id = {str(r).lower(): i for i, r in enumerate(frame["region_id"])}
        by_name = {str(r).lower(): i for i, r in enumerate(frame["name"]) if r is not None}
        rows = []
        for nm in names:
            i = by_id.get(str(nm).lower(), by_name.get(str(nm).lower()))
            if i is None:
                sample = ", ".join(sorted(str(x) for x in frame["name"].dropna())[:8])
                raise NotFoundError(f"region {nm!r} not found in layer {layer!r}; e.g. {sample}")
            rows.append(i)
        chosen = frame.iloc[rows]
    return chosen


def _in_polygons(index, positions, geoms) -> np.ndarray:
    import shapely

    keep = np.zeros(positions.size, dtype=bool)
    for g in geoms:
        keep |= shapely.intersects_xy(g, index.lng[positions], index.lat[positions])
    return keep


#: Largest polygon part (degrees of longitude, |latitude|, finest covering resolution) covered with H3 cells.
#: Beyond these, H3 cells are so large that their geodesic edges stray from the straight lng/lat edges of
#: the polygon, and H3 reads a part wider than 180 degrees as crossing the antimeridian; such parts are
#: refined from their lng/lat bounding box instead, which is exact by construction.
_H3_MAX_LNG_SPAN = 30.0
_H3_MAX_ABS_LAT = 80.0
_H3_MIN_RES = 4


def _coverable(part) -> bool:
    """Whether an H3 covering of this polygon part is known to be conservative."""
    xmin, ymin, xmax, ymax = part.bounds
    return (xmax - xmin <= _H3_MAX_LNG_SPAN and max(abs(ymin), abs(ymax)) <= _H3_MAX_ABS_LAT
            and _polygon_res(part) >= _H3_MIN_RES)


def _bbox_positions(index, part) -> np.ndarray:
    """Positions inside a part's lng/lat bounding box (edges are straight in lng/lat, so it holds the part)."""
    xmin, ymin, xmax, ymax = part.bounds
    return np.flatnonzero((index.lat >= ymin) & (index.lat <= ymax) & (index.lng >= xmin) & (index.lng <= xmax))


def _region_positions(index, geoms) -> np.ndarray:
    """Positions of the customers each polygon covers (boundary inside), as shapely ``covers`` says.

    Edges are straight lines in longitude/latitude, as RFC 7946 defines GeoJSON
    polygons: a polygon may be wider than 180 degrees, hold a pole, or touch the
    antimeridian (split there into a MultiPolygon, as RFC 7946 asks). Small parts
    are covered with H3 cells and refined; large or polar parts are refined from
    their bounding box.
    """
    import shapely

    found = []
    for g in geoms:
        parts = [p for p in shapely.get_parts(g) if not p.is_empty]
        small = [p for p in parts if p.geom_type == "Polygon" and _coverable(p)]
        if small:
            pos = index.positions_in_ranges(_polygon_ranges(shapely.multipolygons(small)
                                                            if len(small) > 1 else small[0], index.res))
            _budget.charge_candidates(pos.size)
            if pos.size:
                found.append(pos[_in_polygons(index, pos, [g])])
        for p in parts:
            if not any(p is q for q in small):
                pos = _bbox_positions(index, p)
                _budget.charge_candidates(pos.size)
                if pos.size:
                    found.append(pos[_in_polygons(index, pos, [g])])
    return np.unique(np.concatenate(found)) if found else np.zeros(0, dtype=np.int64)


def _filter_positions(engine, index, positions, where) -> np.ndarray:
    sql, params = compile_filters(where, engine.store.columns("customers"))
    _budget.check_time()
    if sql == "TRUE" or positions.size == 0:
        return np.ones(positions.size, dtype=bool)
    name = f"_cand_{uuid.uuid4().hex[:10]}"
    con = engine.store.con
    con.register(name, pa.table({"customer_id": index.take_ids(positions), "_k": pa.array(np.arange(positions.size))}))
    try:
        rows = con.execute(
            f"SELECT k._k FROM {name} k JOIN customers USING (customer_id) WHERE {sql}", params).fetchall()
    finally:
        con.unregister(name)
    keep = np.zeros(positions.size, dtype=bool)
    if rows:
        keep[np.fromiter((r[0] for r in rows), dtype=np.int64, count=len(rows))] = True
    return keep


def _parse_region_ref(item) -> tuple[str, str]:
    if isinstance(item, str):
        if ":" not in item:
            raise InvalidInputError(f"exclusion region {item!r} must be 'LAYER:NAME', e.g. 'nyc_nta:Midtown-Times Square'")
        layer, name = item.split(":", 1)
        return layer.strip(), name.strip()
    layer, name = item
    return str(layer), str(name)


class StoreSnapshot:
    """The stores (id, name, lat, lng, sorted by id) at one data version, as plain arrays.

    A radius audience around stores reads the arrays; the pandas frame is
    made only when asked for (:attr:`frame`), so a one-shot audience never
    imports pandas.
    """

    def __init__(self, store, version: int):
        self.version = version
        self.table = store.con.sql("SELECT store_id, name, lat, lng FROM stores ORDER BY store_id").to_arrow_table()
        self.ids = np.array(self.table.column("store_id").to_pylist(), dtype=object)
        self.names = np.array(self.table.column("name").to_pylist(), dtype=object)
        self.lat = numpy_view(self.table.column("lat"), "float64")
        self.lng = numpy_view(self.table.column("lng"), "float64")
        self.lookup = {str(s): i for i, s in enumerate(self.ids)}
        self._frame = None

    @property
    def frame(self) -> pd.DataFrame:
        """The stores as a DataFrame (made on first use)."""
        if self._frame is None:
            self._frame = self.table.to_pandas()
        return self._frame

    def __len__(self) -> int:
        return int(self.ids.size)


def _store_rows(engine, stores) -> tuple[StoreSnapshot, list[int]]:
    """The stores snapshot and the rows of the stores asked for (``"all"``, one id or many), in id order."""
    snap = engine._stores_snapshot()
    if isinstance(stores, str) and stores.lower() == "all":
        if not len(snap):
            raise NotFoundError("there are no stores yet; ingest some with `geotarget ingest stores FILE`")
        return snap, list(range(len(snap)))
    wanted = [stores] if isinstance(stores, str) else list(stores)
    if not wanted:
        raise InvalidInputError("stores= is empty; name at least one store id or pass stores='all'")
    rows = []
    for s in dict.fromkeys(str(s) for s in wanted):
        if s not in snap.lookup:
            sample = ", ".join(sorted(snap.lookup)[:8]) or "none yet"
            raise NotFoundError(f"store {s!r} not found; known stores include: {sample}")
        rows.append(snap.lookup[s])
    rows.sort(key=lambda i: snap.ids[i])
    return snap, rows


def _store_centers(engine, stores) -> pd.DataFrame:
    snap, rows = _store_rows(engine, stores)
    return snap.frame.iloc[rows].reset_index(drop=True)


def _store_center_columns(engine, stores):
    """The stores asked for as arrays (store_id, name, lat, lng), and a maker of the same rows as a DataFrame."""
    snap, rows = _store_rows(engine, stores)
    take = np.asarray(rows, dtype=np.int64)
    columns = {"store_id": snap.ids[take], "name": snap.names[take], "lat": snap.lat[take], "lng": snap.lng[take]}
    return columns, lambda: snap.frame.iloc[rows].reset_index(drop=True)


def _point_centers(points) -> pd.DataFrame:
    if isinstance(points, pd.DataFrame):
        frame = points.copy()
        if "point_id" not in frame.columns:
            frame["point_id"] = [f"P{i + 1}" for i in range(len(frame))]
    else:
        pts = [points] if isinstance(points, tuple) and len(points) == 2 and not isinstance(points[0], tuple) \
            else list(points)
        frame = pd.DataFrame({"point_id": [f"P{i + 1}" for i in range(len(pts))],
                              "lat": [p[0] for p in pts], "lng": [p[1] for p in pts]})
    if frame.empty:
        raise InvalidInputError("points= is empty; give at least one (lat, lng)")
    for lat, lng in zip(frame["lat"], frame["lng"]):
        _check_latlng(lat, lng, "centre point")
    frame["point_id"] = frame["point_id"].astype(str)
    return frame[["point_id", "lat", "lng"]].astype({"lat": "float64", "lng": "float64"}).reset_index(drop=True)


def _ring_positions(index, ring_cell, ring_point, k, res):
    """Customers whose containing cell (``latlng_to_cell``) lies in the k-ring of a cell."""
    from geotarget.audience.cellcodes import positions_in_cells

    try:
        k = int(k)
    except (TypeError, ValueError):
        raise InvalidInputError(f"k must be a whole number of rings, got {k!r}") from None
    if k < 0 or k > 50:
        raise InvalidInputError(f"k must be in [0, 50], got {k}")
    if ring_cell is not None:
        cell = int(str_to_cells([ring_cell])[0])
        where = f"cell {h3.int_to_str(cell)}"
    else:
        lat, lng = _check_latlng(*ring_point, "ring point")
        if res is None:
            raise InvalidInputError("a ring around a point needs a resolution: res= (CLI --res)")
        if isinstance(res, bool) or not isinstance(res, (int, np.integer)) or not 0 <= int(res) <= 15:
            raise InvalidInputError(f"res must be a whole number in [0, 15], got {res!r}")
        cell = int(latlng_to_cells([lat], [lng], int(res))[0])
        where = f"the res-{res} cell of ({lat}, {lng})"
    disk = [h3.str_to_int(c) for c in h3.grid_disk(h3.int_to_str(cell), k)]
    positions = positions_in_cells(index, disk)
    _budget.charge_candidates(positions.size)
    return positions, f"in the {k}-ring of {where}"


def parse_zone_text(text: str):
    """Validate an exclusion zone string early (used by the CLI)."""
    return _parse_zone(text)


