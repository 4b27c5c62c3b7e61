"""A snapshot of the eligible customers, sorted by H3 cell, kept in memory and beside the database.

Audiences are answered from this snapshot: a covering of coarse cells becomes
a few integer ranges of fine cells, each found with two binary searches. The
snapshot is immutable and carries the ``data_version`` it was read at, so a
query never mixes two states of the database; the engine swaps in a new one
when a write has landed.

Persistence: the snapshot of a database file is also written beside it, as
one uncompressed Arrow IPC file (``<db>.index.arrow``) that a new process
memory-maps instead of rebuilding, so its first query costs milliseconds
rather than a scan and sort of every customer. The file is tagged with the
database's ``instance_id`` and the ``data_version`` it was read at (in the
same read transaction as the rows), in a small tag file beside it; a process
uses it only when both match the database it has open, and otherwise
rebuilds the snapshot and replaces the file (written to a temporary name,
then renamed). A committed write of customers or suppressions deletes the
file (:meth:`Store.transaction`), so erased or suppressed customers never
linger on disk; a write that leaves them alone (a campaign) moves the tag on
to the new data version, so the file stays in use. The table may carry further per-customer
columns (``CustomerIndex.columns``); they are written and mapped alike.

Upserts keep the snapshot current instead of deleting it. An ingest of
customers names every customer it writes (:meth:`Store.touch_customers`);
before its COMMIT, :func:`updated_index` takes those customers out of the
snapshot of the previous version and merges back the ones still eligible,
and the result is written beside the database with a nonce that the same
transaction stores in ``meta``. The file counts only while ``meta`` holds
its nonce, so a writer killed between writing it and COMMIT leaves a file
no database state vouches for. Customers are sorted by cell, then id, so an
updated snapshot equals a rebuilt one row for row.
"""

from __future__ import annotations

import contextlib
import json
import os
import threading
import uuid
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pyarrow as pa

from geotarget._arrow import arrow_view, numpy_view, take_strings
from geotarget.audience.privacy import eligible_customers_sql
from geotarget.store.database import Store

__all__ = ["build_index", "CustomerIndex", "IndexCache", "load_index", "save_index", "updated_index", "INDEX_FILE"]

#: The derived file holding the persisted snapshot (see :meth:`Store.derived_path`).
INDEX_FILE = "index.arrow"
_FORMAT = b"geotarget-customer-index-1"
_CORE = ("customer_id", "cell", "lat", "lng")


@dataclass(frozen=True, eq=False)
class CustomerIndex:
    """Eligible customers (not opted out, not suppressed) sorted by fine cell.

    ``columns`` holds further per-customer arrays in the same order (empty
    unless a caller adds some); they are persisted with the snapshot.
    """

    version: int
    res: int
    cells: np.ndarray
    lat: np.ndarray
    lng: np.ndarray
    ids: pa.Array
    columns: dict = field(default_factory=dict)

    def __len__(self) -> int:
        return int(self.cells.size)

    def positions_in_ranges(self, ranges: np.ndarray) -> np.ndarray:
        """Positions of customers whose cell falls in any inclusive [lo, hi] range."""
        if ranges.size == 0 or self.cells.size == 0:
            return np.zeros(0, dtype=np.int64)
        starts = np.searchsorted(self.cells, ranges[:, 0], side="left")
        ends = np.searchsorted(self.cells, ranges[:, 1], side="right")
        keep = ends > starts
        starts, ends = starts[keep], ends[keep]
        if starts.size == 0:
            return np.zeros(0, dtype=np.int64)
        if starts.size == 1:
            return np.arange(starts[0], ends[0], dtype=np.int64)
        lengths = ends - starts
        offsets = np.repeat(starts - np.concatenate(([0], np.cumsum(lengths)[:-1])), lengths)
        return np.arange(lengths.sum(), dtype=np.int64) + offsets

    def count_in_ranges(self, ranges: np.ndarray) -> int:
        """How many customers :meth:`positions_in_ranges` would return, without listing them."""
        if ranges.size == 0 or self.cells.size == 0:
            return 0
        starts = np.searchsorted(self.cells, ranges[:, 0], side="left")
        ends = np.searchsorted(self.cells, ranges[:, 1], side="right")
        return int(np.maximum(ends - starts, 0).sum())

    def take_ids(self, positions: np.ndarray) -> pa.Array:
        """Customer ids at ``positions`` (Arrow strings)."""
        return take_strings(self.ids, positions)

    def positions_of(self, ids) -> np.ndarray:
        """Positions of the given ids (unknown or ineligible ids are skipped)."""
        import pyarrow.compute as pc

        wanted = pa.array([str(i) for i in ids], type=pa.string())
        mask = pc.is_in(self.ids, value_set=wanted).to_numpy(zero_copy_only=False)
        return np.flatnonzero(mask)


