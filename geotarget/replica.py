"""Read-only engines for many worker processes beside one writer.

DuckDB locks a database file for one read-write process *or* many read-only
ones, never both at once. So that worker processes can serve while another
process writes, a worker opens the file with ``geotarget.open(path,
snapshot=True)``: it copies the database file aside (byte for byte, under
DuckDB's read lock, into a private temporary folder) and lets go of the file
at once, then serves every query from that copy. When the file changes (its
size or modification time, or at the latest every minute, its data version)
the worker loads a new copy in a background thread and swaps it in whole;
queries in flight finish on the copy they started on, so an answer never
mixes two states.

The writer is an ordinary ``geotarget.open(path)`` that holds the file only
while it writes: open, ingest or change campaigns, close. Opening waits, with
backoff, while a worker is copying (``lock_timeout``).

What this gives, and what it does not:

- workers see a write only after the writer has closed the file, and then
  within about ``refresh_interval`` seconds plus the time to copy;
- while a writer holds the file, workers keep serving their last copy, and a
  worker that starts then waits for the writer, up to ``lock_timeout``;
- every worker keeps a copy of the whole database file in a temporary folder
  (customers included, since audiences are built from them) while it serves
  from it, and copying takes time proportional to the file (disk speed); the
  customer index is read from the file's persisted index when it matches;
- a writer that keeps the file open forever starves the workers of updates.

A replica opened with ``writes=True`` (what ``geotarget serve`` uses) also
takes writes, by handover: each write method opens the file, writes, closes
it and loads the new copy before it returns, so the replica sees its own
writes at once and holds the file only for the length of a write. Other
processes (the ``geotarget`` command, a nightly ingest) may then read and
write the same file at any other moment.
"""

from __future__ import annotations

import atexit
import contextlib
import functools
import os
import shutil
import tempfile
import threading
import time
import weakref
from pathlib import Path
from typing import Self

import duckdb

from geotarget.errors import GeotargetError, SourceError

__all__ = ["Replica"]

_WRITES = frozenset({
    "ingest_customers", "ingest_stores", "ingest_regions", "ingest_suppressions", "create_campaign",
    "create_campaigns", "update_campaign", "pause_campaign", "resume_campaign", "delete_campaign",
    "ingest_pings", "opt_out_devices", "erase_devices", "mark_sensitive",
    "erase", "purge_rejects", "fill_hashes",
})
_FULL_CHECK_S = 60.0


def _signature(path: str):
    out = []
    for p in (path, path + ".wal"):
        try:
            st = os.stat(p)
        except FileNotFoundError:
            out.append(None)
        else:
            out.append((st.st_ino, st.st_size, st.st_mtime_ns))
    return tuple(out)


def _busy(exc: Exception) -> bool:
    text = str(exc).lower()
    return "lock" in text or "conflict" in text or "in use" in text


