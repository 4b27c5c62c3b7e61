"""``python -m benchmarks.startup``: whole-process timings, a new process per run.

What a user waits for when a command starts cold (the files are in the page
cache, the interpreter and the index are not in memory):

- ``import geotarget`` and ``geotarget --help``;
- the first audience query in a new Python process (``geotarget.open`` then
  one 2-mile audience around S0001), which maps the persisted index;
- the one-shot CLI audience, ``geotarget audience --store S0001 --radius 2mi
  -o x.csv``, side by side with ``psql -c "COPY (... ST_DWithin ...) TO
  STDOUT"`` writing the same rows to a file (PostGIS as in
  :mod:`benchmarks.peer_postgis`: geography, GiST, clustered, prewarmed);
  then the same command while a ``geotarget serve`` runs on the database,
  which answers it (the command hands it over): like psql, a new client
  process talking to a server that is already up; and a one-shot heatmap
  (HTML map at res 8) handed to that server, against the same command alone.
- the floor under that one-shot command: the interpreter alone, then the
  imports it cannot do without (DuckDB, numpy, pyarrow, h3, and pyproj for
  the exact distances), then those plus the CLI framework (typer), each
  against the same psql command;
- a customer write: an upsert of 10,000 customers (half moved, half new) on
  a copy of the database, which brings the persisted index up to date in its
  transaction; then the first audience in the same process, and the first in
  a new process. The full rebuild that such a first query paid before is
  timed beside them.

Runs alternate A B A B after one warm-up each; the ratio is taken pair by
pair and its median quoted. Wall and CPU time (user + sys of the child, from
``getrusage``) are both recorded: on a shared 2-core machine wall time
includes waiting for a core. Writes ``benchmarks/RESULTS_startup.md``.
"""

from __future__ import annotations

import argparse
import compileall
import contextlib
import os
import platform
import resource
import signal
import socket
import statistics
import subprocess
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
PY = sys.executable


def _run_once(cmd: list[str], env: dict) -> tuple[float, float, int]:
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    t0 = time.perf_counter()
    done = subprocess.run(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, env=env, cwd=ROOT, check=False)
    wall = time.perf_counter() - t0
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    if done.returncode != 0:
        raise RuntimeError(f"{cmd[:4]} failed: {done.stderr.decode()[-400:]}")
    cpu = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
    return wall, cpu, done.returncode


def measure(a: list[str], b: list[str] | None, *, runs: int, env: dict) -> dict:
    """Median wall/CPU of A (and B), and the median of the pairwise A/B wall ratios."""
    _run_once(a, env)
    if b is not None:
        _run_once(b, env)
    rows = {"a_wall": [], "a_cpu": [], "b_wall": [], "b_cpu": [], "ratio": []}
    for _ in range(runs):
        wall, cpu, _ = _run_once(a, env)
        rows["a_wall"].append(wall)
        rows["a_cpu"].append(cpu)
        if b is not None:
            bw, bc, _ = _run_once(b, env)
            rows["b_wall"].append(bw)
            rows["b_cpu"].append(bc)
            rows["ratio"].append(wall / bw)
    return {k: statistics.median(v) for k, v in rows.items() if v} | {"runs": runs}


def _database(ds, work: Path) -> Path:
    import geotarget

    db = work / "db" / f"geotarget_{ds.key}.duckdb"
    db.parent.mkdir(parents=True, exist_ok=True)
    if not db.exists():
        with geotarget.open(db) as eng:
            eng.ingest_customers(str(ds.customers_parquet))
            eng.ingest_stores(str(ds.stores_csv))
    return db


# Runs in a child process on a copy of the database: one upsert, then the first query after it.
_AFTER_WRITE = """
import json, sys, time
import numpy as np, pandas as pd, geotarget
from geotarget.audience.index import IndexCache, build_index
kept, spent = IndexCache._customers_written, []
def timed(self, *args):
    t = time.perf_counter(); out = kept(self, *args); spent.append(time.perf_counter() - t); return out
IndexCache._customers_written = timed
db, size, k = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
rng = np.random.default_rng(11)
width = len(str(size))
ids = [f"c{i:0{width}d}" for i in rng.choice(size, k // 2, replace=False)] + [f"n{i}" for i in range(k - k // 2)]
batch = pd.DataFrame({"customer_id": ids, "lat": rng.uniform(40.48, 40.91, k), "lng": rng.uniform(-74.25, -73.71, k)})
with geotarget.open(db) as eng:
    eng.audience(stores=["S0001"], radius="2mi")  # the snapshot before the write (mapped from its file)
    t = time.perf_counter(); eng.ingest_customers(batch); write_s = time.perf_counter() - t
    t = time.perf_counter(); eng.audience(stores=["S0001"], radius="2mi"); query_s = time.perf_counter() - t
    t = time.perf_counter(); build_index(eng.store); rebuild_s = time.perf_counter() - t
print(json.dumps({"write_s": write_s, "update_s": sum(spent), "query_s": query_s, "rebuild_s": rebuild_s}))
"""
UPSERT_ROWS = 10_000


