"""Writing audiences: CSV, Parquet, GeoParquet, GeoJSON, and customer-match files.

Every writer enforces the minimum audience size (unless the caller passes
``allow_small`` for internal use) and writes only eligible customers, since an
audience never holds opted-out or suppressed ones. Customer-match files carry
SHA-256 hashes of normalized emails and phones and never a raw identifier.
"""

from __future__ import annotations

import uuid
from pathlib import Path

import pandas as pd

from geotarget.audience.privacy import check_min_size
from geotarget.errors import InvalidInputError
from geotarget.store.identity import (
    email_column,
    google_email,
    normalize_email,
    normalize_phone,
    phone_column,
    sha256_hex,
)

__all__ = ["CUSTOMER_MATCH_RULES", "FORMATS", "format_for_path", "write_audience", "write_customer_match"]

#: How each platform wants identifiers before SHA-256 (on top of geotarget's own normalisation:
#: NFKC, whitespace and control characters removed, case-folded; phones in E.164).
CUSTOMER_MATCH_RULES = {
    "google": {
        "email_column": "Email",
        "phone_column": "Phone",
        "email": "lower-case, no whitespace; for gmail.com and googlemail.com, dots before the @ removed",
        "phone": "E.164 with the leading + (+12125550142)",
    },
    "meta": {
        "email_column": "email",
        "phone_column": "phone",
        "email": "lower-case, no whitespace",
        "phone": "digits only with the country code, no + and no leading zeros (12125550142)",
    },
}

#: File formats by extension.
FORMATS = {".csv": "csv", ".parquet": "parquet", ".geojson": "geojson", ".json": "geojson",
           ".geoparquet": "geoparquet"}


def format_for_path(path, fmt: str | None = None) -> str:
    """The export format named by ``fmt`` or by the file extension."""
    if fmt:
        fmt = fmt.lower().replace("_", "-")
        if fmt not in {"csv", "parquet", "geojson", "geoparquet", "customer-match"}:
            raise InvalidInputError(
                f"unknown format {fmt!r}; use csv, parquet, geojson, geoparquet or customer-match")
        return fmt
    suffix = Path(path).suffix.lower()
    if suffix not in FORMATS:
        raise InvalidInputError(
            f"cannot tell the format of {str(path)!r} from its extension; use .csv, .parquet, .geojson or "
            ".geoparquet, or pass --format")
    return FORMATS[suffix]


def _prepare(path) -> Path:
    out = Path(path)
    out.parent.mkdir(parents=True, exist_ok=True)
    return out


def _exporting(audience) -> None:
    """Run the audience's export hook, if it has one (a campaign freezes its groups on first export)."""
    hook = getattr(audience, "on_export", None)
    if hook is not None:
        hook()


def write_audience(audience, path, fmt: str, *, columns=None, allow_small: bool = False) -> Path:
    """Write an audience's rows in ``fmt``; returns the path written."""
    check_min_size(len(audience), audience.min_size, allow_small=allow_small)
    out = _prepare(path)
    _exporting(audience)
    if fmt == "customer-match":
        return write_customer_match(audience, out, allow_small=allow_small)
    if fmt in ("csv", "parquet"):
        frame = audience.to_pandas(columns)
        if fmt == "csv":
            _write_csv(frame, out, audience._engine.store.con)
        else:
            frame.to_parquet(out, index=False)
        return out
    gdf = audience.to_geodataframe(columns)
    if fmt == "geoparquet":
        gdf.to_parquet(out, index=False)
    elif fmt == "geojson":
        if out.exists():
            out.unlink()
        gdf.to_file(out, driver="GeoJSON")
    else:
        raise InvalidInputError(f"unknown format {fmt!r}")
    return out


def _write_csv(frame: pd.DataFrame, out: Path, con) -> None:
    """The CSV pandas writes, written by DuckDB's CSV writer (byte for byte the same, about 4x faster).

    Only text and number columns take this path; booleans, times and mixed
    objects keep pandas' own spelling (``True``, ISO times) through pandas.
    """
    import pyarrow as pa
    import pyarrow.types as pat

    def plain(t) -> bool:  # text, numbers, and categories of text
        if pat.is_dictionary(t):
            t = t.value_type
        return pat.is_string(t) or pat.is_large_string(t) or pat.is_floating(t) or pat.is_integer(t)

    table = pa.Table.from_pandas(frame, preserve_index=False)
    if not all(plain(f.type) for f in table.schema) or not all(isinstance(c, str) for c in frame.columns) \
            or table.num_columns == 0:
        frame.to_csv(out, index=False)
        return
    import pyarrow.compute as pc

    for i, f in enumerate(table.schema):  # pandas leaves an empty string unquoted, like a missing value
        if pat.is_dictionary(f.type) or pat.is_string(f.type) or pat.is_large_string(f.type):
            col = table.column(i).cast(pa.large_string())
            col = pc.if_else(pc.equal(col, ""), pa.scalar(None, pa.large_string()), col)
            table = table.set_column(i, f.name, col)
    name = f"_export_{uuid.uuid4().hex[:12]}"
    con.register(name, table)
    try:
        # COPY takes no bound parameter for its file: the path is quoted as an SQL string literal
        target = "'" + str(out).replace("'", "''") + "'"
        con.execute(f"COPY {name} TO {target} (FORMAT csv, HEADER true, DELIMITER ',')")
    finally:
        con.unregister(name)


def write_customer_match(audience, path, *, platform: str = "google", allow_small: bool = False,
                         include_control: bool = False) -> Path:
    """Hashed emails and phones for ad-platform customer matching (see :data:`CUSTOMER_MATCH_RULES`).

    The stored emails and phones were normalised at ingest by
    :mod:`geotarget.store.identity`; each platform's own rule is applied on top
    of that, then the value is hashed with SHA-256 (lower-case hex). The
    control group of a holdout is left out unless ``include_control``: it must
    not be targeted.
    """
    platform = platform.lower()
    if platform not in CUSTOMER_MATCH_RULES:
        raise InvalidInputError(f"platform must be 'google' or 'meta', got {platform!r}")
    columns = audience._engine.store.columns("customers")
    email, phone = email_column(columns), phone_column(columns)
    if email is None and phone is None:
        raise InvalidInputError(
            "customer-match needs an email or phone column on customers; none found among: " + ", ".join(columns))
    frame = audience.to_pandas([c for c in (email, phone) if c])
    if "group" in frame.columns and not include_control:
        frame = frame[frame["group"] != "control"]
    check_min_size(len(frame), audience.min_size, allow_small=allow_small)
    _exporting(audience)
    rules = CUSTOMER_MATCH_RULES[platform]
    out_cols: dict[str, list] = {}
    if email is not None:
        emails = [normalize_email(v) for v in frame[email]]
        if platform == "google":
            emails = [google_email(v) for v in emails]
        out_cols[rules["email_column"]] = [sha256_hex(v) for v in emails]
    if phone is not None:
        phones = [normalize_phone(v) for v in frame[phone]]
        if platform == "meta":
            phones = [None if v is None else v.lstrip("+") for v in phones]
        out_cols[rules["phone_column"]] = [sha256_hex(v) for v in phones]
    result = pd.DataFrame(out_cols).dropna(how="all")
    out = _prepare(path)
    result.to_csv(out, index=False)
    return out
