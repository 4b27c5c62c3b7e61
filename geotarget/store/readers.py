"""Readers that turn a source into a stream of pandas batches.

Tabular files (CSV, Parquet) are read by an in-memory DuckDB connection of
their own and streamed as Arrow record batches, so a 10-million-row file never
sits in memory whole. Vector files (GeoJSON, GeoPackage, Shapefile,
FlatGeobuf) are streamed by GDAL through ``pyogrio.open_arrow`` and GeoParquet
by row group, as GeoDataFrame batches: a 1 GB GeoJSON, even one written on a
single line, is read a batch of features at a time.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import duckdb

from geotarget._lazy import lazy_module
from geotarget.errors import SourceError
from geotarget.store.database import quiet

pd = lazy_module("pandas")  # imported on first use: the one-shot audience path never needs it

__all__ = ["BATCH_ROWS", "NeedsFullSniff", "open_source", "Source", "VECTOR_BATCH_ROWS"]

#: Rows per batch of a tabular file; each batch is one INSERT. At four of DuckDB's 122,880-row groups
#: the rows are written out while the load runs; 262,144-row batches left about 1.3 s of writing to the
#: checkpoint at close, and 0.4 GB more peak memory, at 10M rows.
BATCH_ROWS = 491_520

#: Features per batch of a vector file: polygons can be large, so batches are smaller than tabular ones.
VECTOR_BATCH_ROWS = 8_192

#: Longest header line read from a CSV; reading stops there, so one huge line never fills memory.
_MAX_HEADER_CHARS = 1 << 20

_TABULAR = {".csv", ".tsv", ".txt", ".csv.gz", ".tsv.gz"}
_PARQUET = {".parquet", ".pq"}
_VECTOR = {".geojson", ".json", ".gpkg", ".shp", ".fgb", ".zip", ".kml", ".gml"}


class NeedsFullSniff(Exception):
    """A CSV value deep in the file broke the sniffed types; read again, sniffing it all."""


@dataclass
class Source:
    """A readable source: its display name, its column names, its batches."""

    name: str
    columns: list[str]
    total_rows: int | None
    crs: object | None
    geometry_column: str | None
    batches: Iterator[pd.DataFrame]


def _suffix(path: Path) -> str:
    suffixes = [s.lower() for s in path.suffixes[-2:]]
    joined = "".join(suffixes)
    return joined if joined in _TABULAR else (suffixes[-1] if suffixes else "")


def _first_line(exc: BaseException) -> str:
    return str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__


def open_source(
    source, *, batch_rows: int = BATCH_ROWS, force_text: tuple[str, ...] = (), full_sniff: bool = False
) -> Source:
    """Open a file path or a (Geo)DataFrame for streaming."""
    if isinstance(source, pd.DataFrame):
        return _from_frame(source, "<DataFrame>", batch_rows)
    if not isinstance(source, (str, os.PathLike)):
        raise SourceError(f"cannot ingest a {type(source).__name__}; pass a file path or a pandas/GeoPandas DataFrame")
    path = Path(source)
    if not path.exists():
        raise SourceError(f"file {str(path)!r} not found; check the path")
    if path.is_dir():
        raise SourceError(f"{str(path)!r} is a folder; pass a file")
    suffix = _suffix(path)
    if suffix in _TABULAR:
        return _duckdb_source(path, "csv", batch_rows, force_text, full_sniff)
    if suffix in _PARQUET:
        if _is_geoparquet(path):
            return _vector_source(path, batch_rows, parquet=True)
        return _duckdb_source(path, "parquet", batch_rows, force_text)
    if suffix in _VECTOR:
        return _vector_source(path, batch_rows)
    raise SourceError(
        f"unsupported file type {path.suffix!r} for {path.name!r}; use CSV, Parquet, GeoParquet, "
        "GeoJSON, GeoPackage or Shapefile"
    )


def _is_geoparquet(path: Path) -> bool:
    import pyarrow.parquet as pq

    try:
        meta = pq.read_schema(path).metadata or {}
    except Exception as exc:
        raise SourceError(f"cannot read Parquet file {path.name!r}: {_first_line(exc)}") from None
    return b"geo" in meta


def _from_frame(frame: pd.DataFrame, name: str, batch_rows: int) -> Source:
    twice = sorted({str(c) for c in frame.columns[frame.columns.duplicated()]})
    if twice:
        raise SourceError(f"{name} has more than one column named {', '.join(map(repr, twice))}; "
                          "rename or drop the duplicates (e.g. frame.loc[:, ~frame.columns.duplicated()])")
    crs = getattr(frame, "crs", None) if hasattr(frame, "geometry") else None
    geom_col = None
    if hasattr(frame, "geometry") and getattr(frame, "_geometry_column_name", None) in frame.columns:
        geom_col = frame._geometry_column_name

    def batches():
        for start in range(0, max(len(frame), 1), batch_rows):
            chunk = frame.iloc[start : start + batch_rows]
            if len(chunk):
                yield chunk

    return Source(name, [str(c) for c in frame.columns], len(frame), crs, geom_col, batches())


def _vector_source(path: Path, batch_rows: int, *, parquet: bool = False) -> Source:
    """Stream a vector file as GeoDataFrame batches: memory follows the batch, not the file.

    GDAL (through ``pyogrio.open_arrow``) parses GeoJSON incrementally, so a
    FeatureCollection written on one line of any length streams feature by
    feature; GeoParquet is read row group by row group.
    """
    if parquet:
        return _geoparquet_source(path, batch_rows)
    import pyogrio

    try:
        opened = pyogrio.open_arrow(path, batch_size=min(batch_rows, VECTOR_BATCH_ROWS), use_pyarrow=True)
        meta, reader = opened.__enter__()
    except Exception as exc:
        why = _first_line(exc).replace(f"'{path}' ", "the file ").replace(str(path), path.name)
        raise SourceError(f"cannot read {path.name!r}: {why}; is the file complete and valid?") from None
    wkb_column = meta["geometry_name"] or "wkb_geometry"
    fields = [str(c) for c in meta["fields"]]
    crs = _crs(meta["crs"])

    def batches():
        try:
            while True:
                try:
                    batch = reader.read_next_batch()
                except StopIteration:
                    return
                except Exception as exc:
                    raise SourceError(f"cannot read {path.name!r}: {_first_line(exc)}; is the file complete and "
                                      "valid?") from None
                yield _geoframe(batch, wkb_column, crs)
        finally:
            opened.__exit__(None, None, None)

    return Source(str(path), [*fields, "geometry"], None, crs, "geometry", batches())


def _geoparquet_source(path: Path, batch_rows: int) -> Source:
    import json

    import pyarrow.parquet as pq

    try:
        parquet = pq.ParquetFile(path)
        geo = json.loads(parquet.schema_arrow.metadata[b"geo"])
        column = geo["primary_column"]
        described = geo["columns"][column]
    except Exception as exc:
        raise SourceError(f"cannot read GeoParquet file {path.name!r}: {_first_line(exc)}") from None
    if str(described.get("encoding", "WKB")).upper() != "WKB":  # GeoArrow-encoded geometry: read whole
        import geopandas as gpd

        return _from_frame(gpd.read_parquet(path), str(path), batch_rows)
    # an absent "crs" means OGC:CRS84 (longitude/latitude); an explicit null means unknown
    crs = _crs(described["crs"] if "crs" in described else "OGC:CRS84")
    columns = [str(c) for c in parquet.schema_arrow.names]

    def batches():
        try:
            for batch in parquet.iter_batches(batch_size=min(batch_rows, VECTOR_BATCH_ROWS)):
                yield _geoframe(batch, column, crs, rename=False)
        except Exception as exc:
            raise SourceError(f"cannot read {path.name!r}: {_first_line(exc)}; is the file complete and valid?") from None
        finally:
            parquet.close()

    return Source(str(path), columns, parquet.metadata.num_rows, crs, column, batches())


def _crs(crs):
    """A pyproj CRS from GDAL's or GeoParquet's description (None when the file names none)."""
    if crs is None or (isinstance(crs, str) and not crs):
        return None
    from pyproj import CRS

    return CRS.from_user_input(crs)


def _nullable_types(arrow_type):
    """Pandas' nullable dtype for an Arrow integer or boolean (None: the default conversion)."""
    import pyarrow as pa

    nullable = {pa.int8(): pd.Int8Dtype(), pa.int16(): pd.Int16Dtype(), pa.int32(): pd.Int32Dtype(),
                pa.int64(): pd.Int64Dtype(), pa.uint8(): pd.UInt8Dtype(), pa.uint16(): pd.UInt16Dtype(),
                pa.uint32(): pd.UInt32Dtype(), pa.uint64(): pd.UInt64Dtype(), pa.bool_(): pd.BooleanDtype()}
    return nullable.get(arrow_type)


