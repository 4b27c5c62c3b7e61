"""Device pings on disk: Hive-partitioned Parquet beside the database.

Layout of a ping dataset (the folder ``<database>.pings/``; a private
temporary folder for ``":memory:"`` databases)::

    day=2026-03-01/h3_parent=595182446049607679/part-<uuid>.parquet

- ``day`` is the UTC calendar day of the ping;
- ``h3_parent`` is the resolution-:data:`PARTITION_RES` parent of the ping's
  resolution-15 cell, as a signed 64-bit integer (every H3 index is below
  2**63, so the value is the H3 integer itself);
- each file holds ``device_id`` (string), ``ts`` (timestamp, microseconds,
  UTC), ``lat``, ``lng`` (float64), ``accuracy_m`` (float64, may be null) and
  ``cell`` (the resolution-15 cell, int64), sorted by ``cell`` so a range of
  cells reads few row groups.

Pings are only ever appended: an ingest writes new files into a staging
folder and renames them into place once its rejects are committed. The same
folder is what :mod:`geotarget.spark` reads, so the embedded engine and a
Spark cluster share one layout; a query reads only the partitions its
covering touches (:func:`partition_paths`).

Erasure rewrites the files that hold an erased device without its rows
(:func:`erase_devices`).
"""

from __future__ import annotations

import os
import shutil
import uuid
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from ..geo.cells import cells_to_parents

__all__ = [
    "PARTITION_COLUMN",
    "PARTITION_RES",
    "PING_SCHEMA",
    "erase_devices",
    "partition_paths",
    "partitions_of_cells",
    "write_partitioned",
]

#: Resolution of the H3 parent the pings are partitioned by (cells of about 1,770 km2).
PARTITION_RES = 4

#: Name of the H3-parent partition column.
PARTITION_COLUMN = "h3_parent"

#: Columns of every ping file (the partition columns live in the folder names).
PING_SCHEMA = pa.schema([
    ("device_id", pa.string()),
    ("ts", pa.timestamp("us", tz="UTC")),
    ("lat", pa.float64()),
    ("lng", pa.float64()),
    ("accuracy_m", pa.float64()),
    ("cell", pa.int64()),
])

_ROW_GROUP = 131_072


def partitions_of_cells(cells, res: int = PARTITION_RES) -> np.ndarray:
    """The partition values (H3 parents at ``res``) of resolution-15 cells, as int64.

    Examples
    --------
    >>> import h3
    >>> from geotarget.geo.cells import latlng_to_cells
    >>> p = partitions_of_cells(latlng_to_cells([40.758], [-73.9855]))
    >>> h3.int_to_str(int(p[0])) == h3.cell_to_parent(h3.latlng_to_cell(40.758, -73.9855, 15), 4)
    True
    """
    return cells_to_parents(np.asarray(cells, dtype="uint64"), res).astype("int64")


def write_partitioned(table: pa.Table, root: str | os.PathLike, *, day_column: str | None = "ts") -> list[Path]:
    """Write rows into Hive partitions ``[day=D/]h3_parent=P/part-<uuid>.parquet`` under ``root``.

    ``table`` needs an int64 ``cell`` column (resolution 15); each file is
    sorted by it. With ``day_column`` (a UTC timestamp column) rows are also
    split by day; without it (customers) only by the H3 parent.

    Returns the files written.

    Examples
    --------
    >>> import tempfile, pyarrow as pa
    >>> from geotarget.geo.cells import latlng_to_cells
    >>> t = pa.table({"customer_id": ["a"], "lat": [40.758], "lng": [-73.9855],
    ...               "cell": latlng_to_cells([40.758], [-73.9855]).astype("int64")})
    >>> [p.parent.name for p in write_partitioned(t, tempfile.mkdtemp(), day_column=None)]
    ['h3_parent=595215130728333311']
    """
    root = Path(root)
    if table.num_rows == 0:
        return []
    parents = partitions_of_cells(table.column("cell").to_numpy().astype("uint64"))
    keys = [parents]
    if day_column is not None:
        days = pc.cast(pc.cast(table.column(day_column), pa.timestamp("us", tz="UTC")), pa.date32())
        keys.insert(0, days.to_numpy(zero_copy_only=False).astype("datetime64[D]").astype("int64"))
    order = np.lexsort([table.column("cell").to_numpy()] + keys[::-1])
    table = table.take(pa.array(order))
    keys = [k[order] for k in keys]
    stacked = np.stack(keys, axis=1)
    change = np.flatnonzero(np.any(stacked[1:] != stacked[:-1], axis=1)) + 1
    bounds = np.concatenate(([0], change, [table.num_rows]))
    written = []
    for lo, hi in zip(bounds[:-1], bounds[1:]):
        folder = root
        if day_column is not None:
            folder = folder / f"day={np.datetime64(int(keys[0][lo]), 'D')}"
        folder = folder / f"{PARTITION_COLUMN}={int(keys[-1][lo])}"
        folder.mkdir(parents=True, exist_ok=True)
        path = folder / f"part-{uuid.uuid4().hex}.parquet"
        pq.write_table(table.slice(lo, hi - lo), path, row_group_size=_ROW_GROUP, compression="zstd")
        written.append(path)
    return written


