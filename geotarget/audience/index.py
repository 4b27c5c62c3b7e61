"""An in-memory snapshot of the eligible customers, sorted by H3 cell.

Audiences are answered from this snapshot: a covering of coarse cells becomes
a few integer ranges of fine cells, each found with two binary searches. The
snapshot is immutable and carries the ``data_version`` it was read at, so a
query never mixes two states of the database; the engine swaps in a new one
when a write has landed.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass

import numpy as np
import pyarrow as pa

from geotarget.audience.privacy import eligible_customers_sql
from geotarget.store.database import Store

__all__ = ["build_index", "CustomerIndex", "IndexCache"]


@dataclass(frozen=True, eq=False)
class CustomerIndex:
    """Eligible customers (not opted out, not suppressed) sorted by fine cell."""

    version: int
    res: int
    cells: np.ndarray
    lat: np.ndarray
    lng: np.ndarray
    ids: pa.Array

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

    def take_ids(self, positions: np.ndarray) -> pa.Array:
        """Customer ids at ``positions`` (Arrow strings)."""
        return self.ids.take(pa.array(positions, type=pa.int64()))

    def positions_of(self, ids) -> np.ndarray:
        """Positions of the given ids (unknown or ineligible ids are skipped)."""
        import pyarrow.compute as pc

        wanted = pa.array([str(i) for i in ids], type=pa.string())
        mask = pc.is_in(self.ids, value_set=wanted).to_numpy(zero_copy_only=False)
        return np.flatnonzero(mask)


def build_index(store: Store) -> CustomerIndex:
    """Read the eligible customers in one transaction and sort them by cell."""
    con = store.con
    con.execute("BEGIN TRANSACTION")
    try:
        version = int(con.execute("SELECT value FROM meta WHERE key = 'data_version'").fetchall()[0][0])
        columns = [r[0] for r in con.execute(
            "SELECT column_name FROM information_schema.columns WHERE table_name = 'customers'").fetchall()]
        table = con.sql(
            f"SELECT customer_id, lat, lng, cell FROM customers WHERE {eligible_customers_sql(columns)} ORDER BY cell"
        ).to_arrow_table()
    finally:
        con.execute("COMMIT")
    table = table.combine_chunks()

    def column(name, dtype):
        arr = table.column(name)
        arr = arr.chunk(0) if arr.num_chunks == 1 else pa.concat_arrays(arr.chunks) if arr.num_chunks else pa.array([], arr.type)
        return np.asarray(arr.to_numpy(zero_copy_only=False), dtype=dtype)

    ids = table.column("customer_id")
    ids = ids.chunk(0) if ids.num_chunks == 1 else (pa.concat_arrays(ids.chunks) if ids.num_chunks else pa.array([], pa.string()))
    return CustomerIndex(
        version=version,
        res=store.res,
        cells=column("cell", "uint64"),
        lat=column("lat", "float64"),
        lng=column("lng", "float64"),
        ids=ids.cast(pa.string()),
    )


class IndexCache:
    """Holds the newest snapshot; rebuilds it when the data version moves."""

    def __init__(self, store: Store):
        self._store = store
        self._lock = threading.Lock()
        self._index: CustomerIndex | None = None

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
            if index is None or index.version != self._store.data_version:
                index = build_index(self._store)
                self._index = index
        return index
