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

Memory stays bounded at any N: pings are generated and ingested in chunks
of 2 million, footfall keys are counted by DuckDB (which spills) and by
Spark's shuffle (which spills), and Spark's shuffle partitions grow with N.
Disk: about :data:`DISK_BYTES_PER_PING` bytes per ping (source chunks, the
partitioned dataset, DuckDB's and Spark's spill files), checked before the
run starts. Time on this 2-core machine, measured at 10 million pings and
scaled linearly: about 13 minutes at 1e7, 1.5 to 2 hours at 1e8 (Spark's
footfall is most of it). Progress goes to stderr.
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
#: Disk a run needs per ping: source chunks (~30 B), the dataset (~45 B), DuckDB and Spark spill (~35 B each), margin.
DISK_BYTES_PER_PING = 200
#: Pings per Spark shuffle partition in footfall (about 90 MB of keys each).
PINGS_PER_SHUFFLE_PARTITION = 2_500_000
_T0 = time.perf_counter()


def _log(message: str) -> None:
    print(f"[pings_spark {time.perf_counter() - _T0:7.0f} s] {message}", file=sys.stderr, flush=True)


def check_disk(n: int, work: Path) -> None:
    """Refuse to start when the working folder's disk cannot hold the run."""
    need = n * DISK_BYTES_PER_PING
    free = shutil.disk_usage(work).free
    if free < need:
        raise SystemExit(f"pings_spark: {n:,} pings need about {need / 1e9:.0f} GB free under {work}, "
                         f"found {free / 1e9:.0f} GB; pass --work on a bigger disk or fewer --pings")


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
    matched = match_pings(table, places, VisitRule())
    match_s = time.perf_counter() - t
    total_rows = sum(pq.read_metadata(f).num_rows for f in files)
    eng.close()
    return {"files": len(files), "rows": rows, "bytes": max(sizes), "bytes_per_ping": sum(sizes) / max(total_rows, 1),
            "footfall_rows_per_s": rows / foot_s, "match_rows_per_s": rows / match_s,
            "keys_per_row": keys.num_rows / max(rows, 1), "key_bytes": keys.nbytes / max(keys.num_rows, 1),
            "match_bytes": matched.nbytes / matched.num_rows if matched.num_rows else 40.0}


def _spark(work: Path, n: int) -> dict:
    import geotarget
    import geotarget.spark as gs
    from geotarget.pings import VisitRule

    out = {}
    shuffle = max(4, int(np.ceil(n / PINGS_PER_SHUFFLE_PARTITION)))
    out["shuffle_partitions"] = shuffle
    with PeakMemory() as mem:
        eng = geotarget.open(work / "bench.duckdb", read_only=True)
        places = eng.pings.places(stores=["TSQ"], radius="2mi")
        nearby = eng.pings.places(stores=["TSQ"], radius="100m")
        root = str(eng.pings.root)
        eng.close()
        t = time.perf_counter()
        spark = gs.session("local[2]", tmp_dir=str(work / "spark"), conf={"spark.driver.memory": "3g",
                                                                       "spark.sql.shuffle.partitions": str(shuffle)})
        out["start_s"] = time.perf_counter() - t
        try:
            t = time.perf_counter()
            gs.to_pandas(gs.visitors(spark, root, nearby, VisitRule()))
            out["visitors_first_s"] = time.perf_counter() - t  # starts the Python workers (a 100 m query)
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


def _child(kind: str, work: Path, n: int) -> dict:
    _log(f"{kind} ...")
    cmd = [sys.executable, "-m", "benchmarks.pings_spark", "--child", kind, "--work", str(work), "--pings", str(n)]
    env = {**os.environ, "RAYON_NUM_THREADS": "1"} if kind == "costs" else None
    done = subprocess.run(cmd, capture_output=True, text=True, cwd=HERE.parent, env=env)
    if done.returncode != 0:
        raise RuntimeError(f"{kind} run failed:\n{done.stderr[-3000:]}")
    result = json.loads(done.stdout.strip().splitlines()[-1])
    _log(f"{kind} done: {json.dumps(result)}")
    return result


