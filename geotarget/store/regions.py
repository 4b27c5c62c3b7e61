"""Ingest region polygons as a named layer: checks, repairs, and the safe replacement of a layer.

A layer is replaced whole, in one transaction. Polygons must be in
longitude/latitude (a projected file without a CRS is refused); invalid
rings are repaired with ``shapely.make_valid`` and zero-area rings are
rejected. Emptying a layer, or dropping regions that campaigns use, needs
``confirm=True`` (CLI ``--confirm``).

The file is read a batch of features at a time, so reading takes the same
memory for 1 MB as for 1 GB. What is written waits in DuckDB's buffer pool
until the commit, up to DuckDB's ``memory_limit`` (80% of RAM by default);
``SET memory_limit`` on the connection bounds it, DuckDB then writes the
layer's blocks to the database file (see ``benchmarks/RESULTS_vector_memory.md``).
"""

from __future__ import annotations

import time
import uuid
import warnings
from collections import Counter
from collections.abc import Callable

import numpy as np

from geotarget._lazy import lazy_module
from geotarget.errors import GeotargetWarning, InvalidInputError, SourceError
from geotarget.store.database import Store
from geotarget.store.readers import open_source
from geotarget.store.report import IngestReport
from geotarget.store.validation import _find, _raw_json

pd = lazy_module("pandas")  # imported on first use: the one-shot audience path never needs it

__all__ = ["check_layer_replacement", "check_lnglat_bounds", "ingest_regions"]

REASON_ZERO_AREA = "polygon has zero area (its ring is a line or a point)"
REASON_SUPERSEDED = "duplicate id: superseded by a later row of the same file"


def ingest_regions(
    store: Store,
    source,
    *,
    layer: str,
    name_col: str | None = None,
    id_col: str | None = None,
    progress: Callable[[int, int | None], None] | None = None,
    confirm: bool = False,
) -> IngestReport:
    """Load polygons as a named layer, replacing that layer (see ``Engine.ingest_regions``).

    The file is read a batch of features at a time (memory follows the batch,
    not the file); each batch is checked and written in place of the layer's
    old regions, all in one transaction, so a refused file leaves the
    database as it was.

    Examples
    --------
    >>> import geopandas as gpd, geotarget
    >>> from shapely.geometry import box
    >>> eng = geotarget.open(":memory:")
    >>> layer = gpd.GeoDataFrame({"name": ["a"]}, geometry=[box(-74.0, 40.7, -73.9, 40.8)], crs=4326)
    >>> ingest_regions(eng.store, layer, layer="demo").loaded
    1
    """
    import geopandas as gpd

    started = time.perf_counter()
    if not isinstance(layer, str) or not layer.strip():
        raise InvalidInputError("a region layer needs a name: pass --layer NAME (layer=)")
    if isinstance(source, gpd.GeoDataFrame):
        src = open_source(source)
        src.name = "<GeoDataFrame>"
    else:
        src = open_source(source)
        if src.geometry_column is None:
            raise SourceError(f"{src.name} has no geometry column; regions need polygons (GeoJSON, GeoPackage, ...)")
    name = src.name
    columns = [c for c in src.columns if c != src.geometry_column]
    name_c = _find(columns, name_col, ("name",), "name", "--name-col")
    if name_c is None:
        name_c = next((c for c in columns if "name" in str(c).lower()), None)
    id_c = _find(columns, id_col, ("region_id", "id"), "id", "--id-col")
    report = IngestReport(kind="regions", source=name)
    ids = f"_region_ids_{uuid.uuid4().hex[:12]}"  # the new layer's ids and rows: small, unlike its polygons
    reasons: Counter[str] = Counter()
    repaired = 0
    now = pd.Timestamp.now(tz="UTC")
    with store.transaction() as con:
        con.execute(f"CREATE TEMP TABLE {ids} (region_id VARCHAR, _row BIGINT)")
        con.execute("DELETE FROM rejects WHERE kind = 'regions' AND source = $s", {"s": name})
        stored = con.execute("DELETE FROM regions WHERE layer = $l", {"l": layer}).fetchall()[0][0]
        for batch in src.batches:
            frame = gpd.GeoDataFrame(batch, geometry=src.geometry_column, crs=src.crs)
            rows, rej, fixed = _check_batch(frame, report.read, name, name_c, id_c)
            repaired += fixed
            # an id given again: the file's last row with it wins (as an upsert would), even a bad one
            again = con.execute(f"SELECT count(*) FROM {ids} WHERE region_id IN (SELECT region_id FROM rows)"
                                ).fetchall()[0][0]
            if again:
                _supersede(con, rows, ids, layer, name, now)
            con.execute("INSERT INTO regions SELECT $l, region_id, name, geometry, xmin, ymin, xmax, ymax, properties, "
                        "$s FROM rows WHERE good", {"l": layer, "s": name})
            con.execute(f"INSERT INTO {ids} SELECT region_id, _row FROM rows WHERE good")
            if rej is not None:
                rej = rej.assign(kind="regions", source=name, rejected_at=now)
                con.execute("INSERT INTO rejects BY NAME SELECT * FROM rej")
            report.read += len(frame)
            if progress is not None:
                progress(report.read, src.total_rows)
        check_layer_replacement(con, layer, ids, confirm=confirm, stored=stored)
        for reason, n in con.execute("SELECT reason, count(*) FROM rejects WHERE kind = 'regions' AND source = $s "
                                     "GROUP BY reason", {"s": name}).fetchall():
            reasons[reason] = int(n)
        report.loaded = con.execute(f"SELECT count(*) FROM {ids}").fetchall()[0][0]
        report.updated = stored
        con.execute(f"DROP TABLE {ids}")  # on an error the rollback drops it
    if repaired:
        warnings.warn(f"{repaired} invalid polygon(s) in layer {layer!r} were repaired with shapely.make_valid",
                      GeotargetWarning, stacklevel=3)
    report.updated = min(report.updated, report.loaded)
    report.inserted = report.loaded - report.updated
    report.rejected = sum(reasons.values())
    report.reasons = dict(reasons)
    report.seconds = time.perf_counter() - started
    if report.read != report.loaded + report.rejected:  # pragma: no cover - a bug, never user input
        raise RuntimeError(f"region ingest accounting broken: {report}")
    if progress is not None:
        progress(report.read, report.read)
    return report


