"""Ingest one Parquet file into a fresh geotarget database, in a process of its own.

Run as ``python -m benchmarks.ingest_child CUSTOMERS.parquet DB.duckdb``. The
last line printed is JSON: the ingest report's figures plus this process's
peak resident set size (``VmHWM``), which is the ingest's peak memory.
"""

from __future__ import annotations

import json
import resource
import sys
import time
from pathlib import Path


def _peak_kib() -> int:
    """This process's peak resident set size, in KiB.

    ``VmHWM`` from /proc is reset by ``execve``; ``ru_maxrss`` is not on
    Linux: it can report the parent's size at the fork (the benchmark runner
    holds the whole dataset), so it is only the fallback.
    """
    try:
        with open("/proc/self/status", encoding="ascii") as status:
            for line in status:
                if line.startswith("VmHWM:"):
                    return int(line.split()[1])
    except OSError:
        pass
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss


def main(argv: list[str]) -> int:
    parquet, db = argv
    for leftover in (Path(db), Path(db + ".wal")):
        leftover.unlink(missing_ok=True)
    t0 = time.perf_counter()
    import geotarget

    imported = time.perf_counter() - t0
    eng = geotarget.open(db)
    rep = eng.ingest_customers(parquet, id_col="customer_id", lat_col="lat", lng_col="lng")
    t_close = time.perf_counter()
    eng.close()  # DuckDB checkpoints here: work the commit deferred, timed apart
    closed = time.perf_counter() - t_close
    wall = time.perf_counter() - t0
    peak_kib = _peak_kib()
    usage = resource.getrusage(resource.RUSAGE_SELF)
    print(json.dumps({
        "read": rep.read,
        "loaded": rep.loaded,
        "rejected": rep.rejected,
        "seconds": rep.seconds,
        "rows_per_second": rep.rows_per_second,
        "close_seconds": closed,
        "process_seconds": wall,
        "import_seconds": imported,
        "peak_rss_bytes": peak_kib * 1024,
        # CPU of the whole process (user + system, every thread): steadier than wall time on a busy machine
        "cpu_seconds": usage.ru_utime + usage.ru_stime,
    }))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
