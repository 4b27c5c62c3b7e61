"""Row validation for the ingest: column detection, coordinates, reasons.

Each row gets a small integer reason code while a batch is checked (0: no
problem yet; the first reason found wins). Only rejected rows are turned into
text, with their raw values, for the ``rejects`` table.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from geotarget._lazy import lazy_module
from geotarget.errors import ColumnNotFoundError, InvalidInputError, SwappedCoordinatesError
from geotarget.store.readers import Source

pd = lazy_module("pandas")  # imported on first use: the one-shot audience path never needs it

__all__ = [
    "ID_NAMES",
    "LAT_NAMES",
    "LNG_NAMES",
    "OPTED_OUT_NAMES",
    "REASON_DUPLICATE",
    "REASON_LAT_RANGE",
    "REASON_LNG_RANGE",
    "REASON_MISSING_COORDS",
    "REASON_MISSING_ID",
    "REASON_NON_FINITE",
    "REASON_NON_NUMERIC",
    "REASON_NOT_POINT",
    "REASON_NULL_ISLAND",
]

LAT_NAMES = ("lat", "latitude", "y")

#: Most points of a file south of this latitude means its columns look swapped.
ANTARCTIC_LAT = -60.0
LNG_NAMES = ("lng", "lon", "long", "longitude", "x")
ID_NAMES = {
    "customers": ("customer_id", "customerid", "cust_id", "id", "customer"),
    "stores": ("store_id", "storeid", "id", "store"),
}
OPTED_OUT_NAMES = ("opted_out", "opt_out", "optout", "unsubscribed")
_RESERVED = {"customer_id", "store_id", "lat", "lng", "cell", "opted_out", "updated_at", "source", "_row", "name",
             "email_sha256", "phone_sha256", "_consent", "_consent_raw"}

REASON_MISSING_ID = "missing id"
REASON_MISSING_COORDS = "missing coordinates"
REASON_NON_NUMERIC = "non-numeric coordinates"
REASON_NON_FINITE = "coordinates not finite (NaN or inf)"
REASON_LAT_RANGE = "latitude out of range [-90, 90]"
REASON_LNG_RANGE = "longitude out of range [-180, 180]"
REASON_NULL_ISLAND = "coordinates are exactly (0, 0)"
REASON_NOT_POINT = "geometry is not a point"
REASON_DUPLICATE = ("duplicate id: superseded by a later row of the same file (rows without a unique id, such "
                    "as events, load with --id-from row or --id-from hash)")

# rows carry a small integer code while validating; 0 means "no problem yet"
_REASONS = ["", REASON_MISSING_ID, REASON_MISSING_COORDS, REASON_NON_NUMERIC, REASON_NON_FINITE,
            REASON_LAT_RANGE, REASON_LNG_RANGE, REASON_NULL_ISLAND, REASON_NOT_POINT]
_CODE = {reason: i for i, reason in enumerate(_REASONS)}


def _mark(codes: np.ndarray, where: np.ndarray, reason: str) -> None:
    """Give ``reason`` to rows in ``where`` that have no reason yet (first reason wins)."""
    codes[(codes == 0) & where] = _CODE[reason]


def _quote(name: str) -> str:
    return '"' + str(name).replace('"', '""') + '"'


def _find(columns: list[str], wanted: str | None, candidates: tuple[str, ...], what: str, flag: str) -> str | None:
    if wanted is not None:
        if wanted in columns:
            return wanted
        lowered = {c.lower(): c for c in columns}
        if wanted.lower() in lowered:
            return lowered[wanted.lower()]
        raise ColumnNotFoundError(
            f"{what} column {wanted!r} not found; available columns: {', '.join(map(str, columns))}"
        )
    lowered = {str(c).lower(): c for c in columns}
    for cand in candidates:
        if cand in lowered:
            return lowered[cand]
    return None


def _raw_json(frame: pd.DataFrame) -> list[str]:
    if frame.empty:
        return []
    text = frame.to_json(orient="records", lines=True, date_format="iso", default_handler=str)
    return text.strip("\n").split("\n")


@dataclass
class _Columns:
    id: str
    lat: str | None
    lng: str | None
    geometry: str | None
    opted_out: str | None
    name: str | None


def _detect(src: Source, kind: str, *, id_col, lat_col, lng_col, opted_out_col, name_col,
            columns: list[str] | None = None) -> _Columns:
    columns = src.columns if columns is None else columns
    ident = _find(columns, id_col, ID_NAMES[kind], "id", "--id-col")
    if ident is None:
        raise ColumnNotFoundError(
            f"no id column found in {src.name}; pass --id-col (id_col=) naming one of: {', '.join(map(str, columns))}"
        )
    geometry = src.geometry_column if lat_col is None and lng_col is None else None
    lat = _find(columns, lat_col, LAT_NAMES, "latitude", "--lat-col") if geometry is None else None
    lng = _find(columns, lng_col, LNG_NAMES, "longitude", "--lng-col") if geometry is None else None
    if geometry is None and (lat is None or lng is None):
        raise ColumnNotFoundError(
            f"no latitude/longitude columns found in {src.name}; pass --lat-col and --lng-col "
            f"(lat_col=, lng_col=) naming two of: {', '.join(map(str, columns))}"
        )
    opted = _find(columns, opted_out_col, OPTED_OUT_NAMES, "opted-out", "--opted-out-col") if kind == "customers" else None
    name = _find(columns, name_col, ("name", "store_name"), "name", "--name-col") if kind == "stores" else None
    return _Columns(ident, lat, lng, geometry, opted, name)


def _coordinates(frame: pd.DataFrame, cols: _Columns, crs, reasons: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Latitude and longitude as float64 with reasons filled in for bad rows."""
    n = len(frame)
    if cols.geometry is not None:
        import shapely

        geoms = np.asarray(frame[cols.geometry].array, dtype=object)
        if crs is not None and not getattr(crs, "is_geographic", True):
            geoms = np.asarray(frame[cols.geometry].to_crs(4326).array, dtype=object)
        missing = shapely.is_missing(geoms) | shapely.is_empty(geoms)
        is_point = shapely.get_type_id(geoms) == 0
        _mark(reasons, missing, REASON_MISSING_COORDS)
        _mark(reasons, ~is_point, REASON_NOT_POINT)
        lng = np.full(n, np.nan)
        lat = np.full(n, np.nan)
        ok = ~missing & is_point
        lng[ok] = shapely.get_x(geoms[ok])
        lat[ok] = shapely.get_y(geoms[ok])
        return lat, lng
    out = []
    for name in (cols.lat, cols.lng):
        col = frame[name]
        missing = col.isna().to_numpy(dtype=bool).copy()
        if pd.api.types.is_numeric_dtype(col.dtype) and not pd.api.types.is_bool_dtype(col.dtype):
            values = col.to_numpy(dtype="float64", na_value=np.nan)
            nonnum = np.zeros(n, dtype=bool)
        else:
            text = col.astype("string").str.strip()
            missing |= (text == "").fillna(True).to_numpy(dtype=bool)
            values = pd.to_numeric(text, errors="coerce").to_numpy(dtype="float64", na_value=np.nan)
            lowered = text.str.lower()
            spelled_nan = lowered.isin(["nan", "inf", "-inf", "+inf", "infinity", "-infinity"]).fillna(False)
            nonnum = ~missing & np.isnan(values) & ~spelled_nan.to_numpy(dtype=bool)
        _mark(reasons, missing, REASON_MISSING_COORDS)
        _mark(reasons, nonnum, REASON_NON_NUMERIC)
        out.append(values)
    lat, lng = out
    if crs is not None:
        from pyproj import CRS, Transformer

        source_crs = CRS.from_user_input(crs)
        if not source_crs.equals(CRS.from_epsg(4326)):
            ok = np.isfinite(lat) & np.isfinite(lng)
            tr = Transformer.from_crs(source_crs, 4326, always_xy=True)
            x, y = tr.transform(lng[ok], lat[ok])  # detected 'lng'/'lat' are x/y here
            lng = lng.copy()
            lat = lat.copy()
            lng[ok], lat[ok] = x, y
    return lat, lng


