"""Narrowing a Spark audience the way the embedded engine narrows its own.

After the exact radius or region step, :func:`geotarget.audience.audience.build_audience`
drops customers in exclusion zones and exclusion regions, keeps those that
match the segment filters, and splits the rest into treatment and control.
A Spark audience does the same, with the same functions, inside the Arrow
UDF that runs the exact kernel:

- **filters** (``where=``) are parsed and checked against the dataset's
  column types by :func:`geotarget.audience.filters.compile_filters` on the
  driver (so a bad filter fails before any task runs, with the embedded
  engine's message), and the compiled SQL, values bound as parameters, is
  evaluated by DuckDB on each batch, as the embedded engine evaluates it on
  its customers table;
- **exclusion zones** (``exclude_within=``, ``"lat,lng,radius"``) are read by
  the embedded parser and tested with the same WGS84 geodesic test;
- **exclusion regions** (``exclude_regions=``, ``"LAYER:NAME"`` of a
  database, or polygons) are prepared from WKB as the embedded engine
  prepares them (boundary inside);
- **consent**: a dataset with a consent column (``opted_out``, ``opt_out``,
  ``optout``, ``unsubscribed``, or the one named) keeps only the rows whose
  value :func:`geotarget.store.consent.consent_codes` reads as not opted out
  or opted in; an opt-out, an empty cell or any value it does not recognise
  means no;
- **suppression**: ids, and email and phone hashes, of a suppression list
  (a database's, or a frame of ``kind, value``) leave the audience through
  broadcast anti-joins, matching stored hashes only, as the embedded engine
  does;
- **holdout**: :func:`geotarget.audience.privacy.holdout_groups` on each id,
  so a campaign and fraction put the same customers in control on both
  engines.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import pandas as pd
import pyarrow as pa

from ..audience.filters import compile_filters, parse_filters
from ..audience.membership import _chosen_regions, _parse_region_ref, _parse_zone, _prepared
from ..audience.privacy import holdout_groups
from ..errors import InvalidInputError
from ..geo.geodesy import within_radius
from ..store.consent import NOT_OUT, OPT_IN, consent_codes
from ..store.database import quiet
from ..store.validation import OPTED_OUT_NAMES

__all__ = ["Narrowing", "column_types", "narrowing", "region_wkbs", "suppress", "suppression_frame_of"]

#: Suppression kinds and the dataset column each one is matched against.
SUPPRESSION_COLUMNS = {"id": "customer_id", "email_sha256": "email_sha256", "phone_sha256": "phone_sha256"}

_DUCKDB_TYPES = {
    "StringType": "VARCHAR", "VarcharType": "VARCHAR", "CharType": "VARCHAR", "BooleanType": "BOOLEAN",
    "ByteType": "TINYINT", "ShortType": "SMALLINT", "IntegerType": "INTEGER", "LongType": "BIGINT",
    "FloatType": "FLOAT", "DoubleType": "DOUBLE", "DecimalType": "DECIMAL", "DateType": "DATE",
    "TimestampType": "TIMESTAMP WITH TIME ZONE", "TimestampNTZType": "TIMESTAMP",
}


def column_types(schema) -> dict[str, str]:
    """A Spark schema as column name -> the DuckDB type name the filter checks expect.

    Examples
    --------
    >>> from pyspark.sql.types import StructType, StructField, LongType, StringType  # doctest: +SKIP
    >>> column_types(StructType([StructField("age", LongType()), StructField("tier", StringType())]))  # doctest: +SKIP
    {'age': 'BIGINT', 'tier': 'VARCHAR'}
    """
    return {f.name: _DUCKDB_TYPES.get(type(f.dataType).__name__, type(f.dataType).__name__) for f in schema.fields}


@dataclass(frozen=True)
class Narrowing:
    """What narrows an audience after its exact step; picklable, shipped to every task."""

    where_sql: str = "TRUE"
    where_params: tuple = ()
    where_columns: tuple = ()
    zones: tuple = ()
    exclude_wkb: tuple = ()
    consent_col: str | None = None
    holdout: float | None = None
    campaign: str | None = None
    descriptions: tuple = field(default=(), compare=False)

    @property
    def columns(self) -> list[str]:
        """Dataset columns the kernel needs beyond ``customer_id, lat, lng, cell``."""
        extra = list(self.where_columns) + ([self.consent_col] if self.consent_col else [])
        return [c for c in dict.fromkeys(extra) if c not in ("customer_id", "lat", "lng", "cell")]

    def keep(self, table: pa.Table) -> np.ndarray:
        """Which rows of a batch (already through the exact step) stay in the audience."""
        n = table.num_rows
        keep = np.ones(n, dtype=bool)
        if n == 0:
            return keep
        lat = table.column("lat").to_numpy().astype("float64")
        lng = table.column("lng").to_numpy().astype("float64")
        for zlat, zlng, zr in self.zones:
            keep &= ~within_radius(lat, lng, zlat, zlng, zr)
        if self.exclude_wkb:
            import shapely

            for wkb in self.exclude_wkb:
                keep &= ~shapely.intersects_xy(_prepared(wkb), lng, lat)
        if self.consent_col:
            codes, _ = consent_codes(table.column(self.consent_col).to_pandas())
            keep &= (codes == NOT_OUT) | (codes == OPT_IN)
        if self.where_sql != "TRUE":
            keep &= self._matching(table)
        return keep

    def _matching(self, table: pa.Table) -> np.ndarray:
        import duckdb

        batch = table.select(list(self.where_columns)).append_column("_k", pa.array(np.arange(table.num_rows)))
        con = duckdb.connect(":memory:")
        try:
            quiet(con)
            con.execute("SET TimeZone = 'UTC'")  # times in filters read as the session's (UTC), on every executor
            con.register("batch", batch)
            rows = con.execute(f"SELECT _k FROM batch WHERE {self.where_sql}", dict(self.where_params)).fetchall()
        finally:
            con.close()
        out = np.zeros(table.num_rows, dtype=bool)
        if rows:
            out[np.fromiter((r[0] for r in rows), dtype=np.int64, count=len(rows))] = True
        return out

    def groups(self, ids: pa.Array) -> pa.Array | None:
        """'control' or 'treatment' per id under the holdout (None without one)."""
        if not self.holdout:
            return None
        return pa.array(holdout_groups(ids.to_pylist(), self.holdout, self.campaign), type=pa.string())


def _consent_column(types: dict, consent_col: str | None) -> str | None:
    lookup = {c.lower(): c for c in types}
    if consent_col is not None:
        if consent_col.lower() not in lookup:
            raise InvalidInputError(f"consent column {consent_col!r} is not in the customers dataset; its columns: "
                                    f"{', '.join(types)}")
        return lookup[consent_col.lower()]
    return next((lookup[n] for n in OPTED_OUT_NAMES if n in lookup), None)


def region_wkbs(exclude_regions, engine=None) -> tuple[bytes, ...]:
    """Exclusion regions as WKB: ``"LAYER:NAME"`` (or ``(layer, name)``) of ``engine``'s layers, or polygons.

    Examples
    --------
    >>> import shapely
    >>> [shapely.from_wkb(w).area for w in region_wkbs([shapely.box(0, 0, 1, 2)])]
    [2.0]
    >>> region_wkbs(["nyc_nta:Midtown-Times Square"], eng)  # doctest: +SKIP
    """
    out = []
    for item in exclude_regions or []:
        if hasattr(item, "geom_type"):
            import shapely

            out.append(bytes(shapely.to_wkb(item)))
        elif isinstance(item, (bytes, bytearray, memoryview)):
            out.append(bytes(item))
        else:
            layer, name = _parse_region_ref(item)
            if engine is None:
                raise InvalidInputError(f"exclusion region {item!r} names a region layer; give the database it "
                                        "lives in (engine=, CLI --db) or pass polygons")
            out.extend(bytes(b) for b in _chosen_regions(engine, layer, [name])["geometry"])
    return tuple(out)


def narrowing(df, *, where=None, exclude_within=None, exclude_regions=None, holdout=None, campaign=None,
              consent_col: str | None = None, engine=None) -> Narrowing:
    """Check every option on the driver, as the embedded engine checks it, and pack it for the tasks.

    Examples
    --------
    >>> nar = narrowing(read(spark, "customers/"), where=["tier=gold"], holdout=0.1,  # doctest: +SKIP
    ...                 campaign="spring")
    >>> nar.columns  # doctest: +SKIP
    ['tier']
    """
    types = column_types(df.schema)
    sql, params = compile_filters(where, types) if where else ("TRUE", {})
    lookup = {c.lower(): c for c in types}
    used = tuple(dict.fromkeys(lookup[c.column.lower()] for c in parse_filters(where))) if where else ()
    zones = tuple(_parse_zone(z) for z in (exclude_within or []))
    if holdout:
        holdout_groups([], holdout, campaign)  # the embedded checks: fraction in [0, 1), a campaign to salt it
    return Narrowing(where_sql=sql, where_params=tuple(params.items()), where_columns=used, zones=zones,
                     exclude_wkb=region_wkbs(exclude_regions, engine), consent_col=_consent_column(types, consent_col),
                     holdout=float(holdout) if holdout else None, campaign=campaign if holdout else None)


def suppression_frame_of(source) -> pd.DataFrame:
    """A suppression list as ``kind, value`` rows: from an Engine's database, or a frame already in that shape.

    Examples
    --------
    >>> import geotarget
    >>> eng = geotarget.open(":memory:")
    >>> _ = eng.ingest_suppressions(["c9"])
    >>> suppression_frame_of(eng).to_dict("records")
    [{'kind': 'id', 'value': 'c9'}]
    """
    if source is None:
        return pd.DataFrame({"kind": pd.Series(dtype=object), "value": pd.Series(dtype=object)})
    if isinstance(source, pd.DataFrame):
        missing = {"kind", "value"} - set(source.columns)
        if missing:
            raise InvalidInputError(f"a suppression frame needs columns kind and value; missing {sorted(missing)}")
        bad = set(source["kind"]) - set(SUPPRESSION_COLUMNS)
        if bad:
            raise InvalidInputError(f"suppression kind must be one of {', '.join(SUPPRESSION_COLUMNS)}, got "
                                    f"{min(bad)!r}")
        return source[["kind", "value"]].astype(str).reset_index(drop=True)
    return source.store.con.sql("SELECT kind, value FROM suppressions ORDER BY kind, value").to_df()


def suppress(df, suppressions):
    """``df`` without the rows whose id, or stored email or phone hash, is on the suppression list.

    Each kind is a broadcast left anti-join on its column; a hash kind whose
    column the dataset lacks cannot match anyone (as an empty stored hash
    matches nobody in the embedded engine).

    Examples
    --------
    >>> df = suppress(read(spark, "customers/"), eng)  # doctest: +SKIP
    >>> suppress(df, pd.DataFrame({"kind": ["id"], "value": ["c9"]})).count()  # doctest: +SKIP
    """
    from pyspark.sql import functions as F

    frame = suppression_frame_of(suppressions)
    lookup = {c.lower(): c for c in df.columns}
    for kind, column in SUPPRESSION_COLUMNS.items():
        values = sorted(set(frame.loc[frame["kind"] == kind, "value"]))
        if not values or column not in lookup:
            continue
        listed = df.sparkSession.createDataFrame(pd.DataFrame({"_suppressed": values}))
        df = df.join(F.broadcast(listed), F.col(lookup[column]) == F.col("_suppressed"), "left_anti")
    return df