def _copy_database(db: Path, to: Path) -> Path:
    """A copy of ``db`` with its persisted index (the copy keeps the file's instance id, so the index fits)."""
    import glob
    import shutil

    for stale in glob.glob(glob.escape(str(to)) + "*"):
        Path(stale).unlink()
    shutil.copyfile(db, to)
    for derived in glob.glob(glob.escape(str(db)) + ".derived.*"):
        shutil.copyfile(derived, str(to) + derived[len(str(db)):])
    return to


def _after_write(db: Path, work: Path, size: int, *, runs: int, env: dict) -> tuple[Path, dict]:
    """Median upsert, same-process first query and rebuild seconds over ``runs`` fresh copies."""
    import json

    rows = []
    copy = work / "db" / f"after_write_{db.name}"
    for _ in range(runs):
        _copy_database(db, copy)
        done = subprocess.run([PY, "-c", _AFTER_WRITE, str(copy), str(size), str(UPSERT_ROWS)], env=env, cwd=ROOT,
                              capture_output=True, text=True, check=False)
        if done.returncode != 0:
            raise RuntimeError(f"upsert run failed: {done.stderr[-400:]}")
        rows.append(json.loads(done.stdout.strip().splitlines()[-1]))
    return copy, {k: statistics.median(r[k] for r in rows) for k in rows[0]}


def _psql(cluster, ds, out: Path) -> list[str]:
    from .data import RADIUS_M, SINGLE_STORE
    from .peer_postgis import _SINGLE

    _, lat, lng = SINGLE_STORE
    query = _SINGLE.replace("%(lat)s", repr(lat)).replace("%(lng)s", repr(lng)).replace("%(r)s", repr(RADIUS_M))
    return ["psql", "-X", "-q", "-h", "127.0.0.1", "-p", str(cluster.port), "-U", "postgres",
            "-d", f"bench_{ds.key}", "-o", str(out), "-c",
            f"COPY ({' '.join(query.split())}) TO STDOUT WITH (FORMAT csv)"]