def _copy(path: str, known_version: int | None, timeout: float):
    """Copy the file aside and open the copy: (connection or None when unchanged, version, signature).

    The copy is taken while holding DuckDB's read lock on the file (an
    ``ATTACH ... READ_ONLY``), so no writer can change it meanwhile; the
    database file and its write-ahead log are copied byte for byte (at disk
    speed, into a private temporary folder), and the copy is opened as a
    database of its own. The folder goes when the copy is no longer used.
    """
    deadline = time.monotonic() + max(0.0, timeout)
    delay = 0.01
    while True:
        con = duckdb.connect(":memory:")
        try:
            con.execute("ATTACH $p AS src (READ_ONLY)", {"p": path})
        except duckdb.Error as exc:
            con.close()
            if not _busy(exc):
                raise SourceError(f"cannot open {path!r} as a DuckDB database: {str(exc).splitlines()[0]}") from None
            if time.monotonic() + delay > deadline:
                raise SourceError(
                    f"database {path!r} is held by a writer" + (f" after waiting {timeout:g} s" if timeout else "")
                    + "; the writer must close it (or raise lock_timeout)") from None
            time.sleep(delay)
            delay = min(delay * 2, 0.5)
            continue
        folder = None
        try:
            signature = _signature(path)  # taken under the read lock: no writer can be mid-write
            try:
                version = int(con.execute("SELECT value FROM src.meta WHERE key = 'data_version'").fetchall()[0][0])
            except (duckdb.Error, IndexError):
                raise SourceError(f"{path!r} is not a geotarget database; ingest data into it first") from None
            if version == known_version:
                return None, version, signature
            folder = tempfile.mkdtemp(prefix="geotarget-replica-")
            _FOLDERS.add(folder)
            target = os.path.join(folder, "copy.duckdb")
            shutil.copyfile(path, target)
            if os.path.exists(path + ".wal"):
                shutil.copyfile(path + ".wal", target + ".wal")
        except BaseException:
            if folder is not None:
                shutil.rmtree(folder, ignore_errors=True)
                _FOLDERS.discard(folder)
            raise
        finally:
            with contextlib.suppress(duckdb.Error):
                con.execute("DETACH src")
            con.close()
        try:
            copy = duckdb.connect(target)  # a private copy: it may replay the log into itself
        except BaseException:
            shutil.rmtree(folder, ignore_errors=True)
            _FOLDERS.discard(folder)
            raise
        return (copy, folder), version, signature


def _discard(con, folder: str) -> None:
    """Close a copy no longer in use and delete its folder."""
    try:
        con.close()
    finally:
        shutil.rmtree(folder, ignore_errors=True)
        _FOLDERS.discard(folder)


# folders of this process's copies, removed at exit even when a copy was still being made
_FOLDERS: set = set()
atexit.register(lambda: [shutil.rmtree(f, ignore_errors=True) for f in list(_FOLDERS)])