def _validate(frame: pd.DataFrame, cols: _Columns, crs, kind: str):
    n = len(frame)
    reasons = np.zeros(n, dtype=np.uint8)
    ids = frame[cols.id]
    if not (pd.api.types.is_string_dtype(ids.dtype) or isinstance(ids.dtype, pd.ArrowDtype)):
        if pd.api.types.is_float_dtype(ids.dtype):
            ids = ids.astype("Int64")
    ids = ids.astype("string").str.strip()
    missing_id = (ids.isna() | (ids == "")).fillna(True).to_numpy(dtype=bool)
    reasons[missing_id] = _CODE[REASON_MISSING_ID]
    lat, lng = _coordinates(frame, cols, crs, reasons)
    unchecked = reasons == 0
    finite = np.isfinite(lat) & np.isfinite(lng)
    _mark(reasons, ~finite, REASON_NON_FINITE)
    with np.errstate(invalid="ignore"):
        lat_bad = np.abs(lat) > 90
        lng_bad = np.abs(lng) > 180
    swappable = int((unchecked & finite & (lat_bad | lng_bad) & (np.abs(lng) <= 90) & (np.abs(lat) <= 180)).sum())
    out_of_range = int((unchecked & finite & (lat_bad | lng_bad)).sum())
    _mark(reasons, lat_bad, REASON_LAT_RANGE)
    _mark(reasons, lng_bad, REASON_LNG_RANGE)
    _mark(reasons, (lat == 0) & (lng == 0), REASON_NULL_ISLAND)
    good = reasons == 0
    with np.errstate(invalid="ignore"):
        antarctic = int((good & (lat < ANTARCTIC_LAT) & (np.abs(lng) <= 90)).sum())
    return ids, lat, lng, reasons, good, (swappable, out_of_range, int((unchecked & finite).sum()), antarctic)