def _single_array(column) -> pa.Array:
    if column.num_chunks == 1:
        return column.chunk(0)
    return pa.concat_arrays(column.chunks) if column.num_chunks else pa.array([], column.type)


def _strings(array: pa.Array) -> pa.Array:
    return array if array.type == pa.string() else array.cast(pa.string())


def _from_table(table: pa.Table, version: int, res: int) -> CustomerIndex:
    def numeric(name, dtype):
        return numpy_view(table.column(name), dtype)  # a view of the mapped file, and no pandas import

    extra = {name: _single_array(table.column(name)).to_numpy(zero_copy_only=False)
             for name in table.column_names if name not in _CORE}
    return CustomerIndex(
        version=version, res=res, cells=numeric("cell", "uint64"), lat=numeric("lat", "float64"),
        lng=numeric("lng", "float64"), ids=_strings(_single_array(table.column("customer_id"))),
        columns=extra,
    )


def _eligible_rows(con, also: str = "") -> pa.Table:
    """The eligible customers (and ``also``, an extra SQL condition) read on ``con``, sorted by cell then id.

    The id breaks ties between customers in one fine cell, so every build of
    a snapshot, whole or updated, lists them in the same order.
    """
    columns = [r[0] for r in con.execute(
        "SELECT column_name FROM information_schema.columns WHERE table_name = 'customers'").fetchall()]
    where = eligible_customers_sql(columns) + (f" AND {also}" if also else "")
    return con.sql(f"SELECT customer_id, lat, lng, cell FROM customers WHERE {where} ORDER BY cell, customer_id"
                   ).to_arrow_table().combine_chunks()


def build_index(store: Store) -> CustomerIndex:
    """Read the eligible customers in one transaction and sort them by cell."""
    con = store.con
    con.execute("BEGIN TRANSACTION")
    try:
        version = int(con.execute("SELECT value FROM meta WHERE key = 'data_version'").fetchall()[0][0])
        table = _eligible_rows(con)
    finally:
        con.execute("COMMIT")
    return _from_table(table, version, store.res)


def updated_index(con, base: CustomerIndex, touched: str | None, version: int) -> CustomerIndex:
    """``base`` with the customers listed in table ``touched`` read again on ``con`` (inside the writing transaction).

    ``touched`` None means no customer was written, ``"customers"`` that all were.

    The touched customers leave the snapshot, and those of them still
    eligible come back from the table at their (maybe new) cells: the
    result equals :func:`build_index` after the write. It costs a few
    passes over the snapshot's arrays instead of a scan and sort of every
    customer. When most customers were touched the snapshot is read whole.
    """
    if touched is None:
        return CustomerIndex(version, base.res, base.cells, base.lat, base.lng, base.ids)
    if touched == "customers":  # every customer was written
        return _from_table(_eligible_rows(con), version, base.res)
    import pyarrow.compute as pc

    ids = _single_array(con.sql(f"SELECT DISTINCT customer_id FROM {touched}").to_arrow_table().column(0))
    if 2 * len(ids) >= len(base):
        return _from_table(_eligible_rows(con), version, base.res)
    added = _eligible_rows(con, f"customer_id IN (SELECT customer_id FROM {touched})")
    removed = numpy_view(pc.indices_nonzero(pc.is_in(base.ids, value_set=ids.cast(base.ids.type))), "int64")
    add_cells = numpy_view(added.column("cell"), "uint64")
    add_ids = _strings(_single_array(added.column("customer_id")))
    pieces = _merge_plan(base, removed, add_cells, add_ids)

    def merged(old, new):
        parts = [old[a:b] if src == 0 else new[a:b] for src, a, b in pieces]
        return np.concatenate(parts) if parts else old[:0].copy()

    new_ids = add_ids.cast(base.ids.type)
    ids_parts = [(base.ids if src == 0 else new_ids).slice(a, b - a) for src, a, b in pieces]
    return CustomerIndex(version=version, res=base.res, cells=merged(base.cells, add_cells),
                         lat=merged(base.lat, numpy_view(added.column("lat"), "float64")),
                         lng=merged(base.lng, numpy_view(added.column("lng"), "float64")),
                         ids=pa.concat_arrays(ids_parts) if ids_parts else base.ids.slice(0, 0))