class Replica:
    """A read-only engine serving from a private copy of a database file, refreshed when the file changes.

    Create it with ``geotarget.open(path, snapshot=True)``. Every read method
    of :class:`geotarget.Engine` works (audiences, heatmaps, campaigns,
    :meth:`~geotarget.Engine.stores_near`, :meth:`~geotarget.Engine.promotions_at`);
    write methods raise :class:`GeotargetError`. Safe to share between threads.

    Parameters
    ----------
    path : str or path
        The database file; it must exist.
    refresh_interval : float, default 1.0
        Seconds between checks of the file (a ``stat``), made by queries.
    lock_timeout : float, default 30.0
        How long the first load, and with ``writes=True`` each write, waits
        while another process holds the file.
    writes : bool, default False
        Take writes by handover (see the module notes) instead of refusing them.

    Examples
    --------
    >>> import geotarget, pandas as pd, tempfile, os
    >>> path = os.path.join(tempfile.mkdtemp(), "r.duckdb")
    >>> with geotarget.open(path) as writer:
    ...     _ = writer.ingest_stores(pd.DataFrame({"store_id": ["S1"], "lat": [40.758], "lng": [-73.9855]}))
    >>> reader = geotarget.open(path, snapshot=True)  # holds no lock once loaded
    >>> with geotarget.open(path) as writer:
    ...     _ = writer.ingest_stores(pd.DataFrame({"store_id": ["S2"], "lat": [40.759], "lng": [-73.9855]}))
    >>> reader.refresh()
    True
    >>> [s["store_id"] for s in reader.stores_near(40.758, -73.9855, "1km")]
    ['S1', 'S2']
    >>> reader.close()
    """

    def __init__(self, path, *, refresh_interval: float = 1.0, lock_timeout: float = 30.0, writes: bool = False):
        self.path = str(path)
        self.writes = bool(writes)
        self._writing = threading.Lock()
        if not Path(self.path).exists():
            raise SourceError(f"database {self.path!r} does not exist; ingest data first or check --db")
        self.refresh_interval = float(refresh_interval)
        self.lock_timeout = float(lock_timeout)
        self._lock = threading.Lock()
        self._refreshing = threading.Lock()
        self._engine = None
        self._version: int | None = None
        self._signature = None
        self._checked = self._full_checked = time.monotonic()
        self.last_error: Exception | None = None
        self._load(self.lock_timeout)

    # -- loading -------------------------------------------------------------
    def _load(self, timeout: float) -> bool:
        from geotarget.engine import Engine
        from geotarget.store.database import Store

        copied, version, signature = _copy(self.path, self._version, timeout)
        if copied is not None:
            con, folder = copied
            engine = Engine(Store(self.path, read_only=True, connection=con))
            weakref.finalize(engine, _discard, con, folder)  # when the last query on this copy is done
            with self._lock:
                self._engine, self._version = engine, version  # swapped whole; the old copy lives on until unused
        self._signature = signature
        self._full_checked = time.monotonic()
        return copied is not None

    def refresh(self, *, timeout: float = 0.0) -> bool:
        """Load a new copy now if the database has changed; True when one was swapped in.

        Waits up to ``timeout`` seconds while a writer holds the file; with
        the default 0 it tries once and raises :class:`SourceError` if busy.
        """
        with self._refreshing:
            return self._load(timeout)

    def _maybe_refresh(self) -> None:
        now = time.monotonic()
        if now - self._checked < self.refresh_interval:
            return
        self._checked = now
        if _signature(self.path) == self._signature and now - self._full_checked < _FULL_CHECK_S:
            return
        if self._refreshing.acquire(blocking=False):
            threading.Thread(target=self._background_refresh, name="geotarget-replica-refresh", daemon=True).start()

    def _background_refresh(self) -> None:
        try:
            self._load(0.0)
            self.last_error = None
        except Exception as exc:  # noqa: BLE001 - a busy or vanished file: keep serving the last copy
            self.last_error = exc
        finally:
            self._refreshing.release()

    # -- serving --------------------------------------------------------------
    @property
    def data_version(self) -> int:
        """The data version of the copy being served."""
        return self._version

    def current(self):
        """The :class:`geotarget.Engine` over the copy being served now; it never changes under you.

        Use it to make several queries against one and the same state.
        """
        self._maybe_refresh()
        engine = self._engine
        if engine is None:
            raise GeotargetError(f"this snapshot of {self.path!r} is closed; open it again")
        return engine

    def current_if_fresh(self):
        """The engine over the copy being served if it was taken from the file as it is now, else None.

        "As it is now": the database file and its write-ahead log have the
        size, modification time and inode they had when the copy was taken
        (under DuckDB's read lock, so no write was under way). Every write
        changes one of them, and the next write cannot begin before that
        copy let go of the file, which is longer than the clock's granularity
        for file times. When the copy is behind, a new one is loaded in the
        background and None is returned: the caller answers from the file.
        """
        signature = self._signature
        engine = self._engine  # read after the signature: _load sets the engine first
        if engine is not None and _signature(self.path) == signature:
            return engine
        if engine is not None and self._refreshing.acquire(blocking=False):
            threading.Thread(target=self._background_refresh, name="geotarget-replica-refresh", daemon=True).start()
        return None

    def __getattr__(self, name: str):
        if name.startswith("__"):
            raise AttributeError(name)
        if name in _WRITES and self.writes:
            return functools.partial(self._write, name)
        if name in _WRITES:
            raise GeotargetError(
                f"{name}: this engine serves a read-only copy of {self.path!r}; write with "
                "geotarget.open(path) in the writer process, then close it so the copies refresh")
        return getattr(self.current(), name)

    def _write(self, name: str, *args, **kwargs):
        """Run one write method on the file itself (open, write, close), then load the new copy."""
        from geotarget.engine import Engine
        from geotarget.store.database import Store

        with self._writing:
            with Engine(Store(self.path, lock_timeout=self.lock_timeout)) as writer:
                result = getattr(writer, name)(*args, **kwargs)
            with self._refreshing:
                self._load(self.lock_timeout)
        return result

    def close(self) -> None:
        """Drop the copy (queries still running on it finish first)."""
        with self._lock:
            self._engine = None

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def __repr__(self) -> str:
        return f"<geotarget.Replica {self.path!r} data version {self._version}>"