def check_crs(crs) -> None:
    """Refuse a CRS that pyproj does not know, in one line."""
    if crs is None:
        return
    from pyproj import CRS
    from pyproj.exceptions import CRSError

    try:
        CRS.from_user_input(crs)
    except CRSError:
        raise InvalidInputError(
            f"unknown CRS {crs!r}; pass one pyproj knows, e.g. EPSG:4326 or EPSG:2263 (--crs, crs=)") from None


def _swap_flags(cols: _Columns) -> str:
    """The options that read the coordinate columns the other way round."""
    if cols.lat is None:
        return "lat_col=/lng_col= naming the columns"
    return f"--lat-col {cols.lng} --lng-col {cols.lat}"


def _check_swapped(stats: list[int], cols: _Columns, src: Source, *, swap_check: bool = True) -> None:
    swappable, out_of_range, numeric, antarctic = stats
    if swap_check and numeric and antarctic * 2 > numeric:
        raise SwappedCoordinatesError(
            f"{antarctic:,} of {numeric:,} rows in {src.name} fall south of {-ANTARCTIC_LAT:g}°S, in Antarctica; "
            f"latitude and longitude look swapped: pass {_swap_flags(cols)}, or --no-swap-check (swap_check=False) "
            "if the points really are there")
    if numeric and out_of_range * 2 > numeric and swappable * 10 >= out_of_range * 9:
        if cols.lat is not None:
            hint = f"--lat-col {cols.lng} --lng-col {cols.lat} (lat_col={cols.lng!r}, lng_col={cols.lat!r})"
        else:
            hint = "lat_col=/lng_col= naming the columns, or fix the geometry's axis order"
        raise SwappedCoordinatesError(
            f"{out_of_range:,} of {numeric:,} rows in {src.name} are out of range but valid with latitude and "
            f"longitude swapped; the columns look swapped: pass {hint}"
        )


def _known_box(con):
    """(min_lat, max_lat, min_lng, max_lng) around the stored stores and regions, 0.5° wider; None if none."""
    row = con.execute(
        "SELECT min(a), max(b), min(c), max(d) FROM (SELECT min(lat) a, max(lat) b, min(lng) c, max(lng) d FROM stores "
        "UNION ALL SELECT min(ymin), max(ymax), min(xmin), max(xmax) FROM regions)").fetchall()[0]
    return None if row[0] is None else (row[0] - 0.5, row[1] + 0.5, row[2] - 0.5, row[3] + 0.5)


def _in_box(box, lat, lng, good) -> tuple[int, int]:
    """Good rows inside ``box`` as read, and as read with latitude and longitude swapped."""
    if box is None:
        return 0, 0
    lo_lat, hi_lat, lo_lng, hi_lng = box
    with np.errstate(invalid="ignore"):
        as_read = good & (lat >= lo_lat) & (lat <= hi_lat) & (lng >= lo_lng) & (lng <= hi_lng)
        swapped = good & (lng >= lo_lat) & (lng <= hi_lat) & (lat >= lo_lng) & (lat <= hi_lng)
    return int(as_read.sum()), int(swapped.sum())


def _check_swapped_box(stats, cols: _Columns, src: Source) -> None:
    """Refuse a file whose points fall where the stores and regions are only when read swapped."""
    as_read, swapped = stats
    if swapped >= 100 and swapped > 9 * as_read:
        raise SwappedCoordinatesError(
            f"{swapped:,} rows of {src.name} fall where the stored stores and regions are only with latitude and "
            f"longitude swapped ({as_read:,} as read); the columns look swapped: pass {_swap_flags(cols)}, or "
            "--no-swap-check (swap_check=False) to load them as they are")
