"""The first heatmap at a resolution in a new process: what a CLI call or a fresh worker pays.

Run as ``python -m benchmarks.heatmap_cold DB.duckdb RES``. The child opens
the database, makes one count heatmap at ``RES`` (a resolution no earlier
heatmap in that process used) with the call a user makes, and prints one
JSON line: the time to import and open, that first heatmap (wall clock,
and CPU time of all its threads: on a shared machine the second says what
the work costs), whether the
customer snapshot was mapped from its persisted file or had to be built
(the first query after a write builds and persists it), then the parts
timed again on their own (mapping the persisted snapshot; the standard cells
at ``RES`` for every customer), then a second heatmap at the same resolution
(warm).

``python -m benchmarks`` runs the child twice (:data:`COLD_RUNS`) on each freshly ingested
database: first at res 8 (the first query after the ingest: it builds the
snapshot), then at res 7 (the first heatmap at a new resolution, in a new
process, with the snapshot on disk), the case the 2-second target is about.
"""

from __future__ import annotations

import json
import subprocess
import sys
import time
from pathlib import Path

__all__ = ["COLD_RUNS", "measure_cold_heatmap"]

#: (resolution, workload) of the two children, in the order they run.
COLD_RUNS = ((8, "heatmap_first"), (7, "heatmap_cold"))


def measure_cold_heatmap(db: Path, res: int = 7, *, log=print) -> dict:
    """Run the child on ``db`` (not open in any other process) and return its figures."""
    root = Path(__file__).resolve().parents[1]
    done = subprocess.run([sys.executable, "-m", "benchmarks.heatmap_cold", str(db), str(res)],
                          capture_output=True, text=True, cwd=root)
    if done.returncode != 0:
        raise RuntimeError(f"cold heatmap failed:\n{done.stderr[-2000:]}")
    figures = json.loads(done.stdout.strip().splitlines()[-1])
    log(f"  first res-{res} heatmap in a new process: {figures['first_heatmap_s']:.2f} s "
        f"({figures['first_heatmap_cpu_s']:.2f} s of CPU) "
        f"(snapshot {figures['snapshot']}; alone: snapshot {figures['snapshot_s']:.2f} s, "
        f"res-{res} cells {figures['cells_s']:.2f} s); open {figures['open_s']:.2f} s; "
        f"warm {figures['warm_heatmap_s'] * 1000:.1f} ms")
    return figures


def main(argv: list[str]) -> int:
    db, res = argv[0], int(argv[1])
    t0 = time.perf_counter()
    import geotarget
    from geotarget.audience.cellcodes import cell_codes
    from geotarget.audience.index import IndexCache, load_index

    eng = geotarget.open(db)
    t1 = time.perf_counter()
    persisted = load_index(eng.store, eng.store.data_version) is not None  # only reads the tag and schema
    t2, cpu = time.perf_counter(), time.process_time()
    hm = eng.heatmap(res=res, metric="count", k_min=10)
    t3, cpu = time.perf_counter(), time.process_time() - cpu
    # the parts, timed again on a fresh snapshot object (the persisted file now exists; nothing kept)
    index = IndexCache(eng.store).get()
    t4 = time.perf_counter()
    cell_codes(index, res)
    t5 = time.perf_counter()
    eng.heatmap(res=res, metric="count", k_min=10)
    t6 = time.perf_counter()
    eng.close()
    print(json.dumps({"res": res, "customers": hm.total_customers, "cells": len(hm.frame), "open_s": t1 - t0,
                      "first_heatmap_s": t3 - t2, "first_heatmap_cpu_s": cpu,
                      "snapshot": "mapped" if persisted else "built", "snapshot_s": t4 - t3, "cells_s": t5 - t4, "warm_heatmap_s": t6 - t5}))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
