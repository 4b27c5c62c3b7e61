"""``python -m benchmarks.pings_spark [--pings N]``: device pings on the embedded engine and on Spark local[2].

Generates a day of N synthetic pings (default 100 million; e.g. ``--pings 2e6``
for a quick run) around four metros, ingests them with ``geotarget ingest
pings`` (Parquet partitioned by day and H3 parent), then runs the same two
jobs on both engines, each in its own process so their memory is measured
apart:

- *visitors*: devices seen within 2 miles of Times Square (a visitation
  audience, which reads only the partitions the covering touches);
- *footfall*: unique devices per res-9 cell per day, k >= 10 (reads all).

Peak memory is the largest resident set of the process tree sampled every
0.2 s (for Spark: the Python driver, the JVM and the Python workers). The
per-partition costs (the kernels' rows per second on one core, bytes per
ping on disk, keys a partition sends to the shuffle) are measured on the
largest partition and drive the projection to 10 billion pings a day in
``docs/spark.md``. Writes ``benchmarks/RESULTS_pings_spark.md``.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
import threading
import time
from datetime import UTC, datetime
from pathlib import Path

import numpy as np
import pandas as pd

HERE = Path(__file__).resolve().parent
METROS = [(40.7580, -73.9855, 0.45), (34.0522, -118.2437, 0.25), (41.8781, -87.6298, 0.18), (29.7604, -95.3698, 0.12)]
TIMES_SQUARE = (40.7580, -73.9855)
CHUNK = 2_000_000


class PeakMemory:
    """Largest RSS of this process and all its children, sampled in a thread."""

    def __init__(self, interval: float = 0.2):
        import psutil

        self._proc = psutil.Process()
        self.peak = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, args=(interval,), daemon=True)

    def _sample(self) -> int:
        total = 0
        for p in [self._proc, *self._proc.children(recursive=True)]:
            try:
                total += p.memory_info().rss
            except Exception:
                pass
        return total

    def _run(self, interval):
        while not self._stop.is_set():
            self.peak = max(self.peak, self._sample())
            self._stop.wait(interval)

    def __enter__(self):
        self._thread.start()
        return self

    def __exit__(self, *exc):
        self._stop.set()
        self._thread.join()
        self.peak = max(self.peak, self._sample())


def generate(n: int, out: Path, seed: int = 20260302) -> list[Path]:
    """N pings of one UTC day as Parquet chunks: 1 device per 40 pings, metro clusters, 3-60 m accuracy."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    out.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(seed)
    devices = max(1, n // 40)
    weights = np.array([m[2] for m in METROS])
    t0 = int(pd.Timestamp("2026-03-02T00:00:00Z").value // 1000)
    files = []
    for start in range(0, n, CHUNK):
        m = min(CHUNK, n - start)
        metro = rng.choice(len(METROS), m, p=weights / weights.sum())
        lat = np.array([METROS[i][0] for i in metro]) + rng.normal(0, 0.12, m)
        lng = np.array([METROS[i][1] for i in metro]) + rng.normal(0, 0.15, m)
        table = pa.table({
            "device_id": pa.array(np.char.add("dev", rng.integers(0, devices, m).astype(str))),
            "timestamp": pa.array(t0 + rng.integers(0, 86_400_000_000, m), type=pa.int64()).cast(
                pa.timestamp("us", tz="UTC")),
            "lat": lat, "lng": lng, "accuracy_m": rng.uniform(3, 60, m)})
        path = out / f"pings-{start // CHUNK:05d}.parquet"
        pq.write_table(table, path)
        files.append(path)
    return files


def _embedded(work: Path, sources: list[Path]) -> dict:
    import geotarget

    out = {}
    with PeakMemory() as mem:
        eng = geotarget.open(work / "bench.duckdb")
        t = time.perf_counter()
        loaded = 0
        for src in sources:
            loaded += eng.ingest_pings(src).loaded
        out["ingest_s"] = time.perf_counter() - t
        out["loaded"] = loaded
        eng.ingest_stores(pd.DataFrame({"store_id": ["TSQ"], "lat": [TIMES_SQUARE[0]], "lng": [TIMES_SQUARE[1]]}))
        t = time.perf_counter()
        vis = eng.visitors(stores=["TSQ"], radius="2mi")
        out["visitors_s"] = time.perf_counter() - t
        out["visitors"] = len(vis)
        out["visitors_files"] = [eng.pings.last_scan.files_read, eng.pings.last_scan.files_total]
        out["matched_pings"] = int(eng.visits(stores=["TSQ"], radius="2mi")["pings"].sum())
        t = time.perf_counter()
        foot = eng.footfall(9, k_min=10)
        out["footfall_s"] = time.perf_counter() - t
        out["footfall_rows"] = len(foot)
        eng.close()
    out["peak_rss_mb"] = mem.peak / 2**20
    return out


def _partition_costs(work: Path) -> dict:
    """Costs on the largest partition file: rows, bytes, kernel rows/s on one core, shuffle keys.

    Runs in a child of its own with one H3 thread (``RAYON_NUM_THREADS=1`` and
    no slicing across the thread pool), so the rates are per core.
    """
    import pyarrow.parquet as pq

    import geotarget
    import geotarget.geo.cells as cells
    from geotarget.pings.footfall import footfall_keys
    from geotarget.pings.visits import VisitRule, match_pings

    cells._PARALLEL_MIN = 1 << 62
    eng = geotarget.open(work / "bench.duckdb", read_only=True)

    files = eng.pings.files()
    sizes = [os.path.getsize(f) for f in files]
    biggest = files[int(np.argmax(sizes))]
    table = pq.read_table(biggest, columns=["device_id", "ts", "lat", "lng", "cell"])
    rows = table.num_rows
    t = time.perf_counter()
    keys = footfall_keys(table, 9)
    foot_s = time.perf_counter() - t
    places = eng.pings.places(stores=["TSQ"], radius="2mi")
    t = time.perf_counter()
    match_pings(table, places, VisitRule())
    match_s = time.perf_counter() - t
    total_rows = sum(pq.read_metadata(f).num_rows for f in files)
    eng.close()
    return {"files": len(files), "rows": rows, "bytes": max(sizes), "bytes_per_ping": sum(sizes) / max(total_rows, 1),
            "footfall_rows_per_s": rows / foot_s, "match_rows_per_s": rows / match_s,
            "keys_per_row": keys.num_rows / max(rows, 1), "key_bytes": keys.nbytes / max(keys.num_rows, 1)}


def _spark(work: Path) -> dict:
    import geotarget
    import geotarget.spark as gs
    from geotarget.pings import VisitRule

    out = {}
    with PeakMemory() as mem:
        eng = geotarget.open(work / "bench.duckdb", read_only=True)
        places = eng.pings.places(stores=["TSQ"], radius="2mi")
        root = str(eng.pings.root)
        eng.close()
        t = time.perf_counter()
        spark = gs.session("local[2]", tmp_dir=str(work / "spark"), conf={"spark.driver.memory": "3g",
                                                                       "spark.sql.shuffle.partitions": "4"})
        out["start_s"] = time.perf_counter() - t
        try:
            t = time.perf_counter()
            gs.to_pandas(gs.visitors(spark, root, places, VisitRule()))
            out["visitors_first_s"] = time.perf_counter() - t  # starts the Python workers
            t = time.perf_counter()
            df = gs.visitors(spark, root, places, VisitRule())
            vis = gs.to_pandas(df)
            out["visitors_s"] = time.perf_counter() - t
            out["visitors"] = len(vis)
            out["visitors_scan"] = gs.scan_metrics(df)
            t = time.perf_counter()
            foot = gs.footfall(spark, root, 9, k_min=10)
            out["footfall_s"] = time.perf_counter() - t
            out["footfall_rows"] = len(foot)
        finally:
            gs.stop(spark)
    out["peak_rss_mb"] = mem.peak / 2**20
    return out


def _child(kind: str, work: Path) -> dict:
    cmd = [sys.executable, "-m", "benchmarks.pings_spark", "--child", kind, "--work", str(work)]
    env = {**os.environ, "RAYON_NUM_THREADS": "1"} if kind == "costs" else None
    done = subprocess.run(cmd, capture_output=True, text=True, cwd=HERE.parent, env=env)
    if done.returncode != 0:
        raise RuntimeError(f"{kind} run failed:\n{done.stderr[-3000:]}")
    return json.loads(done.stdout.strip().splitlines()[-1])


def project(per: dict, spark_rate: float, matched_share: float, *, pings: float = 1e10, nodes: int = 50,
            cores: int = 16) -> dict:
    """A day of ``pings`` on ``nodes`` x ``cores`` from the measured per-partition costs."""
    data_bytes = pings * per["bytes_per_ping"]
    target = 128 * 2**20
    return {
        "pings": pings, "nodes": nodes, "cores": cores,
        "input_gb": data_bytes / 1e9,
        "files": int(np.ceil(data_bytes / target)),
        "footfall_shuffle_gb": pings * per["keys_per_row"] * per["key_bytes"] / 1e9,
        "visitors_shuffle_mb_per_store": pings * matched_share * 40 / 1e6,
        "footfall_core_h": pings / per["footfall_rows_per_s"] / 3600,
        "footfall_node_min": pings / per["footfall_rows_per_s"] / (nodes * cores) / 60,
        "spark_node_min": pings / spark_rate / (nodes * cores) / 60,
    }


def render(n: int, gen_s: float, emb: dict, spk: dict) -> str:
    per = emb["per_partition"]
    spark_rate = emb["loaded"] / spk["footfall_s"] / 2  # rows per second per core, end to end on local[2]
    proj = project(per, spark_rate, emb["matched_pings"] / max(emb["loaded"], 1))
    now = datetime.now(UTC).strftime("%Y-%m-%d %H:%M UTC")
    lines = [
        "# Device pings: embedded engine and Spark local[2]", "",
        f"{n:,} pings of one day ({emb['loaded']:,} loaded), four metros, one device per 40 pings; "
        f"generated in {gen_s:.0f} s. Run {now} on {os.cpu_count()} cores (`python -m benchmarks.pings_spark "
        f"--pings {n:g}`).", "",
        "| job | embedded | Spark local[2] |", "|:--|--:|--:|",
        f"| ingest (validate, index, write partitions) | {emb['ingest_s']:.1f} s | (reads the same files) |",
        f"| session start (JVM) | - | {spk['start_s']:.1f} s |",
        f"| visitors within 2 mi of Times Square, first run (Spark: starts its Python workers) | - "
        f"| {spk['visitors_first_s']:.2f} s |",
        f"| visitors within 2 mi of Times Square | {emb['visitors_s']:.2f} s ({emb['visitors']:,} devices) "
        f"| {spk['visitors_s']:.2f} s ({spk['visitors']:,} devices) |",
        f"| footfall res 9, k >= 10 | {emb['footfall_s']:.1f} s ({emb['footfall_rows']:,} cell-days) "
        f"| {spk['footfall_s']:.1f} s ({spk['footfall_rows']:,} cell-days) |",
        f"| peak memory (process tree; Spark: driver + JVM + workers) | {emb['peak_rss_mb']:,.0f} MB "
        f"| {spk['peak_rss_mb']:,.0f} MB |", "",
        f"Partition pruning: the visitors query read {emb['visitors_files'][0]} of {emb['visitors_files'][1]} "
        f"ping files embedded, and {spk['visitors_scan']['files']} files on Spark "
        f"({spk['visitors_scan']['rows']:,} rows after row-group filtering).", "",
        "## Per-partition costs (largest partition, one core)", "",
        "| measure | value |", "|:--|--:|",
        f"| partitions (day x H3 res-4 parent) | {per['files']:,} |",
        f"| rows in the largest | {per['rows']:,} ({per['bytes'] / 2**20:.1f} MB) |",
        f"| bytes per ping on disk (zstd Parquet) | {per['bytes_per_ping']:.1f} |",
        f"| footfall kernel (H3 res 9 + distinct keys) | {per['footfall_rows_per_s'] / 1e6:.2f} M rows/s |",
        f"| visit matching kernel (2 mi covering + exact test) | {per['match_rows_per_s'] / 1e6:.2f} M rows/s |",
        f"| footfall keys sent to the shuffle per ping | {per['keys_per_row']:.3f} ({per['key_bytes']:.0f} B each) |",
        f"| Spark footfall end to end, per core | {spark_rate / 1e3:,.0f} k rows/s |",
        f"| pings within 2 mi of Times Square | {emb['matched_pings']:,} ({emb['matched_pings'] / emb['loaded']:.2%}) |",
        "",
        "## Projection: 10 billion pings in a day", "",
        f"On {proj['nodes']} nodes x {proj['cores']} cores, from the figures above (see `docs/spark.md`):", "",
        "| quantity | value |", "|:--|--:|",
        f"| input | {proj['input_gb']:,.0f} GB of Parquet |",
        f"| input partitions (128 MB splits) | {proj['files']:,} |",
        f"| footfall shuffle | {proj['footfall_shuffle_gb']:,.0f} GB |",
        f"| visitors shuffle (one store, 2 mi, at this data's share) | {proj['visitors_shuffle_mb_per_store']:,.0f} MB |",
        f"| footfall CPU (kernel) | {proj['footfall_core_h']:,.1f} core-hours |",
        f"| footfall time per node (kernel only) | {proj['footfall_node_min']:,.1f} min |",
        f"| footfall time per node (Spark local rate) | {proj['spark_node_min']:,.1f} min |", "",
    ]
    return "\n".join(lines)


def main(argv=None) -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--pings", type=float, default=1e8, help="number of pings (default 1e8)")
    p.add_argument("--out", type=Path, default=HERE / "RESULTS_pings_spark.md")
    p.add_argument("--work", type=Path, default=None, help="working folder (default: a temporary one)")
    p.add_argument("--child", choices=["embedded", "spark", "costs"], help=argparse.SUPPRESS)
    args = p.parse_args(argv)
    if args.child:
        if args.child == "embedded":
            result = _embedded(args.work, sorted((args.work / "source").glob("*.parquet")))
        elif args.child == "costs":
            result = _partition_costs(args.work)
        else:
            result = _spark(args.work)
        print(json.dumps(result))
        return
    n = int(args.pings)
    work = args.work or Path(tempfile.mkdtemp(prefix="geotarget-pings-bench-"))
    try:
        t = time.perf_counter()
        generate(n, work / "source")
        gen_s = time.perf_counter() - t
        emb = _child("embedded", work)
        emb["per_partition"] = _child("costs", work)
        spk = _child("spark", work)
        text = render(n, gen_s, emb, spk)
        args.out.write_text(text + "\n", encoding="utf-8")
        print(text)
    finally:
        if args.work is None:
            shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