def _supersede(con, rows: pd.DataFrame, ids: str, layer: str, name: str, now) -> None:
    """Reject and remove the regions written earlier whose ids the batch ``rows`` gives again (DuckDB reads it)."""
    con.execute(f"""INSERT INTO rejects BY NAME SELECT 'regions' AS kind, $s AS source, i._row AS row_number,
                    r.properties AS raw, $r AS reason, $now AS rejected_at
                    FROM {ids} i JOIN regions r ON r.layer = $l AND r.region_id = i.region_id
                    WHERE i.region_id IN (SELECT region_id FROM rows)""",
                {"s": name, "l": layer, "r": REASON_SUPERSEDED, "now": now})
    con.execute("DELETE FROM regions WHERE layer = $l AND region_id IN (SELECT region_id FROM rows)", {"l": layer})
    con.execute(f"DELETE FROM {ids} WHERE region_id IN (SELECT region_id FROM rows)")


def _check_batch(frame, offset: int, name: str, name_c, id_c):
    """Check and repair one batch of polygons.

    Returns the rows to write (the last row of each id in the batch, ``good``
    telling whether it loads: a bad one still supersedes earlier rows of its
    id), the rejects of this batch (or None) and how many polygons were
    repaired.
    """
    import shapely

    if frame.crs is not None and not frame.crs.equals("EPSG:4326"):
        frame = frame.to_crs(4326)
    check_lnglat_bounds(frame, name)
    n = len(frame)
    geoms = np.asarray(frame.geometry.array, dtype=object)
    reasons = np.full(n, "", dtype=object)
    missing = shapely.is_missing(geoms) | shapely.is_empty(geoms)
    reasons[missing] = "missing geometry"
    polygonal = np.isin(shapely.get_type_id(geoms), [3, 6])
    reasons[(reasons == "") & ~polygonal] = "geometry is not a polygon"
    with np.errstate(invalid="ignore"):
        # zero up to rounding: the area is a billionth of the squared perimeter or less
        valid = shapely.is_valid(geoms)
        flat = valid & (shapely.area(geoms) <= 1e-9 * shapely.length(geoms) ** 2)
        reasons[(reasons == "") & flat] = REASON_ZERO_AREA  # invalid ones (a bow tie's area is 0) are repaired first
    invalid = (reasons == "") & ~valid
    if invalid.any():
        repaired = shapely.make_valid(geoms[invalid])
        # make_valid may return collections; keep their polygonal parts
        repaired = np.array([_polygonal_part(g) for g in repaired], dtype=object)
        geoms = geoms.copy()
        geoms[invalid] = repaired
        flat = ~np.isin(shapely.get_type_id(repaired), [3, 6]) | (shapely.area(repaired) <= 0)
        reasons[np.flatnonzero(invalid)[flat]] = REASON_ZERO_AREA
        invalid[np.flatnonzero(invalid)[flat]] = False
    rows = np.arange(offset + 1, offset + n + 1)
    ids = frame[id_c].astype("string") if id_c else pd.Series(rows.astype(str))
    ids = ids.astype("string").str.strip().reset_index(drop=True)
    no_id = (ids.isna() | (ids == "")).fillna(True).to_numpy(dtype=bool)
    reasons[(reasons == "") & no_id] = "missing id"
    good = reasons == ""
    props = frame.drop(columns=[frame.geometry.name])
    raw = np.asarray(_raw_json(props) if len(props.columns) else ["{}"] * n, dtype=object)
    wkb = np.asarray(shapely.to_wkb(geoms), dtype=object) if n else np.array([], dtype=object)
    wkb[~good] = None
    bounds = shapely.bounds(geoms)  # NaN for missing geometries, which are never written as good
    keep = ~no_id
    # an id given twice in this batch: its last row wins; an earlier good one is superseded
    earlier = np.zeros(n, dtype=bool)
    earlier[np.flatnonzero(keep)] = ids[keep].duplicated(keep="last").to_numpy(dtype=bool)
    reasons[good & earlier] = REASON_SUPERSEDED
    good &= ~earlier
    keep &= ~earlier
    written = pd.DataFrame({
        "_row": rows[keep],
        "region_id": ids.to_numpy(dtype=object)[keep],
        "good": good[keep],
        "name": frame[name_c].astype("string").to_numpy(dtype=object)[keep] if name_c else None,
        "geometry": wkb[keep],
        "xmin": bounds[keep, 0], "ymin": bounds[keep, 1], "xmax": bounds[keep, 2], "ymax": bounds[keep, 3],
        "properties": raw[keep],
    })
    bad = np.flatnonzero(~good)
    rej = None
    if bad.size:
        rej = pd.DataFrame({"row_number": rows[bad], "raw": raw[bad], "reason": reasons[bad].astype(str)})
    return written, rej, int(invalid.sum())