def _merge_plan(base: CustomerIndex, removed: np.ndarray, add_cells: np.ndarray, add_ids: pa.Array) -> list:
    """The updated snapshot as runs ``(0, a, b)`` of ``base`` and ``(1, a, b)`` of the added rows, in order.

    ``removed`` are sorted positions of ``base`` to leave out; the added rows
    are sorted by (cell, id). Each goes before the first kept customer of
    ``base`` that sorts after it, so the runs are few (about two per
    customer written) and copying them is a handful of memory copies.
    """
    n = len(base)
    at = np.searchsorted(base.cells, add_cells, side="left")
    after = np.searchsorted(base.cells, add_cells, side="right")
    ties = np.flatnonzero(after > at)
    # a customer written in place meets only its own old row, which leaves: no tie to settle
    alone = (after[ties] - at[ties] == 1) & np.isin(at[ties], removed)
    ties = ties[~alone]
    if ties.size:  # customers of base in the same fine cell (rare): order by id, skipping the removed ones
        gone = set(removed.tolist())
        for i in ties.tolist():
            lo, hi = int(at[i]), int(after[i])
            mine = add_ids[i].as_py()
            same = take_strings(base.ids, np.arange(lo, hi)).to_pylist()
            at[i] = next((lo + j for j, other in enumerate(same) if lo + j not in gone and other > mine), hi)
    cuts, drops = at.tolist(), removed.tolist()
    pieces, cur, i, r = [], 0, 0, 0
    while i < len(cuts) or r < len(drops):
        if r >= len(drops) or (i < len(cuts) and cuts[i] <= drops[r]):
            point, first = cuts[i], i
            while i < len(cuts) and cuts[i] == point:
                i += 1
            if point > cur:
                pieces.append((0, cur, point))
                cur = point
            pieces.append((1, first, i))
        else:
            if drops[r] > cur:
                pieces.append((0, cur, drops[r]))
            cur = max(cur, drops[r] + 1)
            r += 1
    if cur < n:
        pieces.append((0, cur, n))
    return pieces


def _tag_path(path: Path) -> Path:
    return path.with_name(path.name + ".tag")


