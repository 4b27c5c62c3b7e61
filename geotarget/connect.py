"""Opening a database: an :class:`~geotarget.Engine`, or a :class:`~geotarget.Replica` for workers."""

from __future__ import annotations

import os
from pathlib import Path

from geotarget.engine import Engine
from geotarget.replica import Replica
from geotarget.store.database import Store, default_db_path

__all__ = ["open"]


def open(path: str | os.PathLike | None = None, *, read_only: bool = False,  # noqa: A001
         snapshot: bool = False, shared: bool = False, refresh_interval: float = 1.0,
         lock_timeout: float = 10.0):
    """Open (or create) a geotarget database.

    Parameters
    ----------
    path : str or path, optional
        The DuckDB file. Defaults to ``$GEOTARGET_DB`` or ``geotarget.duckdb``
        in the working directory. ``":memory:"`` keeps everything in memory.
    read_only : bool, default False
        Open without write access. Many processes may do so at once, but no
        process can write while any of them keeps the file open.
    snapshot : bool, default False
        For worker processes beside a writer: serve from an in-memory copy of
        the file, holding no lock, and load a new copy when the file changes
        (checked every ``refresh_interval`` seconds). Returns a
        :class:`geotarget.replica.Replica`; see :mod:`geotarget.replica` for
        what a worker sees and when.
    shared : bool, default False
        For a long-running process (``geotarget serve``) beside other
        processes on the same file: hold the file only while writing. Reads
        are served from an in-memory copy refreshed when the file changes (as
        with ``snapshot``); writes open the file, write, close it and refresh
        the copy before returning. Other processes can then read and write
        the file at any other moment. Creates the database when missing;
        ``read_only=True`` refuses writes. Returns a
        :class:`geotarget.replica.Replica`.
    lock_timeout : float, default 10.0
        Seconds to wait, with backoff, while another process holds the file.

    Returns
    -------
    Engine, or Replica with ``snapshot=True``

    Examples
    --------
    >>> import geotarget
    >>> with geotarget.open(":memory:") as eng:
    ...     eng.info()["counts"]["customers"]
    0
    """
    if shared and path != ":memory:":
        target = path if path is not None else default_db_path()
        if not read_only and not Path(target).exists():
            Engine(Store(target, lock_timeout=lock_timeout)).close()  # create it, then let go
        return Replica(target, refresh_interval=refresh_interval, lock_timeout=lock_timeout, writes=not read_only)
    if snapshot:
        return Replica(path if path is not None else default_db_path(), refresh_interval=refresh_interval,
                       lock_timeout=lock_timeout)
    return Engine(Store(path, read_only=read_only, lock_timeout=0.0 if path == ":memory:" else lock_timeout))
