"""``python -m benchmarks``: geotarget against PostGIS, DuckDB SQL, GeoPandas and BallTree.

Generates the data, installs and starts a private PostGIS cluster, runs every
workload on every peer, checks every answer against the geodesic truth and
writes ``benchmarks/RESULTS.md``. The cluster is always stopped at the end.
"""

from __future__ import annotations

import argparse
import cProfile
import gc
import io
import json
import pstats
import re
import shlex
import signal
import sys
import time
from pathlib import Path

from . import report
from .data import DISTRIBUTIONS, N_STORES, largest_ntas, make_dataset, nta_path
from .geotarget_side import GeotargetPeer, measure_ingest
from .heatmap_cold import COLD_RUNS, measure_cold_heatmap
from .postgis import Cluster, PostgisUnavailable, ensure_installed
from .workloads import Settings, run_dataset, run_map

HERE = Path(__file__).resolve().parent
PEERS = ("postgis", "duckdb", "geopandas", "balltree")
QUICK_SIZE = 10_000
QUICK_STORES = 100


def _parse_sizes(text: str) -> list[int]:
    return [int(float(s)) for s in text.split(",") if s.strip()]


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(prog="python -m benchmarks", description=__doc__.splitlines()[0])
    p.add_argument("--sizes", default="1e6,1e7", help="customer counts, comma-separated (default 1e6,1e7)")
    p.add_argument("--distributions", default=",".join(DISTRIBUTIONS), help="uniform,clustered")
    p.add_argument("--peers", default=",".join(PEERS), help="any of " + ",".join(PEERS))
    p.add_argument("--quick", action="store_true", help=f"smoke run: {QUICK_SIZE:,} customers, {QUICK_STORES} stores, one timed run, no profiling")
    p.add_argument("--repeats", type=int, default=5, help="timed warm runs per variant at most (default 5)")
    p.add_argument("--work", type=Path, default=HERE / "work", help="data, databases and the PostgreSQL cluster")
    p.add_argument("--out", type=Path, default=HERE / "RESULTS.md", help="where to write the report")
    p.add_argument("--timeout", type=float, default=900.0,
                   help="seconds after which PostGIS stops a query; its time is then a lower bound (default 900)")
    p.add_argument("--no-install", action="store_true", help="never apt-get install PostGIS")
    p.add_argument("--render", action="store_true",
                   help="only rewrite the report from the last run's results.json in --work")
    p.add_argument("--no-profile", action="store_true", help="skip profiling geotarget on missed targets")
    args = p.parse_args(argv)
    args.argv = list(sys.argv[1:] if argv is None else argv)
    args.peers = [x for x in args.peers.split(",") if x]
    unknown = set(args.peers) - set(PEERS)
    if unknown:
        p.error(f"unknown peers {sorted(unknown)}; choose from {', '.join(PEERS)}")
    args.distributions = [x for x in args.distributions.split(",") if x]
    args.sizes = [QUICK_SIZE] if args.quick else _parse_sizes(args.sizes)
    return args


def _profile(fn, args: tuple, top: int = 12) -> str:
    """Where one call spends its time: top functions by own time, then geotarget's by cumulative time."""
    prof = cProfile.Profile()
    prof.enable()
    fn(*args)
    prof.disable()
    parts = []
    for order, restrict, title in (("tottime", (), "by own time"),
                                   ("cumulative", ("geotarget/",), "geotarget functions by cumulative time")):
        buf = io.StringIO()
        pstats.Stats(prof, stream=buf).sort_stats(order).print_stats(*restrict, top)
        lines = buf.getvalue().splitlines()
        start = next((i for i, line in enumerate(lines) if "ncalls" in line), 0)
        if not parts:
            parts.append(next((line.strip() for line in lines if "function calls" in line), ""))
        body = [re.sub(r"\S*/(site-packages|lib/python3\.\d+|work/main)/", "", line) for line in lines[start:]]
        parts += [f"-- {title}", *[line for line in body if line.strip()]]
    return "\n".join(parts)