def save_index(store: Store, index: CustomerIndex, *, writing=None) -> Path | None:
    """Write ``index`` beside the database file (atomically); None when the store has no file or it fails.

    Two files: the Arrow table, and its tag (JSON: the database's
    ``instance_id``, the ``data_version`` the rows were read at, and a nonce
    that pairs the tag with that very table). A folder that cannot be written
    to only costs the next process a rebuild.

    ``writing`` is the connection of a write transaction not yet committed,
    whose ``data_version`` ``index`` holds. The nonce is then also written to
    the ``meta`` table in that transaction, and the tag says so: the files
    count only if that transaction commits (a process killed before COMMIT
    leaves files that no database state vouches for).
    """
    path = store.derived_path(INDEX_FILE, for_writing=True)
    instance = store.instance_id
    if path is None or instance is None:
        return None
    nonce = uuid.uuid4().hex
    arrays = [index.ids, arrow_view(np.asarray(index.cells, np.uint64)), arrow_view(np.asarray(index.lat, np.float64)),
              arrow_view(np.asarray(index.lng, np.float64)), *(pa.array(v) for v in index.columns.values())]
    names = [*_CORE, *index.columns]
    table = pa.Table.from_arrays(arrays, names=names).replace_schema_metadata(
        {b"format": _FORMAT, b"nonce": nonce.encode()})
    tag = {"format": _FORMAT.decode(), "instance_id": instance, "data_version": int(index.version),
           "res": int(index.res), "rows": len(index), "nonce": nonce, "nonce_in_meta": writing is not None}
    suffix = f".{os.getpid()}.{threading.get_ident()}.tmp"
    tmp, tag_tmp = path.with_name(path.name + suffix), path.with_name(path.name + ".tag" + suffix)
    try:
        with pa.OSFile(str(tmp), "wb") as sink, pa.ipc.new_file(sink, table.schema) as writer:
            writer.write_table(table, max_chunksize=max(1, table.num_rows))
        tag_tmp.write_text(json.dumps(tag), encoding="utf-8")
        os.replace(tmp, path)
        os.replace(tag_tmp, _tag_path(path))
    except OSError:
        for leftover in (tmp, tag_tmp):
            with contextlib.suppress(OSError):
                leftover.unlink()
        return None
    if writing is not None:
        writing.execute("INSERT INTO meta VALUES ('index_nonce', $n) ON CONFLICT (key) DO UPDATE SET value = $n",
                        {"n": nonce})
    return path


def load_index(store: Store, version: int) -> CustomerIndex | None:
    """The persisted snapshot when it was written from this database at ``version``; otherwise None.

    The file is memory-mapped: nothing is copied until a query reads it.
    """
    path = store.derived_path(INDEX_FILE)
    instance = store.instance_id
    if path is None or instance is None:
        return None
    try:
        tag = json.loads(_tag_path(path).read_text(encoding="utf-8"))
        if (tag.get("format"), tag.get("instance_id"), tag.get("data_version"), tag.get("res")) != (
                _FORMAT.decode(), instance, int(version), int(store.res)):
            return None
        if tag.get("nonce_in_meta") and store.meta("index_nonce") != tag.get("nonce"):
            return None  # written by a write transaction that never committed
        reader = pa.ipc.open_file(pa.memory_map(str(path), "r"))
        meta = reader.schema.metadata or {}
        if meta.get(b"nonce") != str(tag.get("nonce")).encode() or reader.num_record_batches > 1:
            return None
        table = reader.read_all()
    except (OSError, ValueError, pa.ArrowInvalid):
        return None
    if table.column_names[:len(_CORE)] != list(_CORE) or table.num_rows != tag.get("rows"):
        return None
    return _from_table(table, int(version), store.res)


class IndexCache:
    """Holds the newest snapshot; loads the persisted one or rebuilds it when the data version moves."""

    def __init__(self, store: Store):
        self._store = store
        self._lock = threading.Lock()
        self._index: CustomerIndex | None = None
        store.on_customers_written = self._customers_written

    def _customers_written(self, con, touched: str | None, version: int):
        """Bring the snapshot to ``version`` inside the writing transaction (see :meth:`Store.transaction`).

        Starts from the snapshot of the version before the write (held in
        memory, or the persisted one); without one there is nothing to
        update, and the first query builds it as after any write.
        """
        base = self._index
        if base is None or base.version != version - 1:
            base = load_index(self._store, version - 1)
        if base is None or base.columns:
            return None
        index = updated_index(con, base, touched, version)
        path = save_index(self._store, index, writing=con)

        def install():
            with self._lock:
                if self._index is None or self._index.version < index.version:
                    self._index = index

        return ([path, _tag_path(path)] if path is not None else []), install

    def clear(self) -> None:
        """Drop the snapshot held in memory (erasure calls it; the next query rebuilds)."""
        with self._lock:
            self._index = None

    def get(self) -> CustomerIndex:
        current = self._store.data_version
        index = self._index
        if index is not None and index.version == current:
            return index
        with self._lock:
            index = self._index
            current = self._store.data_version
            if index is None or index.version != current:
                index = load_index(self._store, current)
                if index is None:
                    index = build_index(self._store)
                    save_index(self._store, index)
                self._index = index
        return index
