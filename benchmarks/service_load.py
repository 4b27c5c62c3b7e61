"""``python -m benchmarks.service_load``: a bounded load test of ``geotarget serve`` on 127.0.0.1.

Builds a seeded database, computes the library's answer to every query
in-process, then starts ``geotarget serve`` as a child process and sends it a
mix of requests from concurrent clients (20 for 10 seconds by default, each
also capped in requests). Every answer is checked against the library's;
every status is counted. The server is stopped by its PID at the end, whatever
happens. Latencies (p50, p99 per endpoint) and counts go to
``benchmarks/RESULTS_service.md``.

Only the loopback address is ever contacted.
"""

from __future__ import annotations

import argparse
import http.client
import json
import os
import platform
import random
import secrets
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
from collections import Counter, defaultdict
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import urlencode

import numpy as np

HERE = Path(__file__).resolve().parent
HOST = "127.0.0.1"
RADIUS = "2mi"


# -- the database and the library's answers ---------------------------------------------------------
def build_database(path: Path, *, customers: int, stores: int, campaigns: int, seed: int = 7) -> int:
    """A seeded metro area: customers, stores, and (when the library has them) campaigns around stores.

    Returns the number of campaigns created.
    """
    import geotarget
    from geotarget.sample import sample_customers, sample_stores

    with geotarget.open(path) as eng:
        eng.ingest_customers(sample_customers(customers, seed=seed))
        eng.ingest_stores(sample_stores(stores, seed=seed))
        if hasattr(eng, "create_campaign"):
            ids = eng.stores()["store_id"].tolist()
            for i in range(campaigns):
                eng.create_campaign(f"load-{i:04d}", stores=[ids[i % len(ids)]], radius=f"{1 + i % 3}mi",
                                    metadata={"offer": f"{5 + i % 20}% off"})
            return campaigns
    return 0