def _profile_misses(records, peer: GeotargetPeer, ds, ntas, log) -> dict[str, str]:
    from .workloads import _args

    out = {}
    for t in report.check_targets(records):
        if t["met"] is False and t.get("size") == ds.size and t.get("distribution") == ds.distribution:
            workload = next((w for w, _, _, wording in report.TARGETS if wording == t["target"]), None)
            tasks = peer.tasks().get(workload) if workload else None
            if tasks:
                log(f"  profiling geotarget {workload} (missed: {t['target']})")
                out[f"{workload} {ds.key}"] = _profile(tasks[0][1], _args(workload, ds, ntas))
    return out


def _ingest_records(ds, work: Path, runs: int, log) -> tuple[list[dict], Path]:
    db = work / "db" / f"geotarget_{ds.key}.duckdb"
    db.parent.mkdir(parents=True, exist_ok=True)
    base = {"dataset": ds.key, "distribution": ds.distribution, "size": ds.size, "workload": "ingest",
            "peer": "geotarget", "variant": "geotarget ingest_customers (Parquet)"}
    figures = [measure_ingest(ds, db, log=log) for _ in range(runs)]
    figures.sort(key=lambda f: f["seconds"])
    best = figures[len(figures) // 2]
    rec = base | best | {"runs": [f["seconds"] for f in figures],
                         "runs_with_close": [f["seconds"] + f.get("close_seconds", 0.0) for f in figures],
                         "peak_rss_bytes": max(f["peak_rss_bytes"] for f in figures)}
    return [rec], db


def _cold_heatmap_records(ds, db: Path, log) -> list[dict]:
    """First heatmaps in new processes, before any peer holds the database open.

    One right after the ingest (it builds and persists the customer snapshot), then one at a new resolution
    with the snapshot persisted: the case of the 2-second target (see :mod:`benchmarks.heatmap_cold`).
    """
    base = {"dataset": ds.key, "distribution": ds.distribution, "size": ds.size, "peer": "geotarget"}
    records = []
    for res, workload in COLD_RUNS:
        what = "first query after the ingest" if workload == "heatmap_first" else "new resolution"
        rec = base | {"workload": workload, "variant": f"geotarget first res-{res} heatmap, new process ({what})"}
        try:
            rec |= measure_cold_heatmap(db, res, log=log)
        except Exception as exc:  # noqa: BLE001 - reported, not fatal
            rec["error"] = f"{type(exc).__name__}: {str(exc)[-300:]}"
            log(f"  cold heatmap FAILED {rec['error']}")
        records.append(rec)
    return records


def run(args: argparse.Namespace, *, log=print) -> dict:
    """The whole benchmark; returns the records, machine facts and profiles, and writes the report."""
    if args.quick:  # correctness first: one timed run, and slow variants are timed by their warm-up
        cfg = Settings(repeats=1, budget_s=1.0, slow_s=1.0, nearest_sample=200, timeout_s=120.0)
        args.no_profile = True
    else:
        cfg = Settings(repeats=args.repeats, timeout_s=args.timeout)
    args.work.mkdir(parents=True, exist_ok=True)
    ntas = largest_ntas(10)
    if ntas is None:
        log("NYC NTA polygons not found (set GEOTARGET_REAL_DATA): skipping the neighborhood workload")
    records: list[dict] = []
    profiles: dict[str, str] = {}
    extra_facts: dict[str, str] = {}
    postgis_error = None
    cluster = None
    try:
        if "postgis" in args.peers:
            try:
                cluster = Cluster(args.work / "pg", ensure_installed(allow_install=not args.no_install, log=log),
                                  log=log).start()
                extra_facts |= cluster.versions()
            except PostgisUnavailable as exc:
                postgis_error = str(exc)
                log(f"PostGIS unavailable, running without it: {exc}")
                cluster = None
        for size in args.sizes:
            for dist in args.distributions:
                log(f"== {dist}, {size:,} customers")
                ds = make_dataset(args.work, dist, size, n_stores=QUICK_STORES if args.quick else N_STORES)
                recs, db = _ingest_records(ds, args.work, 1 if args.quick else 2, log)
                records += recs
                records += _cold_heatmap_records(ds, db, log)
                peers = [GeotargetPeer(db, ds, ntas)]
                try:
                    peers += _start_peers(args.peers, cluster, ds, ntas, records, extra_facts, cfg, log)
                    records += run_dataset(ds, peers, ntas, cfg, log=log)
                    if not args.no_profile:
                        profiles |= _profile_misses(records, peers[0], ds, ntas, log)
                    if dist == "uniform" and size == max(args.sizes):
                        records += run_map(peers[0].eng, args.work / "maps", cfg, res=7 if args.quick else 9, log=log)
                finally:
                    for peer in peers:
                        peer.close()
                    del peers
                    gc.collect()
                    _write(args, records, extra_facts, profiles, postgis_error, log)
    finally:
        if cluster is not None:
            cluster.stop()
    return _write(args, records, extra_facts, profiles, postgis_error, log)


def _write(args, records, extra_facts, profiles, postgis_error, log) -> dict:
    """Write RESULTS.md and results.json from what has been measured so far."""
    facts = report.machine_facts(extra_facts)
    shown, skip = [], False
    for a in args.argv:  # where the files went is not part of what was measured
        if skip or a.startswith(("--work=", "--out=")):
            skip = False
            continue
        skip = a in ("--work", "--out")
        if not skip:
            shown.append(shlex.quote(a))
    command = " ".join(["python -m benchmarks", *shown])
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(report.render(records, facts, command, profiles))
    result = {"records": records, "facts": facts, "profiles": profiles, "postgis_error": postgis_error,
              "nta_path": str(nta_path()) if nta_path() else None, "command": command}
    (args.work / "results.json").write_text(json.dumps(result, indent=1, default=str))
    log(f"wrote {args.out}")
    return result


def _start_peers(names, cluster, ds, ntas, records, extra_facts, cfg, log) -> list:
    peers = []
    for name in names:
        try:
            peer = _start_peer(name, cluster, ds, ntas, extra_facts, cfg, log)
        except Exception as exc:  # noqa: BLE001 - one peer failing to start must not end the run
            log(f"  {name}: could not start: {type(exc).__name__}: {exc}")
            records.append({"dataset": ds.key, "distribution": ds.distribution, "size": ds.size,
                            "workload": "single", "peer": name, "variant": name,
                            "error": f"setup failed: {type(exc).__name__}: {str(exc)[:200]}"})
            continue
        if peer is None:
            continue
        records.append({"dataset": ds.key, "distribution": ds.distribution, "size": ds.size, "workload": "setup",
                        "peer": name, "seconds": dict(peer.setup_seconds)})
        if name in ("postgis", "duckdb") and "total" in peer.setup_seconds:
            label = {"postgis": "PostGIS COPY + geography + GiST + CLUSTER + VACUUM ANALYZE",
                     "duckdb": "DuckDB CREATE TABLE from Parquet, sorted"}[name]
            sec = peer.setup_seconds["total" if name == "postgis" else "load + sort by lat"]
            records.append({"dataset": ds.key, "distribution": ds.distribution, "size": ds.size,
                            "workload": "ingest", "peer": name, "variant": label, "seconds": sec,
                            "rows_per_second": ds.size / sec})
        peers.append(peer)
    return peers


def _start_peer(name, cluster, ds, ntas, extra_facts, cfg, log):
    from .peer_local import BallTreePeer, DuckDBPeer, GeoPandasPeer

    t0 = time.perf_counter()
    if name == "postgis":
        if cluster is None:
            return None
        from .peer_postgis import PostgisPeer

        peer = PostgisPeer(cluster, ds, ntas, log=log, timeout_s=cfg.timeout_s)
        peer.cur.execute("SELECT postgis_lib_version()")
        extra_facts["postgis"] = peer.cur.fetchall()[0][0]
    elif name == "duckdb":
        peer = DuckDBPeer(ds)
    elif name == "geopandas":
        peer = GeoPandasPeer(ds, ntas)
    else:
        peer = BallTreePeer(ds)
    log(f"  {name}: ready in {time.perf_counter() - t0:.1f} s")
    return peer


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)

    def _terminate(signum, frame):  # turn SIGTERM into an exception so the cluster is stopped
        raise SystemExit(128 + signum)

    signal.signal(signal.SIGTERM, _terminate)
    if args.render:
        saved = json.loads((args.work / "results.json").read_text())
        args.out.write_text(report.render(saved["records"], saved["facts"], saved["command"], saved["profiles"]))
        print(f"wrote {args.out} from {args.work / 'results.json'}")
        return 0
    run(args)
    return 0


if __name__ == "__main__":
    sys.exit(main())