def check_lnglat_bounds(frame, name: str) -> None:
    """Refuse polygons whose coordinates are not longitude/latitude (a projected file without a CRS)."""
    import shapely

    geoms = np.asarray(frame.geometry.array, dtype=object)
    geoms = geoms[~(shapely.is_missing(geoms) | shapely.is_empty(geoms))]
    if geoms.size == 0:
        return
    xmin, ymin, xmax, ymax = shapely.total_bounds(geoms)
    if xmin < -180 or xmax > 180 or ymin < -90 or ymax > 90:
        raise SourceError(
            f"coordinates in {name} reach x {xmin:,.6g}..{xmax:,.6g}, y {ymin:,.6g}..{ymax:,.6g}, outside longitude "
            "[-180, 180] and latitude [-90, 90]: the file looks projected but names no CRS; reproject it to "
            "EPSG:4326 (e.g. ogr2ogr -t_srs EPSG:4326) or load a GeoDataFrame with its CRS set")


def check_layer_replacement(con, layer: str, staged: str, *, confirm: bool, stored: int | None = None) -> None:
    """Refuse, unless confirmed, to empty a layer or to drop regions that campaigns use.

    ``staged`` names the table holding the new layer's ``region_id`` column;
    ``stored`` is how many regions the layer held (counted now when None).
    """
    import json

    if confirm:
        return
    if stored is None:
        stored = con.execute("SELECT count(*) FROM regions WHERE layer = $l", {"l": layer}).fetchall()[0][0]
    if stored and not con.execute(f"SELECT count(*) FROM {staged}").fetchall()[0][0]:
        raise InvalidInputError(
            f"layer {layer!r} holds {stored:,} region(s) and the new file has none to load; pass --confirm "
            "(confirm=True) to empty it")
    used = []
    for cname, fence in con.execute("SELECT name, geofence FROM campaigns").fetchall():
        fence = json.loads(fence)
        if fence.get("kind") == "regions" and fence.get("layer") == layer:
            wanted = sorted({str(r) for r in fence.get("regions") or ()})
            gone = [r[0] for r in con.execute(
                f"SELECT w FROM unnest($w::VARCHAR[]) AS t(w) WHERE w NOT IN (SELECT region_id FROM {staged}) "
                "ORDER BY w", {"w": wanted}).fetchall()] if wanted else []
            if gone:
                used.append(f"{cname!r} (regions {', '.join(map(repr, gone[:3]))})")
    if used:
        raise InvalidInputError(
            f"replacing layer {layer!r} would drop regions that campaigns use: {'; '.join(used[:5])}; change those "
            "campaigns first, or pass --confirm (confirm=True)")


def _polygonal_part(geom):
    import shapely
    from shapely.geometry import MultiPolygon

    if shapely.get_type_id(geom) in (3, 6):
        return geom
    parts = [g for g in getattr(geom, "geoms", []) if shapely.get_type_id(g) in (3, 6)]
    polys = []
    for g in parts:
        polys.extend(getattr(g, "geoms", [g]))
    return MultiPolygon(polys) if polys else geom