def make_queries(path: Path, *, n_points: int, seed: int = 11) -> list[dict]:
    """Requests with the library's answer to each, computed before the server opens the file."""
    import geotarget

    rng = random.Random(seed)
    queries: list[dict] = []
    with geotarget.open(path) as eng:
        stores = eng.stores()
        has_lookup = hasattr(eng, "stores_near") and hasattr(eng, "promotions_at")
        for _ in range(n_points):
            s = stores.iloc[rng.randrange(len(stores))]
            lat = float(round(s["lat"] + rng.uniform(-0.03, 0.03), 6))
            lng = float(round(s["lng"] + rng.uniform(-0.03, 0.03), 6))
            if has_lookup:
                near = eng.stores_near(lat, lng, radius=RADIUS, limit=100)
                queries.append({"name": "stores_near", "method": "GET", "path": "/v1/stores/near",
                                "params": {"lat": lat, "lng": lng, "radius": RADIUS, "limit": 100},
                                "expect": [(d["store_id"], d["distance_m"]) for d in near]})
                promos = eng.promotions_at(lat, lng)
                queries.append({"name": "promotions", "method": "GET", "path": "/v1/promotions",
                                "params": {"lat": lat, "lng": lng}, "expect": sorted(str(c.id) for c in promos)})
        for store_id in stores["store_id"].tolist()[: max(1, n_points // 4)]:
            aud = eng.audience(stores=[store_id], radius=RADIUS)
            query = {"name": "audience", "method": "POST", "path": "/v1/audiences",
                     "body": {"stores": [store_id], "radius": RADIUS}}
            if len(aud) < 100:  # below the minimum size: refused, size untold
                query["expect_status"] = 403
            else:
                query["expect"] = (len(aud), aud.summary()["per_store"])
            queries.append(query)
        res = eng.policy().heatmap_res[0]  # heatmaps are served at the policy's resolutions, suppressed as one
        hm = eng.disclosure(admin=True).heatmap(res, "count")
        queries.append({"name": "heatmap", "method": "GET", "path": "/v1/heatmap", "params": {"res": res},
                        "expect": sorted(zip(hm.frame["h3"].tolist(), hm.frame["customers"].tolist()))})
    return queries


def check(query: dict, status: int, body: bytes) -> bool:
    """Whether a response is the library's answer."""
    if "expect_status" in query:
        return status == query["expect_status"]
    if status != 200:
        return False
    data = json.loads(body)
    name, expect = query["name"], query["expect"]
    if name == "stores_near":
        got = [(d["store_id"], d["distance_m"]) for d in data["stores"]]
        return [g[0] for g in got] == [e[0] for e in expect] and all(
            abs(g[1] - e[1]) <= 1e-6 for g, e in zip(got, expect))
    if name == "promotions":
        return sorted(str(c["id"]) for c in data["promotions"]) == expect
    if name == "audience":
        return (data["customers"], data["per_store"]) == (expect[0], expect[1])
    if name == "heatmap":
        return sorted((f["properties"]["h3"], f["properties"]["customers"]) for f in data["features"]) == expect
    raise ValueError(f"unknown query kind {name!r}")


# -- the server -----------------------------------------------------------------------------------
def free_port() -> int:
    """A TCP port free on 127.0.0.1 right now."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind((HOST, 0))
        return sock.getsockname()[1]


def start_server(db: Path, port: int, key: str, log_path: Path) -> subprocess.Popen:
    """``geotarget serve`` on 127.0.0.1 as a child process (its own process group)."""
    env = {**os.environ, "GEOTARGET_API_KEYS": f"{key}=lookup+analyst+audiences+admin"}
    env.pop("GEOTARGET_DB", None)
    log = open(log_path, "wb")  # noqa: SIM115 - the child writes to it until stopped
    try:
        return subprocess.Popen(
            [sys.executable, "-m", "geotarget", "serve", "--db", str(db), "--host", HOST, "--port", str(port),
             "--no-access-log"],
            env=env, stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, start_new_session=True,
        )
    finally:
        log.close()


def wait_healthy(proc: subprocess.Popen, port: int, timeout_s: float = 60.0) -> None:
    """Poll ``/health`` until it answers 200; raise if the server dies or the time runs out."""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"the server exited with code {proc.returncode} before it was healthy")
        try:
            conn = http.client.HTTPConnection(HOST, port, timeout=2)
            conn.request("GET", "/health")
            if conn.getresponse().status == 200:
                conn.close()
                return
        except OSError:
            pass
        time.sleep(0.1)
    raise RuntimeError(f"the server did not answer /health within {timeout_s:.0f} s")


def stop_server(proc: subprocess.Popen, timeout_s: float = 15.0) -> int:
    """Stop the server by its PID: SIGTERM (uvicorn shuts down cleanly), SIGKILL if it lingers."""
    if proc.poll() is None:
        os.kill(proc.pid, signal.SIGTERM)
        try:
            proc.wait(timeout_s)
        except subprocess.TimeoutExpired:
            os.kill(proc.pid, signal.SIGKILL)
            proc.wait(timeout_s)
    return proc.returncode


# -- the load ---------------------------------------------------------------------------------------
@dataclass
class LoadResult:
    """What the clients saw."""

    clients: int
    seconds: float
    statuses: Counter = field(default_factory=Counter)
    wrong: Counter = field(default_factory=Counter)
    errors: Counter = field(default_factory=Counter)
    latency_ms: dict = field(default_factory=lambda: defaultdict(list))

    @property
    def requests(self) -> int:
        """Requests answered."""
        return sum(self.statuses.values())

    @property
    def server_errors(self) -> int:
        """Answers with a 5xx status."""
        return sum(n for s, n in self.statuses.items() if s >= 500)

    def percentiles(self, name: str | None = None) -> tuple[float, float]:
        """(p50, p99) in milliseconds, of one kind of query or of all."""
        values = [v for k, vs in self.latency_ms.items() if name in (None, k) for v in vs]
        if not values:
            return float("nan"), float("nan")
        p50, p99 = np.percentile(np.asarray(values), [50, 99])
        return float(p50), float(p99)


def run_load(port: int, key: str, queries: list[dict], *, clients: int, duration_s: float,
             max_requests_per_client: int, seed: int = 3, timeline: list | None = None) -> LoadResult:
    """``clients`` threads, each with one keep-alive connection, for ``duration_s`` or their request cap.

    With ``timeline``, every answer is also appended to it as (epoch seconds at send, name, latency ms).
    """
    result = LoadResult(clients=clients, seconds=0.0)
    lock = threading.Lock()
    stop_at = time.monotonic() + duration_s

    def client(n: int) -> None:
        rng = random.Random(seed * 1000 + n)
        conn = http.client.HTTPConnection(HOST, port, timeout=60)
        statuses, wrong, errors, lat, seen = Counter(), Counter(), Counter(), defaultdict(list), []
        try:
            for _ in range(max_requests_per_client):
                if time.monotonic() >= stop_at:
                    break
                q = queries[rng.randrange(len(queries))]
                path = q["path"] + ("?" + urlencode(q["params"]) if q.get("params") else "")
                body = json.dumps(q["body"]).encode() if "body" in q else None
                headers = {"X-API-Key": key, **({"Content-Type": "application/json"} if body else {})}
                sent, t0 = time.time(), time.perf_counter()
                try:
                    conn.request(q["method"], path, body=body, headers=headers)
                    resp = conn.getresponse()
                    data = resp.read()
                except (OSError, http.client.HTTPException) as exc:
                    errors[type(exc).__name__] += 1
                    conn.close()
                    conn = http.client.HTTPConnection(HOST, port, timeout=60)
                    continue
                lat[q["name"]].append((time.perf_counter() - t0) * 1000)
                seen.append((sent, q["name"], lat[q["name"]][-1]))
                statuses[resp.status] += 1
                if not check(q, resp.status, data):
                    wrong[q["name"]] += 1
        finally:
            conn.close()
            with lock:
                result.statuses.update(statuses)
                result.wrong.update(wrong)
                result.errors.update(errors)
                for k, v in lat.items():
                    result.latency_ms[k].extend(v)
                if timeline is not None:
                    timeline.extend(seen)

    t0 = time.monotonic()
    threads = [threading.Thread(target=client, args=(i,), daemon=True) for i in range(clients)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(duration_s + 120)
    result.seconds = time.monotonic() - t0
    return result


#: Query mixes: the app-open path alone, and everything at once.
MIXES = {"lookups": ("stores_near", "promotions"), "mixed": ("stores_near", "promotions", "audience", "heatmap")}


def run(*, customers: int, stores: int, campaigns: int, points: int, clients: int, duration_s: float,
        max_requests_per_client: int, mixes=("mixed",), work: Path | None = None,
        log=print) -> tuple[dict[str, LoadResult], dict]:
    """Build, serve, send each mix in turn to the same server, stop. Returns results per mix and facts."""
    with tempfile.TemporaryDirectory(prefix="geotarget-load-", dir=work) as tmp:
        db = Path(tmp) / "load.duckdb"
        t0 = time.perf_counter()
        made = build_database(db, customers=customers, stores=stores, campaigns=campaigns)
        queries = make_queries(db, n_points=points)
        log(f"database and {len(queries)} checked queries ready in {time.perf_counter() - t0:.1f} s")
        key = secrets.token_urlsafe(32)
        port = free_port()
        load_before = os.getloadavg()[0]
        proc = start_server(db, port, key, Path(tmp) / "server.log")
        results: dict[str, LoadResult] = {}
        try:
            wait_healthy(proc, port)
            for mix in mixes:
                chosen = [q for q in queries if q["name"] in MIXES[mix]]
                if not chosen:
                    continue
                log(f"server PID {proc.pid} on {HOST}:{port}; mix {mix!r}: {clients} clients for {duration_s:g} s")
                results[mix] = run_load(port, key, chosen, clients=clients, duration_s=duration_s,
                                        max_requests_per_client=max_requests_per_client)
        finally:
            code = stop_server(proc)
            server_log = (Path(tmp) / "server.log").read_text(errors="replace")
        facts = {"customers": customers, "stores": stores, "campaigns": made, "queries": len(queries),
                 "kinds": sorted({q["name"] for q in queries}), "exit_code": code, "load_before": load_before,
                 "clean_shutdown": "Application shutdown complete" in server_log}
        return results, facts


# -- ingest while serving ---------------------------------------------------------------------------
def write_ingest_file(path: Path, rows: int, seed: int = 99) -> Path:
    """``rows`` new customers (ids unlike the database's) as Parquet, for the server to ingest on cue."""
    from geotarget.sample import sample_customers

    frame = sample_customers(rows, seed=seed)
    frame["customer_id"] = "N" + frame["customer_id"].astype(str)
    frame.to_parquet(path, index=False)
    return path


def run_ingest_while_serving(*, customers: int, stores: int, campaigns: int, points: int, clients: int,
                             ingest_rows: int, max_s: float = 300.0, work: Path | None = None,
                             log=print) -> tuple[dict, dict]:
    """Lookups from ``clients`` while the same server process ingests ``ingest_rows`` customers.

    The load runs one second before the ingest, through it, and one second after; latencies are split
    by whether a request was sent while the ingest ran. Returns (results by phase, facts).
    """
    with tempfile.TemporaryDirectory(prefix="geotarget-ingest-load-", dir=work) as tmp:
        tmp = Path(tmp)
        db = tmp / "load.duckdb"
        made = build_database(db, customers=customers, stores=stores, campaigns=campaigns)
        queries = [q for q in make_queries(db, n_points=points) if q["name"] in MIXES["lookups"]]
        source = write_ingest_file(tmp / "ingest.parquet", ingest_rows)
        key = secrets.token_urlsafe(32)
        port = free_port()
        trigger, done = tmp / "go", tmp / "done.json"
        env = {**os.environ, "GEOTARGET_API_KEYS": f"{key}=lookup+analyst+audiences+admin"}
        env.pop("GEOTARGET_DB", None)
        with open(tmp / "server.log", "wb") as server_log:
            proc = subprocess.Popen(
                [sys.executable, "-m", "benchmarks.serve_ingest", "--db", str(db), "--port", str(port),
                 "--ingest", str(source), "--trigger", str(trigger), "--done", str(done)],
                cwd=HERE.parent, env=env, stdout=server_log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                start_new_session=True)
        timeline: list = []
        try:
            wait_healthy(proc, port)
            log(f"server PID {proc.pid}: lookups from {clients} clients while it ingests {ingest_rows:,} rows")

            def cue() -> None:
                time.sleep(1.0)
                trigger.touch()
                deadline = time.monotonic() + max_s
                while not done.exists() and time.monotonic() < deadline:
                    time.sleep(0.05)
                time.sleep(1.0)
                stop.set()

            stop = threading.Event()
            threading.Thread(target=cue, daemon=True).start()
            result = LoadResult(clients=clients, seconds=0.0)
            t0 = time.monotonic()
            while not stop.is_set():  # rounds of load until the ingest is over (and one second more)
                part = run_load(port, key, queries, clients=clients, duration_s=0.5,
                                max_requests_per_client=10_000, timeline=timeline)
                result.statuses.update(part.statuses)
                result.wrong.update(part.wrong)
                result.errors.update(part.errors)
            result.seconds = time.monotonic() - t0
        finally:
            code = stop_server(proc)
        timing = json.loads(done.read_text()) if done.exists() else {"start": 0, "end": 0, "report": "not finished"}
    phases = {"during the ingest": [], "before and after": []}
    for sent, _name, ms in timeline:
        inside = timing["start"] <= sent <= timing["end"]
        phases["during the ingest" if inside else "before and after"].append(ms)
    facts = {"customers": customers, "stores": stores, "campaigns": made, "ingest_rows": ingest_rows,
             "ingest_s": timing["end"] - timing["start"], "ingest_report": timing["report"], "exit_code": code,
             "statuses": dict(result.statuses), "wrong": sum(result.wrong.values()),
             "errors": sum(result.errors.values()), "clients": clients, "load_before": os.getloadavg()[0]}
    return phases, facts


def ingest_report(phases: dict, facts: dict) -> str:
    """The Markdown section on lookups while an ingest runs."""
    lines = ["", f"## lookups while ingesting {facts['ingest_rows']:,} rows", "",
             f"The same server process ingests {facts['ingest_rows']:,} new customers (one transaction, "
             f"{facts['ingest_s']:.1f} s) into a database of {facts['customers']:,} while {facts['clients']} "
             "clients send stores-near and promotions lookups; the target is a p99 under 50 ms during the ingest.",
             "", "| phase | requests | p50 ms | p99 ms | max ms |", "| --- | ---: | ---: | ---: | ---: |"]
    for phase, values in phases.items():
        if values:
            p50, p99 = np.percentile(values, [50, 99])
            lines.append(f"| {phase} | {len(values):,} | {p50:.2f} | {p99:.2f} | {max(values):.1f} |")
    lines += ["", f"- statuses: {facts['statuses']}; wrong answers: {facts['wrong']}; connection errors: "
                  f"{facts['errors']}; ingest: {facts['ingest_report'].splitlines()[0]}"]
    return "\n".join(lines)


def _table(result: LoadResult) -> list[str]:
    p50, p99 = result.percentiles()
    lines = ["| | requests | throughput | p50 ms | p99 ms | wrong answers |",
             "| --- | ---: | ---: | ---: | ---: | ---: |"]
    for name in sorted(result.latency_ms):
        n = len(result.latency_ms[name])
        q50, q99 = result.percentiles(name)
        lines.append(f"| {name} | {n:,} | {n / result.seconds:,.0f}/s | {q50:.2f} | {q99:.2f} | {result.wrong[name]} |")
    lines.append(f"| **all** | **{result.requests:,}** | **{result.requests / result.seconds:,.0f}/s** | "
                 f"**{p50:.2f}** | **{p99:.2f}** | **{sum(result.wrong.values())}** |")
    statuses = ", ".join(f"{s}: {n:,}" for s, n in sorted(result.statuses.items()))
    return lines + ["", f"- {result.clients} clients for {result.seconds:.1f} s; statuses: {statuses}; "
                        f"5xx answers: **{result.server_errors}**; connection errors: {sum(result.errors.values())}"]


def report(results: dict[str, LoadResult], facts: dict) -> str:
    """The Markdown written to RESULTS_service.md."""
    lines = [
        "# HTTP service load test",
        "",
        "Written by `python -m benchmarks.service_load`. One `geotarget serve` process on 127.0.0.1 "
        "(one engine, uvicorn's thread pool); the clients run in another process on the same machine, "
        "so they share its cores with the server. Every answer is checked against the library's.",
        "",
        f"- machine: {platform.machine()}, {os.cpu_count()} cores, Python {platform.python_version()}; "
        f"1-minute load average before the run: {facts['load_before']:.1f} (other work on the machine "
        "inflates the latencies)",
        f"- data: {facts['customers']:,} customers, {facts['stores']} stores, {facts['campaigns']} campaigns; "
        f"{facts['queries']} distinct requests",
        "- `lookups`: the app-open path only (stores near a point, promotions at a point); `mixed`: those with "
        "audience counts (one store, 2 mi) and a res-7 heatmap, which hold the GIL for tens of milliseconds",
    ]
    for mix, result in results.items():
        lines += ["", f"## {mix}", ""] + _table(result)
    lines += ["", f"Server stopped by SIGTERM to its PID; lifespan shutdown completed: "
                  f"{'yes' if facts['clean_shutdown'] else 'NO'} (exit code {facts['exit_code']}: uvicorn "
                  "re-raises the signal once it has shut down).", ""]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    """Run the load test and write the report; exit 1 on any 5xx, wrong answer or connection error."""
    p = argparse.ArgumentParser(prog="python -m benchmarks.service_load", description=__doc__.splitlines()[0])
    p.add_argument("--clients", type=int, default=20, help="concurrent clients (default 20)")
    p.add_argument("--seconds", type=float, default=10.0, help="how long to send (default 10)")
    p.add_argument("--max-requests", type=int, default=20_000, help="cap per client (default 20,000)")
    p.add_argument("--customers", type=int, default=200_000, help="customers in the database (default 200,000)")
    p.add_argument("--stores", type=int, default=40)
    p.add_argument("--campaigns", type=int, default=500)
    p.add_argument("--points", type=int, default=200, help="distinct query points (default 200)")
    p.add_argument("--ingest-rows", type=int, default=1_000_000,
                   help="rows the server ingests while serving lookups (default 1,000,000; 0 skips that load)")
    p.add_argument("--ingest-clients", type=int, default=8, help="clients during the ingest load (default 8)")
    p.add_argument("--out", type=Path, default=HERE / "RESULTS_service.md")
    args = p.parse_args(argv)
    results, facts = run(customers=args.customers, stores=args.stores, campaigns=args.campaigns,
                         points=args.points, clients=args.clients, duration_s=args.seconds,
                         max_requests_per_client=args.max_requests, mixes=tuple(MIXES))
    text = report(results, facts)
    ingest_bad = False
    if args.ingest_rows:
        phases, ingest_facts = run_ingest_while_serving(
            customers=args.customers, stores=args.stores, campaigns=args.campaigns, points=args.points,
            clients=args.ingest_clients, ingest_rows=args.ingest_rows)
        text += ingest_report(phases, ingest_facts) + "\n"
        ingest_bad = bool(ingest_facts["wrong"] or ingest_facts["errors"]
                          or any(s >= 500 for s in ingest_facts["statuses"]))
    args.out.write_text(text)
    print(text)
    bad = any(r.server_errors or sum(r.wrong.values()) or sum(r.errors.values()) for r in results.values())
    return 1 if bad or ingest_bad else 0


if __name__ == "__main__":
    sys.exit(main())