def _geoframe(batch, wkb_column: str, crs, *, rename: bool = True):
    """One Arrow batch with WKB geometry as a GeoDataFrame (geometry column ``geometry`` unless ``rename=False``)."""
    import geopandas as gpd
    import shapely

    names = batch.schema.names
    index = names.index(wkb_column)
    # nullable integers and booleans: a column's type must not depend on whether its batch has a null
    frame = batch.drop_columns([wkb_column]).to_pandas(types_mapper=_nullable_types)
    geometry = shapely.from_wkb(batch.column(index).to_numpy(zero_copy_only=False))
    target = "geometry" if rename else wkb_column
    frame.insert(min(index, len(frame.columns)), target, geometry)
    return gpd.GeoDataFrame(frame, geometry=target, crs=crs)


def _duckdb_source(
    path: Path, kind: str, batch_rows: int, force_text: tuple[str, ...], full_sniff: bool = False
) -> Source:
    reader = duckdb.connect(":memory:")
    quiet(reader)
    params: dict = {"p": str(path)}
    delimiter = _delimiter(path) if kind == "csv" else ","
    try:
        described = reader.execute(
            "DESCRIBE " + (f"SELECT * FROM read_csv($p, delim = '{delimiter}', header = true, quote = '\"')" if kind == "csv"
                           else "SELECT * FROM read_parquet($p)"), params).fetchall()
    except duckdb.Error as exc:
        reader.close()
        raise SourceError(f"cannot read {path.name!r}: {_first_line(exc)}; is the file complete and valid?") from None
    columns = [row[0] for row in described]
    total = None
    if kind == "parquet":
        total = reader.execute("SELECT sum(num_rows) FROM parquet_file_metadata($p)", params).fetchall()[0][0]

    def query(full_sniff: bool) -> str:
        if kind == "parquet":
            return "SELECT * FROM read_parquet($p)"
        opts = [f"delim = '{delimiter}'", "header = true", "quote = '\"'"]
        if force_text:
            pairs = ", ".join(f"'{c.replace(chr(39), chr(39) * 2)}': 'VARCHAR'" for c in force_text if c in columns)
            if pairs:
                opts.append(f"types = {{{pairs}}}")
        if full_sniff:
            opts.append("sample_size = -1")
        return f"SELECT * FROM read_csv($p{''.join(', ' + o for o in opts)})"

    def batches():
        try:
            relation = reader.sql(query(full_sniff), params=params)
            for batch in relation.to_arrow_reader(batch_rows):
                yield batch.to_pandas(types_mapper=_types_mapper)
        except (duckdb.ConversionException, OSError) as exc:
            # a value deep in the file that the sampled types do not fit (Arrow's reader reports
            # DuckDB's conversion error as an OSError): plan the types from the whole file instead
            if not isinstance(exc, duckdb.ConversionException) and "Conversion Error" not in str(exc):
                raise SourceError(f"cannot read {path.name!r}: {_first_line(exc)}; is the file complete and valid?") from None
            if not full_sniff:
                raise NeedsFullSniff() from None
            raise SourceError(f"cannot read {path.name!r}: {_first_line(exc)}; fix or quote the bad value") from None
        except duckdb.Error as exc:
            raise SourceError(f"cannot read {path.name!r}: {_first_line(exc)}; is the file complete and valid?") from None
        finally:
            reader.close()

    return Source(str(path), columns, total, None, None, batches())


