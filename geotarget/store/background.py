"""Writers that yield to readers: a long write runs on a thread of lower CPU priority.

An engine shared by a server's request threads and an ingest of a million
rows must keep answering lookups while the ingest runs. DuckDB already lets
readers go on during a write transaction; what remains is the CPU (and the
GIL): on a small machine an ingest left at normal priority takes the cores
from the request threads. :func:`as_background_writer` runs the write on a
thread of its own, niced by :data:`WRITER_NICENESS` on Linux (where each
thread has its own priority), and waits for it. When nothing else runs, the
write is as fast as before: niceness only decides who goes first. Elsewhere,
or when the priority cannot be set, the write runs as it would have.
"""

from __future__ import annotations

import os
import sys
import threading

__all__ = ["WRITER_NICENESS", "as_background_writer"]

#: How much lower than the caller's the writer thread's priority is (Linux nice steps).
WRITER_NICENESS = 10


def _lower_this_thread() -> None:
    if not sys.platform.startswith("linux") or not hasattr(os, "setpriority"):
        return
    try:
        tid = threading.get_native_id()
        os.setpriority(os.PRIO_PROCESS, tid, min(19, os.getpriority(os.PRIO_PROCESS, tid) + WRITER_NICENESS))
    except OSError:
        pass


def as_background_writer(fn, /, *args, on_interrupt=None, lock=None, **kwargs):
    """Call ``fn(*args, **kwargs)`` on a lower-priority thread and return its result (or raise its error).

    On Ctrl-C in the calling thread, ``on_interrupt()`` (e.g. DuckDB's
    ``connection.interrupt``) is called and the writer is given a few
    seconds to roll back before the KeyboardInterrupt goes on. When the
    calling thread already holds ``lock`` (the store's write lock, inside a
    transaction of its own), ``fn`` runs inline: another thread would wait
    for that lock forever.

    Examples
    --------
    >>> as_background_writer(sum, [1, 2, 3])
    6
    """
    if lock is not None and getattr(lock, "_is_owned", lambda: False)():
        return fn(*args, **kwargs)
    outcome: dict = {}

    def work() -> None:
        _lower_this_thread()
        try:
            outcome["value"] = fn(*args, **kwargs)
        except BaseException as exc:  # handed to the caller's thread
            outcome["error"] = exc

    worker = threading.Thread(target=work, name="geotarget-writer", daemon=True)
    worker.start()
    try:
        while worker.is_alive():
            worker.join(0.1)  # in short steps, so that Ctrl-C reaches the caller at once
    except KeyboardInterrupt:
        if on_interrupt is not None:
            try:
                on_interrupt()
            except Exception:  # noqa: BLE001 - the interrupt goes on regardless
                pass
        worker.join(10.0)  # let the transaction roll back
        raise
    if "error" in outcome:
        raise outcome["error"]
    return outcome["value"]
