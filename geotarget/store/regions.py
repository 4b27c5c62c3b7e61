"""Ingest region polygons as a named layer: checks, repairs, and the safe replacement of a layer.

A layer is replaced whole, in one transaction. Polygons must be in
longitude/latitude (a projected file without a CRS is refused); invalid
rings are repaired with ``shapely.make_valid`` and zero-area rings are
rejected. Emptying a layer, or dropping regions that campaigns use, needs
``confirm=True`` (CLI ``--confirm``).
"""

from __future__ import annotations

import time
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
    import shapely

    started = time.perf_counter()
    if not isinstance(layer, str) or not layer.strip():
        raise InvalidInputError("a region layer needs a name: pass --layer NAME (layer=)")
    if isinstance(source, gpd.GeoDataFrame):
        frame, name = source, "<GeoDataFrame>"
    else:
        src = open_source(source)
        if src.geometry_column is None:
            raise SourceError(f"{src.name} has no geometry column; regions need polygons (GeoJSON, GeoPackage, ...)")
        frame = pd.concat(list(src.batches)) if src.total_rows else gpd.GeoDataFrame(geometry=[])
        frame = gpd.GeoDataFrame(frame, geometry=src.geometry_column, crs=src.crs)
        name = src.name
    if frame.crs is not None and not frame.crs.equals("EPSG:4326"):
        frame = frame.to_crs(4326)
    check_lnglat_bounds(frame, name)
    columns = [c for c in frame.columns if c != frame.geometry.name]
    name_c = _find(columns, name_col, ("name",), "name", "--name-col")
    if name_c is None:
        name_c = next((c for c in columns if "name" in str(c).lower()), None)
    id_c = _find(columns, id_col, ("region_id", "id"), "id", "--id-col")
    report = IngestReport(kind="regions", source=name, read=len(frame))
    geoms = np.asarray(frame.geometry.array, dtype=object)
    reasons = np.full(len(frame), "", dtype=object)
    missing = shapely.is_missing(geoms) | shapely.is_empty(geoms)
    reasons[missing] = "missing geometry"
    polygonal = np.isin(shapely.get_type_id(geoms), [3, 6])
    reasons[(reasons == "") & ~polygonal] = "geometry is not a polygon"
    zero_area = "polygon has zero area (its ring is a line or a point)"
    with np.errstate(invalid="ignore"):
        # zero up to rounding: the area is a billionth of the squared perimeter or less
        flat = shapely.is_valid(geoms) & (shapely.area(geoms) <= 1e-9 * shapely.length(geoms) ** 2)
        reasons[(reasons == "") & flat] = zero_area  # invalid ones (a bow tie's area is 0) are repaired first
    invalid = (reasons == "") & ~shapely.is_valid(geoms)
    if invalid.any():
        repaired = shapely.make_valid(geoms[invalid])
        # make_valid may return collections; keep their polygonal parts
        repaired = np.array([_polygonal_part(g) for g in repaired], dtype=object)
        geoms = geoms.copy()
        geoms[invalid] = repaired
        flat = ~np.isin(shapely.get_type_id(repaired), [3, 6]) | (shapely.area(repaired) <= 0)
        reasons[np.flatnonzero(invalid)[flat]] = zero_area
        invalid[np.flatnonzero(invalid)[flat]] = False
        if invalid.any():
            warnings.warn(
                f"{int(invalid.sum())} invalid polygon(s) in layer {layer!r} were repaired with shapely.make_valid",
                GeotargetWarning,
                stacklevel=3,
            )
    ids = frame[id_c].astype("string") if id_c else pd.Series([str(i + 1) for i in range(len(frame))])
    ids = ids.astype("string").str.strip()
    reasons[(reasons == "") & (ids.isna() | (ids == "")).fillna(True).to_numpy(dtype=bool)] = "missing id"
    dup = ids.duplicated(keep="last").to_numpy(dtype=bool)
    reasons[(reasons == "") & dup] = "duplicate id: superseded by a later row of the same file"
    good = np.flatnonzero(reasons == "")
    bounds = shapely.bounds(geoms[good]) if good.size else np.zeros((0, 4))
    props = frame.drop(columns=[frame.geometry.name]).iloc[good]
    rows = pd.DataFrame({  # noqa: F841 (DuckDB reads it by name)
        "layer": layer,
        "region_id": ids.to_numpy(dtype=object)[good],
        "name": frame[name_c].astype("string").to_numpy(dtype=object)[good] if name_c else None,
        "geometry": shapely.to_wkb(geoms[good]) if good.size else np.array([], dtype=object),
        "xmin": bounds[:, 0], "ymin": bounds[:, 1], "xmax": bounds[:, 2], "ymax": bounds[:, 3],
        "properties": _raw_json(props) if good.size else [],
        "source": name,
    })
    bad = np.flatnonzero(reasons != "")
    now = pd.Timestamp.now(tz="UTC")
    with store.transaction() as con:
        check_layer_replacement(con, layer, set(rows["region_id"]), confirm=confirm)
        con.execute("DELETE FROM rejects WHERE kind = 'regions' AND source = $s", {"s": name})
        report.updated = con.execute("DELETE FROM regions WHERE layer = $l", {"l": layer}).fetchall()[0][0]
        con.execute("INSERT INTO regions SELECT * FROM rows")
        if bad.size:
            rej = pd.DataFrame({  # noqa: F841 (DuckDB reads it by name)
                "kind": "regions", "source": name, "row_number": bad + 1,
                "raw": _raw_json(frame.drop(columns=[frame.geometry.name]).iloc[bad]),
                "reason": reasons[bad].astype(str), "rejected_at": now,
            })
            con.execute("INSERT INTO rejects BY NAME SELECT * FROM rej")
    report.loaded = int(good.size)
    report.updated = min(report.updated, report.loaded)
    report.inserted = report.loaded - report.updated
    report.rejected = int(bad.size)
    report.reasons = dict(Counter(reasons[bad].tolist()))
    report.seconds = time.perf_counter() - started
    if progress is not None:
        progress(report.read, report.read)
    return report


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


def check_layer_replacement(con, layer: str, new_ids: set, *, confirm: bool) -> None:
    """Refuse, unless confirmed, to empty a layer or to drop regions that campaigns use."""
    import json

    if confirm:
        return
    stored = con.execute("SELECT count(*) FROM regions WHERE layer = $l", {"l": layer}).fetchall()[0][0]
    if stored and not new_ids:
        raise InvalidInputError(
            f"layer {layer!r} holds {stored:,} region(s) and the new file has none to load; pass --confirm "
            "(confirm=True) to empty it")
    used = []
    for cname, fence in con.execute("SELECT name, geofence FROM campaigns").fetchall():
        fence = json.loads(fence)
        if fence.get("kind") == "regions" and fence.get("layer") == layer:
            gone = sorted(set(fence.get("regions") or ()) - new_ids)
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