def _delimiter(path: Path) -> str:
    """The delimiter of a CSV: the most frequent candidate in its header line.

    Naming it stops DuckDB's sniffer from falling back to a one-column dialect
    on a malformed file, which would hide the damage.
    """
    import gzip

    opener = gzip.open if path.suffix.lower() == ".gz" else open
    try:
        with opener(path, "rt", encoding="utf-8", errors="replace") as fh:
            header = fh.readline(_MAX_HEADER_CHARS + 1)  # bounded: a file may be one huge line
    except OSError as exc:
        raise SourceError(f"cannot read {path.name!r}: {_first_line(exc)}") from None
    if len(header) > _MAX_HEADER_CHARS and not header.endswith("\n"):
        raise SourceError(
            f"the first line of {path.name!r} is longer than {_MAX_HEADER_CHARS:,} characters; a CSV needs a header "
            "line of column names followed by one row per line (is it one huge line, or not a CSV?)")
    if not header.strip():
        raise SourceError(f"{path.name!r} is empty or has no header line; a CSV needs column names first")
    counts = {d: header.count(d) for d in (",", "\t", ";", "|")}
    best = max(counts, key=counts.get)
    return best if counts[best] else ","


def _types_mapper(arrow_type):
    """Keep strings as Arrow-backed strings; everything else default."""
    import pyarrow as pa

    if pa.types.is_string(arrow_type) or pa.types.is_large_string(arrow_type):
        return pd.ArrowDtype(pa.string())
    return None