@contextlib.contextmanager
def _serving(db: Path, env: dict, log: Path):
    """``geotarget serve`` on ``db`` (127.0.0.1, a free port) until the block ends; yields a count of its hand-offs."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    announce = Path(str(db) + ".server")
    with open(log, "wb") as fh:
        proc = subprocess.Popen([PY, "-m", "geotarget", "--db", str(db), "serve", "--port", str(port),
                                 "--insecure-no-auth"], stdout=fh, stderr=subprocess.STDOUT, env=env, cwd=ROOT)
    try:
        deadline = time.monotonic() + 120
        while not announce.exists() or b"startup complete" not in log.read_bytes():
            if proc.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError(f"geotarget serve did not start: {log.read_text()[-1000:]}")
            time.sleep(0.1)
        yield lambda command: log.read_text().count(f"CLI `geotarget {command}` answered")
    finally:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(timeout=60)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


def run(args) -> list[str]:
    from .data import make_dataset

    # What an installed package has: its bytecode compiled (pip compiles at install). A checkout run with
    # PYTHONDONTWRITEBYTECODE would otherwise compile every module it changed at every start.
    compileall.compile_dir(str(ROOT / "geotarget"), quiet=1)

    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    out = args.work / "startup"
    out.mkdir(parents=True, exist_ok=True)
    lines = ["## Start-up and one-shot commands (whole processes)", "",
             (f"Machine: {platform.machine()}, {os.cpu_count()} cores, Python {platform.python_version()}; "
              f"load average at start {os.getloadavg()[0]:.2f}. Medians of {args.runs} runs after a warm-up; "
              "A/B is the median of pairwise wall-time ratios (A and B alternate)."), "",
             "| workload | size | geotarget wall s | geotarget CPU s | peer | peer wall s | peer CPU s | A/B wall |",
             "|---|---|---|---|---|---|---|---|"]

    def row(name, size, m, peer=""):
        cells = [name, size, f"{m['a_wall']:.3f}", f"{m['a_cpu']:.3f}", peer]
        cells += [f"{m['b_wall']:.3f}", f"{m['b_cpu']:.3f}", f"{m['ratio']:.2f}"] if "b_wall" in m else ["", "", ""]
        lines.append("| " + " | ".join(cells) + " |")
        print(lines[-1], flush=True)

    row("`import geotarget` (target <= 0.4 s)", "-", measure([PY, "-c", "import geotarget"], None,
                                                             runs=args.runs, env=env))
    row("`geotarget --help` (target <= 0.25 s)", "-", measure([PY, "-m", "geotarget", "--help"], None,
                                                              runs=args.runs, env=env))
    cluster = None
    if not args.no_postgis:
        from .postgis import Cluster, PostgisUnavailable, ensure_installed

        try:
            cluster = Cluster(args.work / "pg", ensure_installed(allow_install=False), log=print).start()
        except PostgisUnavailable as exc:
            print(f"PostGIS unavailable, geotarget alone: {exc}")
    try:
        for size in args.sizes:
            ds = make_dataset(args.work, args.distribution, size)
            db = _database(ds, args.work)
            first = [PY, "-c", ("import sys, geotarget; e = geotarget.open(sys.argv[1], read_only=True); "
                                "e.audience(stores=['S0001'], radius='2mi')"), str(db)]
            row("new process: open + first 2-mi audience (target <= 0.5 s at 10M)", f"{size:,}",
                measure(first, None, runs=args.runs, env=env))
            cli = [PY, "-m", "geotarget", "--db", str(db), "audience", "--store", "S0001", "--radius", "2mi",
                   "-o", str(out / "geotarget.csv")]
            alone = {**env, "GEOTARGET_SERVER": "off"}  # never handed to a server, even if one runs
            peer_cmd = None
            if cluster is not None:
                from .peer_postgis import PostgisPeer

                PostgisPeer(cluster, ds, None, log=print).close()  # loads the database once, then reused
                peer_cmd = _psql(cluster, ds, out / "psql.csv")
            row("one-shot CLI audience, 2 mi, CSV (target A/B <= 1 at 1M, <= 1.5 at 10M)", f"{size:,}",
                measure(cli, peer_cmd, runs=args.runs, env=alone), peer="psql COPY ... ST_DWithin" if peer_cmd else "")
            peer = "psql COPY ... ST_DWithin" if peer_cmd else ""
            expected = (out / "geotarget.csv").read_bytes()
            heat = [PY, "-m", "geotarget", "--db", str(db), "heatmap", "--res", "8", "-o", str(out / "heatmap.html")]
            with _serving(db, env, out / f"serve_{size}.log") as answered:
                m = measure(cli, peer_cmd, runs=args.runs, env=env)
                handed = answered("audience")
                heat_m = measure(heat, ["env", "GEOTARGET_SERVER=off", *heat], runs=args.runs, env=env)
                heat_handed = answered("heatmap")
            if (out / "geotarget.csv").read_bytes() != expected:
                raise RuntimeError("the audience handed to the server differs from the one computed alone")
            row(f"the same one-shot command while `geotarget serve` runs on the database: handed to it "
                f"({handed} of {1 + args.runs} runs answered there)", f"{size:,}", m, peer=peer)
            row(f"one-shot `geotarget heatmap --res 8 -o x.html`, handed to that server ({heat_handed} of "
                f"{1 + args.runs} runs), against the same command alone", f"{size:,}", heat_m,
                peer="the same command alone (GEOTARGET_SERVER=off)")
            for name, code in (("floor: the interpreter alone (`python -c pass`)", "pass"),
                               ("floor: + the imports a one-shot audience needs (duckdb, numpy, pyarrow, h3, pyproj)",
                                "import duckdb, numpy, pyarrow, pyarrow.compute, h3, h3ronpy, pyproj"),
                               ("floor: + the CLI framework (typer)",
                                "import duckdb, numpy, pyarrow, pyarrow.compute, h3, h3ronpy, pyproj, typer")):
                row(name, f"{size:,}", measure([PY, "-c", code], peer_cmd, runs=args.runs, env=env), peer=peer)
            copy, wrote = _after_write(db, args.work, size, runs=min(args.runs, 3), env=env)
            timed = [(f"upsert of {UPSERT_ROWS:,} customers (half moved, half new), index updated in its transaction",
                      wrote["write_s"]),
                     ("of which: the index update and its file, before COMMIT", wrote["update_s"]),
                     ("first 2-mi audience after that upsert, same process", wrote["query_s"]),
                     ("a full index rebuild (what that first query paid before the update in the transaction)",
                      wrote["rebuild_s"])]
            for name, seconds in timed:
                lines.append(f"| {name} | {size:,} | {seconds:.3f} |  |  |  |  |  |")
                print(lines[-1], flush=True)
            first_after = [PY, "-c", ("import sys, geotarget; e = geotarget.open(sys.argv[1], read_only=True); "
                                      "e.audience(stores=['S0001'], radius='2mi')"), str(copy)]
            row("new process after that upsert: open + first 2-mi audience (target <= 0.5 s at 10M)", f"{size:,}",
                measure(first_after, None, runs=args.runs, env=env))
    finally:
        if cluster is not None:
            cluster.stop()
    return lines


def main(argv=None) -> int:
    p = argparse.ArgumentParser(prog="python -m benchmarks.startup", description=__doc__.splitlines()[0])
    p.add_argument("--sizes", default="1e6", help="customer counts, comma-separated (default 1e6)")
    p.add_argument("--distribution", default="uniform", choices=("uniform", "clustered"))
    p.add_argument("--runs", type=int, default=5)
    p.add_argument("--work", type=Path, default=HERE / "work")
    p.add_argument("--out", type=Path, default=HERE / "RESULTS_startup.md")
    p.add_argument("--no-postgis", action="store_true")
    args = p.parse_args(argv)
    args.sizes = [int(float(s)) for s in args.sizes.split(",")]
    lines = run(args)
    lines += ["", "In-process figures (the upsert and the queries after it) are medians of up to 3 runs, each on a "
              "fresh copy of the database, timed inside the process (wall seconds)."]
    args.out.write_text("\n".join(lines) + "\n")
    print(f"wrote {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