def project(per: dict, spark_rate: float, matched_share: float, *, pings: float = 1e10, nodes: int = 50,
            cores: int = 16) -> list[tuple[str, float, str, str]]:
    """A day of ``pings`` on ``nodes`` x ``cores`` from the measured per-partition costs.

    Returns rows (quantity, value, unit, how it is computed), the plan that
    ``docs/spark.md`` quotes.
    """
    split = 128 * 2**20
    input_b = pings * per["bytes_per_ping"]
    shuffle_b = pings * per["keys_per_row"] * per["key_bytes"]
    core_s = pings / per["footfall_rows_per_s"]
    b, k, kb = per["bytes_per_ping"], per["keys_per_row"], per["key_bytes"]
    rate, spark_k = per["footfall_rows_per_s"] / 1e6, spark_rate / 1e3
    return [
        ("input", input_b / 1e9, "GB of Parquet", f"{pings:.0e} pings x {b:.1f} B"),
        ("input partitions (tasks)", np.ceil(input_b / split), "", "input / 128 MB splits"),
        ("footfall shuffle", shuffle_b / 1e9, "GB", f"pings x {k:.3f} keys x {kb:.0f} B"),
        ("footfall shuffle per node", shuffle_b / nodes / 1e9, "GB", f"shuffle / {nodes} nodes"),
        ("footfall shuffle partitions", np.ceil(shuffle_b / split), "", "shuffle / 128 MB"),
        ("visitors shuffle, one store (2 mi)", pings * matched_share * per["match_bytes"] / 1e6, "MB",
         f"pings x {matched_share:.2%} near the store x {per['match_bytes']:.0f} B per match"),
        ("footfall CPU (kernel)", core_s / 3600, "core-hours", f"pings / {rate:.2f} M pings/s per core"),
        ("footfall time per node, kernel", core_s / (nodes * cores) / 60, "min", f"CPU / {nodes * cores} cores"),
        ("footfall time per node, at the local Spark rate", pings / spark_rate / (nodes * cores) / 60, "min",
         f"pings / {spark_k:,.0f} k pings/s per core (end to end on local[2]) / {nodes * cores} cores"),
    ]


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
        f"| first query (Spark: starts its Python workers; visitors within 100 m) | - "
        f"| {spk['visitors_first_s']:.2f} s |",
        f"| visitors within 2 mi of Times Square | {emb['visitors_s']:.2f} s ({emb['visitors']:,} devices) "
        f"| {spk['visitors_s']:.2f} s ({spk['visitors']:,} devices) |",
        f"| footfall res 9, k >= 10 | {emb['footfall_s']:.1f} s ({emb['footfall_rows']:,} cell-days) "
        f"| {spk['footfall_s']:.1f} s ({spk['footfall_rows']:,} cell-days) |",
        f"| peak memory (process tree; Spark: driver + JVM + workers) | {emb['peak_rss_mb']:,.0f} MB "
        f"| {spk['peak_rss_mb']:,.0f} MB |", "",
        f"Spark ran with `spark.driver.memory=3g` and {spk['shuffle_partitions']} shuffle partitions. "
        "Peak memory is the sum of the resident sets of every process in the tree, sampled every 0.2 s "
        "(pages shared by forked Python workers count once per worker).", "",
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
        "On 50 nodes x 16 cores, computed by `project()` from the figures above (the plan in `docs/spark.md`):", "",
        "| quantity | value | how |", "|:--|--:|:--|",
        *[f"| {name} | {f'{value:,.1f}' if value < 100 else f'{value:,.0f}'} {unit}".rstrip() + f" | {how} |"
          for name, value, unit, how in proj], "",
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
            result = _spark(args.work, int(args.pings))
        print(json.dumps(result))
        return
    n = int(args.pings)
    work = args.work or Path(tempfile.mkdtemp(prefix="geotarget-pings-bench-"))
    work.mkdir(parents=True, exist_ok=True)
    check_disk(n, work)
    try:
        _log(f"generating {n:,} pings under {work} ...")
        t = time.perf_counter()
        generate(n, work / "source")
        gen_s = time.perf_counter() - t
        emb = _child("embedded", work, n)
        emb["per_partition"] = _child("costs", work, n)
        spk = _child("spark", work, n)
        text = render(n, gen_s, emb, spk)
        args.out.write_text(text + "\n", encoding="utf-8")
        print(text)
    finally:
        if args.work is None:
            shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
