"""Partitioned Parquet for Spark: customers exported from a database, pings as ingested.

Both are Hive-partitioned by ``h3_parent`` (the resolution-4 parent of each
row's resolution-15 ``cell``), pings also by ``day``
(:mod:`geotarget.pings.dataset`). :func:`prune` turns the covering of a
query into filters on those partition columns, which Spark applies before
listing files (``PartitionFilters`` in the plan; ``numFiles`` in the scan
metrics, read back with :func:`scan_metrics`), plus ranges on ``cell`` that
Parquet row-group statistics answer.
"""

from __future__ import annotations

import os
import shutil
import uuid
from pathlib import Path

import numpy as np
import pyarrow as pa

from ..errors import InvalidInputError, SourceError
from ..pings.dataset import PARTITION_COLUMN, write_partitioned
from ..pings.places import Places
from ..store.identity import email_column, phone_column

__all__ = ["export_customers", "prune", "read", "scan_metrics"]

#: Above this many fine-cell ranges the ``cell`` filter is left to the exact kernel.
CELL_FILTER_MAX = 256


#: Customer columns that stay in the database: its own bookkeeping (consent is applied at export).
_NOT_EXPORTED = ("lat", "lng", "cell", "opted_out", "updated_at", "source")


def export_customers(engine, root: str | os.PathLike, *, overwrite: bool = False) -> int:
    """Write the eligible customers of a database (not opted out, not suppressed) as partitioned Parquet.

    Columns ``customer_id``, ``lat``, ``lng``, ``cell`` (int64), then the
    customers' own columns (for ``where=`` filters) and the stored email and
    phone hashes (for suppressions added later; pending hashes are filled
    first, see :mod:`geotarget.store.hashes`), but never a raw email or
    phone; partitioned by ``h3_parent``. Returns the number of customers written.

    Examples
    --------
    >>> import geotarget, pandas as pd, tempfile
    >>> eng = geotarget.open(":memory:")
    >>> _ = eng.ingest_customers(pd.DataFrame({"customer_id": ["a"], "lat": [40.758], "lng": [-73.9855]}))
    >>> export_customers(eng, tempfile.mkdtemp())
    1
    """
    root = Path(root)
    if root.exists() and any(root.iterdir()):
        if not overwrite:
            raise SourceError(f"{str(root)!r} already holds files; pass overwrite=True (CLI --overwrite) or "
                              "choose an empty folder")
        shutil.rmtree(root)
    root.mkdir(parents=True, exist_ok=True)
    engine.fill_hashes()  # the export carries the hashes later suppressions match on: none may be pending
    index = engine._index_cache.get()
    table = pa.table({"customer_id": index.ids, "lat": index.lat, "lng": index.lng,
                      "cell": index.cells.astype("int64")})
    table = _with_attributes(engine, table)
    write_partitioned(table, root, day_column=None)
    return table.num_rows


def _with_attributes(engine, table: pa.Table) -> pa.Table:
    """The customers' own columns joined to the index's rows, in the same order."""
    columns = list(engine.store.columns("customers"))
    raw = {email_column(columns), phone_column(columns)} - {None}
    wanted = [c for c in columns if c not in _NOT_EXPORTED and c != "customer_id" and c not in raw]
    if not wanted or table.num_rows == 0:
        return table
    con = engine.store.con
    name = f"_export_{uuid.uuid4().hex[:10]}"
    con.register(name, pa.table({"customer_id": table.column("customer_id"),
                                 "_k": pa.array(np.arange(table.num_rows))}))
    try:
        select = ", ".join('c."' + c.replace('"', '""') + '"' for c in wanted)
        attrs = con.sql(f"SELECT {select} FROM {name} k JOIN customers c USING (customer_id) ORDER BY k._k"
                        ).to_arrow_table()
    finally:
        con.unregister(name)
    for column in attrs.column_names:
        table = table.append_column(column, attrs.column(column))
    return table


def read(spark, path: str | os.PathLike):
    """A partitioned dataset as a Spark DataFrame (partition columns inferred from the folder names).

    Examples
    --------
    >>> df = read(spark, "customers/")  # doctest: +SKIP
    >>> df.columns  # doctest: +SKIP
    ['customer_id', 'lat', 'lng', 'cell', 'h3_parent']
    """
    path = Path(path)
    if not path.is_dir():
        raise SourceError(f"{str(path)!r} is not a partitioned Parquet folder; write one with "
                          "`geotarget spark export-customers` or ingest pings first")
    if not any(path.rglob("*.parquet")):
        raise SourceError(f"{str(path)!r} holds no Parquet files yet")
    return spark.read.parquet(str(path))


def _ranges_condition(column, ranges):
    from pyspark.sql import functions as F

    cond = None
    for lo, hi in ranges.tolist():
        part = (F.col(column) == F.lit(int(lo))) if lo == hi else F.col(column).between(int(lo), int(hi))
        cond = part if cond is None else (cond | part)
    return cond if cond is not None else F.lit(False)


def prune(df, places: Places, *, days: tuple[str, str] | None = None):
    """Keep the partitions (and cell ranges) the places' covering touches, and the days of a window.

    Examples
    --------
    >>> from geotarget.pings import Places
    >>> places = Places("radius", ("S1",), lat=(40.758,), lng=(-73.9855,), radius_m=3218.688)
    >>> places.parent_ranges().tolist()  # the partitions a 2-mile query reads
    [[595215130728333311, 595215130728333311], [595215156498137087, 595215156498137087]]
    >>> prune(read(spark, "customers/"), places).explain()  # doctest: +SKIP
    """
    from pyspark.sql import functions as F

    if not places.ids:
        raise InvalidInputError("no places to query; give at least one store, point or region")
    df = df.where(_ranges_condition(PARTITION_COLUMN, places.parent_ranges()))
    fine = places.fine_ranges()
    if len(fine) <= CELL_FILTER_MAX:
        df = df.where(_ranges_condition("cell", fine.astype("int64")))
    if days is not None and "day" in df.columns:
        df = df.where(F.col("day").between(F.to_date(F.lit(days[0])), F.to_date(F.lit(days[1]))))
    return df


def _children(node):
    seq = node.children()
    return [seq.apply(i) for i in range(seq.size())]


def _scans(node):
    name = node.getClass().getSimpleName()
    if name == "AdaptiveSparkPlanExec":
        return _scans(node.executedPlan())
    if name.endswith("QueryStageExec"):
        return _scans(node.plan())
    if name == "FileSourceScanExec":
        return [node]
    out = []
    for child in _children(node):
        out.extend(_scans(child))
    return out


def scan_metrics(df) -> dict:
    """Files and partitions the Parquet scans of an executed DataFrame read.

    Call it after an action (``collect``, ``toPandas``, ``write``) on the same
    DataFrame object; returns ``{"files": n, "partitions": n, "rows": n}``
    summed over its scans.

    Examples
    --------
    >>> df = radius_audience(spark, "customers/", places)  # doctest: +SKIP
    >>> _ = df.toArrow(); scan_metrics(df)  # doctest: +SKIP
    {'files': 2, 'partitions': 2, 'rows': 10122}
    """
    plan = df._jdf.queryExecution().executedPlan()
    total = {"files": 0, "partitions": 0, "rows": 0}
    for scan in _scans(plan):
        metrics = scan.metrics()
        for key, name in (("files", "numFiles"), ("partitions", "numPartitions"), ("rows", "numOutputRows")):
            if metrics.contains(name):
                total[key] += int(metrics.apply(name).value())
    return total