def _partition_dirs(root: Path):
    """(day or None, parent, folder) of every partition folder under ``root``."""
    if not root.is_dir():
        return
    for first in sorted(root.iterdir()):
        if first.name.startswith("day="):
            for second in sorted(first.iterdir()):
                if second.name.startswith(f"{PARTITION_COLUMN}="):
                    yield first.name[4:], int(second.name.split("=", 1)[1]), second
        elif first.name.startswith(f"{PARTITION_COLUMN}="):
            yield None, int(first.name.split("=", 1)[1]), first


def partition_paths(root: str | os.PathLike, *, parent_ranges=None, days: tuple[str, str] | None = None) -> list[str]:
    """Parquet files of the partitions a query touches.

    Parameters
    ----------
    parent_ranges : array of shape (n, 2), optional
        Inclusive ranges of H3 parents (at :data:`PARTITION_RES`, int64) to
        keep; all partitions when None.
    days : (first, last), optional
        Inclusive ISO days to keep; all when None.

    Examples
    --------
    >>> import tempfile
    >>> partition_paths(tempfile.mkdtemp(), days=("2026-03-01", "2026-03-07"))
    []
    """
    ranges = None if parent_ranges is None else np.asarray(parent_ranges, dtype="int64").reshape(-1, 2)
    out = []
    for day, parent, folder in _partition_dirs(Path(root)):
        if ranges is not None and not ((ranges[:, 0] <= parent) & (parent <= ranges[:, 1])).any():
            continue
        if days is not None and day is not None and not (days[0] <= day <= days[1]):
            continue
        out.extend(str(p) for p in sorted(folder.glob("*.parquet")))
    return out


def erase_devices(root: str | os.PathLike, device_ids) -> int:
    """Rewrite every file holding one of ``device_ids`` without those rows; returns rows removed.

    Each file is replaced atomically (written beside it, then renamed over it);
    a file left empty is deleted.
    """
    wanted = pa.array(sorted({str(d) for d in device_ids}), type=pa.string())
    removed = 0
    if len(wanted) == 0:
        return 0
    for path in partition_paths(root):
        table = pq.read_table(path)
        hit = pc.is_in(table.column("device_id"), value_set=wanted)
        n = pc.sum(hit).as_py() or 0
        if not n:
            continue
        removed += n
        kept = table.filter(pc.invert(hit))
        if kept.num_rows == 0:
            os.remove(path)
            continue
        tmp = f"{path}.{uuid.uuid4().hex}.tmp"
        pq.write_table(kept, tmp, row_group_size=_ROW_GROUP, compression="zstd")
        os.replace(tmp, path)
    return removed


def publish(staging: Path, root: Path) -> None:
    """Move the files written under ``staging`` into the same partitions under ``root``."""
    for day, parent, folder in list(_partition_dirs(staging)):
        target = root / folder.relative_to(staging)
        target.mkdir(parents=True, exist_ok=True)
        for path in folder.glob("*.parquet"):
            os.replace(path, target / path.name)
    shutil.rmtree(staging, ignore_errors=True)
