"""``python -m benchmarks.lift``: the lift readout against a hand-written DuckDB join-and-aggregate.

Builds a database with one launched campaign of N assigned customers (10 %
held out) and M outcomes spread over 60 days around the launch (the 30 days
before it are the CUPED pre-period), written straight into geotarget's
tables with SQL. Then, each in a fresh child process on the same file:

- ``geotarget``: ``eng.lift(campaign)`` (conversion), the whole readout:
  rates, z test, interval, and CUPED with the pre-period (one grouped pass
  over the assignment and the outcomes of both periods), with its default
  memory budget (DuckDB's memory limit lowered to 1 GB while it runs);
- ``geotarget, no CUPED``: the same with ``cuped=False`` (no pre-period);
- ``duckdb sql``: the same two conversion rates by a hand-written query,
  ``assignments LEFT JOIN (SELECT DISTINCT customer_id FROM outcomes WHERE
  ts in the window) GROUP BY group``, in DuckDB through its Python API;
- ``duckdb sql, CUPED``: the work the CUPED readout does, by hand in SQL:
  per customer, whether they converted in the window and in the pre-period
  (one grouped pass over both periods' outcomes), joined to the assignment,
  then theta = cov(x, y) / var(x) and the adjusted rate of each group;
- ``duckdb sql, CUPED, 1 GB``: the same query under the memory limit the
  readout runs with (``SET memory_limit``, geotarget's
  ``READOUT_MEMORY_LIMIT``), once; the other peers run at DuckDB's defaults
  (80 % of the machine's memory), so their ratios are the stricter ones;
- ``geotarget revenue``: ``eng.lift(campaign, metric="revenue")`` with its
  bootstrap interval (no peer; for the record).

Each child runs its query three times and reports the first (cold) and the
best time, the CPU time of the process during its fastest run (user +
system, all threads: steadier than wall time on a shared machine), and its
peak resident memory (``VmHWM`` of ``/proc/self/status``, which counts
this process alone: ``ru_maxrss`` would carry over the parent's peak
through fork and exec, and the parent built the database; DuckDB's buffers
included, Python and the imports too). The conversion rates of the readout
and of the SQL must agree exactly, and the CUPED-adjusted rates to 1e-9
(DuckDB's ``covar_samp`` is floating point; the readout's moments come from
integer counts), or the run fails. Default sizes: N = 10,000,000 and
M = 50,000,000 (the issue's target: at most 10 s and 2 GB, and within 1.5x
of the SQL); ``--quick`` runs 100,000 / 500,000. Writes
``benchmarks/RESULTS_lift.md``, a section of ``benchmarks/RESULTS.md``.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import resource
import subprocess
import sys
import time
from datetime import UTC, datetime
from pathlib import Path

from benchmarks.ingest_child import _peak_kib  # this process's own peak (VmHWM)

HERE = Path(__file__).resolve().parent
CAMPAIGN = "bench lift"
LAUNCH = datetime(2026, 5, 1, tzinfo=UTC)
PEER_SQL = """
    SELECT a.grp, count(*) AS n, count(c.customer_id) AS converted
    FROM campaign_assignments a
    LEFT JOIN (SELECT DISTINCT customer_id FROM outcomes WHERE ts >= $s AND ts < $e) c
           ON c.customer_id = a.customer_id
    WHERE a.campaign_id = $c
    GROUP BY a.grp ORDER BY a.grp"""
PEER_CUPED_SQL = """
    WITH per AS (SELECT customer_id, max(CASE WHEN ts >= $s THEN 1 ELSE 0 END) AS y,
                        max(CASE WHEN ts < $s THEN 1 ELSE 0 END) AS x
                 FROM outcomes WHERE ts >= $p AND ts < $e GROUP BY customer_id),
         u AS (SELECT a.grp, coalesce(per.y, 0) AS y, coalesce(per.x, 0) AS x
               FROM campaign_assignments a LEFT JOIN per ON per.customer_id = a.customer_id
               WHERE a.campaign_id = $c),
         fit AS (SELECT covar_samp(x, y) / var_samp(x) AS theta, avg(x) AS mx FROM u)
    SELECT u.grp, count(*) AS n, avg(u.y) AS rate, avg(u.y - fit.theta * (u.x - fit.mx)) AS rate_adj
    FROM u, fit GROUP BY u.grp ORDER BY u.grp"""


def build(path: Path, customers: int, outcomes: int, seed: int = 7) -> dict:
    """The benchmark database; returns the campaign id and the readout window."""
    import geotarget

    if path.exists():
        path.unlink()
    started = time.perf_counter()
    eng = geotarget.open(str(path))
    c = eng.create_campaign(CAMPAIGN, cells=["832a10fffffffff"], holdout=0.1, start=LAUNCH)
    from geotarget.measure.tables import ensure_tables

    ensure_tables(eng.store)
    con = eng.store.con
    con.execute(f"SELECT setseed({(seed % 1000) / 1000})")
    with eng.store.transaction() as con:
        con.execute("""
            INSERT INTO campaign_assignments
            SELECT $c, 'C' || lpad(CAST(i AS VARCHAR), 9, '0'),
                   CASE WHEN i % 10 = 0 THEN 'control' ELSE 'treatment' END,
                   'S' || lpad(CAST(i % 200 AS VARCHAR), 3, '0'),
                   40.7 + (i % 1000) / 10000.0, -74.0 + (i % 997) / 10000.0
            FROM range($n) t(i)""", {"c": c.id, "n": customers})
        # 95 % of outcomes fall on any customer; 5 % more on treatment customers only (a true lift)
        con.execute("""
            INSERT INTO outcomes
            SELECT 'O' || j, 'C' || lpad(CAST(k AS VARCHAR), 9, '0'),
                   $launch + to_microseconds(CAST((random() - 0.5) * 60 * 86400e6 AS BIGINT)),
                   CASE WHEN random() < 0.7 THEN round(exp(3 + random() * 2), 2) ELSE NULL END,
                   'order', 'bench', now()
            FROM (SELECT j, CASE WHEN j % 20 = 0 AND k0 % 10 = 0 THEN k0 + 1 ELSE k0 END AS k
                  FROM (SELECT j, CAST(floor(random() * $n) AS BIGINT) AS k0 FROM range($m) t(j)))
            WHERE k < $n""", {"n": customers, "m": outcomes, "launch": LAUNCH})
        nt, nc = con.execute("SELECT count(*) FILTER (WHERE grp = 'treatment'), count(*) FILTER "
                             "(WHERE grp = 'control') FROM campaign_assignments").fetchall()[0]
        con.execute("INSERT INTO campaign_launches VALUES ($c, $name, $at, 0.1, $nt, $nc)",
                    {"c": c.id, "name": CAMPAIGN, "at": LAUNCH, "nt": nt, "nc": nc})
        m = con.execute("SELECT count(*) FROM outcomes").fetchall()[0][0]
        end = con.execute("SELECT max(ts) FROM outcomes").fetchall()[0][0]
    eng.close()
    return {"campaign_id": c.id, "customers": int(nt + nc), "outcomes": int(m), "end": end.isoformat(),
            "build_s": time.perf_counter() - started}


def _cpu_s() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


def _child(variant: str, db: str, campaign_id: str, end: str) -> dict:
    """Run one variant three times in this (fresh) process; time, CPU time, peak RSS and the answer."""
    rss0 = _peak_kib()
    times, cpus, answer = [], [], None
    if variant.startswith("duckdb sql"):
        from datetime import timedelta

        import duckdb
        import pandas as pd

        con = duckdb.connect(db, read_only=True)
        rss0 = _peak_kib()
        end_ts = pd.Timestamp(end).to_pydatetime()
        if variant == BUDGET_PEER:
            from geotarget.measure.budget import READOUT_MEMORY_LIMIT

            con.execute(f"SET memory_limit = '{READOUT_MEMORY_LIMIT}'")
        if variant == "duckdb sql":
            sql, params = PEER_SQL, {"s": LAUNCH, "e": end_ts, "c": campaign_id}
        else:  # the readout's window ends just after the last outcome; the pre-period has the same length
            end_excl = end_ts + timedelta(microseconds=1)
            sql, params = PEER_CUPED_SQL, {"s": LAUNCH, "e": end_excl, "p": LAUNCH - (end_excl - LAUNCH),
                                           "c": campaign_id}
        for _ in range(3):
            c0, t0 = _cpu_s(), time.perf_counter()
            rows = con.execute(sql, params).fetchall()
            times.append(time.perf_counter() - t0)
            cpus.append(_cpu_s() - c0)
        if variant == "duckdb sql":
            groups = {g: x / n for g, n, x in rows}
        else:
            groups = {g: rate for g, _n, rate, _adj in rows}
            answer = {f"{g}_rate_adj": adj for g, _n, _rate, adj in rows}
        answer = {**(answer or {}), "treatment_rate": groups["treatment"], "control_rate": groups["control"]}
        con.close()
    else:
        import geotarget

        eng = geotarget.open(db, read_only=True)
        rss0 = _peak_kib()
        metric = "revenue" if variant == "geotarget revenue" else "conversion"
        cuped = variant != "geotarget, no CUPED"
        import pandas as pd

        end_excl = (pd.Timestamp(end) + pd.Timedelta(microseconds=1)).isoformat()
        for _ in range(3):
            c0, t0 = _cpu_s(), time.perf_counter()
            r = eng.lift(CAMPAIGN, metric=metric, end=end_excl, cuped=cuped)
            times.append(time.perf_counter() - t0)
            cpus.append(_cpu_s() - c0)
        d = r.to_dict()
        answer = {k: d[k] for k in ("treatment_rate", "control_rate", "treatment_rate_adj", "control_rate_adj",
                                    "p_value", "p_value_adj")}
        eng.close()
    return {"variant": variant, "first_s": times[0], "best_s": min(times), "cpu_s": cpus[times.index(min(times))],
            "peak_rss_mb": _peak_kib() / 1024,
            "rss_before_mb": rss0 / 1024, "answer": answer}


def run(customers: int, outcomes: int, work: Path, log=print) -> dict:
    """Build, run every variant in its own process, check the answers agree."""
    work.mkdir(parents=True, exist_ok=True)
    db = work / f"lift_{customers}_{outcomes}.duckdb"
    log(f"building {customers:,} assigned customers and {outcomes:,} outcomes in {db} ...")
    facts = build(db, customers, outcomes)
    log(f"  built in {facts['build_s']:.1f} s")
    results = []
    for variant in (*VARIANTS, *VARIANTS, BUDGET_PEER, "geotarget revenue"):
        out = subprocess.run([sys.executable, "-m", "benchmarks.lift", "--child", variant, str(db),
                              facts["campaign_id"], facts["end"]], capture_output=True, text=True,
                             cwd=HERE.parent, env={**os.environ, "PYTHONPATH": str(HERE.parent)})
        if out.returncode:
            raise RuntimeError(f"{variant} failed:\n{out.stderr[-3000:]}")
        res = json.loads(out.stdout.strip().splitlines()[-1])
        log(f"  {variant}: first {res['first_s']:.3f} s, best {res['best_s']:.3f} s (CPU {res['cpu_s']:.3f} s), "
            f"peak RSS {res['peak_rss_mb']:.0f} MB")
        results.append(res)
    sql = next(r for r in results if r["variant"] == "duckdb sql")["answer"]
    sql_cuped = next(r for r in results if r["variant"] == "duckdb sql, CUPED")["answer"]
    ours = next(r for r in results if r["variant"] == "geotarget")["answer"]
    for key, peer, tolerance in (("treatment_rate", sql, 0.0), ("control_rate", sql, 0.0),
                                 ("treatment_rate", sql_cuped, 0.0), ("control_rate", sql_cuped, 0.0),
                                 ("treatment_rate_adj", sql_cuped, 1e-9), ("control_rate_adj", sql_cuped, 1e-9)):
        if ours[key] is None or abs(peer[key] - ours[key]) > tolerance * abs(peer[key]):
            raise RuntimeError(f"the readout and the SQL disagree on {key}: {ours[key]} vs {peer[key]}")
    db.unlink(missing_ok=True)
    Path(str(db) + ".wal").unlink(missing_ok=True)
    return {"facts": facts, "results": results}


VARIANTS = ("duckdb sql", "duckdb sql, CUPED", "geotarget", "geotarget, no CUPED")
#: The CUPED peer under the readout's memory limit (run once).
BUDGET_PEER = "duckdb sql, CUPED, 1 GB"
#: The issue's memory target for the readout, in MB (peak resident memory of the process).
TARGET_MB = 2000


def _best(results, variant):
    runs = [r for r in results if r["variant"] == variant]
    return min(runs, key=lambda r: r["best_s"])


def report(run_result: dict, path: Path) -> None:
    """Write the Markdown report."""
    facts, results = run_result["facts"], run_result["results"]
    sql, sql_cuped, ours, plain, rev = (_best(results, v) for v in (*VARIANTS, "geotarget revenue"))
    budget_peer = next((r for r in results if r["variant"] == BUDGET_PEER), None)
    like = {ours["variant"]: sql_cuped, plain["variant"]: sql, sql_cuped["variant"]: sql_cuped,
            BUDGET_PEER: sql_cuped}
    same_limit = {ours["variant"]: budget_peer}
    load = os.getloadavg()[0] if hasattr(os, "getloadavg") else float("nan")
    niceness = os.nice(0) if hasattr(os, "nice") else 0
    priority = f" (run at niceness {niceness}: its wall times overstate an idle machine's)" if niceness else ""
    from geotarget.measure.budget import READOUT_MEMORY_LIMIT

    lines = [
        "## Lift readout (campaign measurement)",
        "",
        (f"`python -m benchmarks.lift`, {datetime.now(UTC):%Y-%m-%d}, Python {platform.python_version()} on "
        f"{os.cpu_count()} CPUs ({platform.machine()}), load average {load:.1f} when it started{priority}. One "
        f"launched campaign with {facts['customers']:,} assigned customers (10 % control) and "
        f"{facts['outcomes']:,} "
        "outcomes over 60 days around the launch (the 30 days before it are the CUPED pre-period). Each row is "
        "a fresh process on the same file (each variant twice, interleaved, the better kept; the peer under "
        "the readout's memory limit once), its query run "
        "three times: the first (cold, with the imports of the statistics) and best times, the CPU time of "
        "the best run (user + system over all threads; on a shared machine it moves less than wall time), and "
        "the process's peak resident memory (Python, imports and DuckDB's buffers), against the target of "
        f"{TARGET_MB:,} MB. The readouts run with their default memory budget (DuckDB's `memory_limit` "
        f"lowered to {READOUT_MEMORY_LIMIT} while they run); the SQL peers at DuckDB's defaults (up to 80 % of "
        "the machine's memory), except the one named for the limit. The conversion rates agree "
        "exactly and the CUPED-adjusted rates to 1e-9 (checked)."),
        "",
        ("| variant | DuckDB memory limit | first | best | CPU | peak RSS | under 2 GB | CPU / like-for-like SQL | "
        "CPU / same SQL, same limit | best / like-for-like SQL | best / `duckdb sql` |"),
        "| --- | --- | ---: | ---: | ---: | ---: | :---: | ---: | ---: | ---: | ---: |",
    ]
    for r in (sql, sql_cuped, *([budget_peer] if budget_peer else []), ours, plain, rev):
        peer = like.get(r["variant"], sql if r is sql else None)
        limited = same_limit.get(r["variant"])
        ratios = ("-", "-", "-", "-") if peer is None else (
            f"{r['cpu_s'] / peer['cpu_s']:.2f}x", f"{r['cpu_s'] / limited['cpu_s']:.2f}x" if limited else "-",
            f"{r['best_s'] / peer['best_s']:.2f}x", f"{r['best_s'] / sql['best_s']:.2f}x")
        limit = READOUT_MEMORY_LIMIT if r["variant"].startswith("geotarget") or r is budget_peer else "default"
        lines.append(f"| {r['variant']} | {limit} | {r['first_s']:.3f} s | {r['best_s']:.3f} s | {r['cpu_s']:.3f} s | "
                     f"{r['peak_rss_mb']:,.0f} MB | {'yes' if r['peak_rss_mb'] <= TARGET_MB else 'no'} | "
                     f"{' | '.join(ratios)} |")
    lines += [
        "",
        "What each row computes, and which SQL is its like-for-like peer:",
        "",
        "- `duckdb sql`: only the two conversion rates, from the window's outcomes (about half of them here).",
        ("- `geotarget, no CUPED` (`cuped=False`): the readout (rates, z test, interval) from the same outcomes; "
        "its peer is `duckdb sql`."),
        ("- `geotarget`: the default readout, the same plus CUPED. CUPED needs, per customer, whether they "
        "converted in the pre-period as well, so it reads the pre-period's outcomes too (as many again as the "
        "window's here, since the pre-period has the window's length). It takes the assignment's rows and "
        "both periods' outcomes in one grouped pass (a `UNION ALL` grouped by customer, one flag per customer "
        "by `bit_or`: a bit for the group, one for each period with an outcome), so it builds one hash table "
        "of customers where the join of a per-customer aggregate to the assignment builds two; then it counts "
        "n, sum y, sum x and sum xy per group; the means, variances, covariance, theta and the adjusted figures follow exactly "
        "from those integers. Its peer is `duckdb sql, CUPED`, the same adjusted rates written by hand in "
        "SQL (per-customer flags by conditional aggregation, `covar_samp / var_samp` for theta). The ratio "
        "to `duckdb sql` is also shown: it includes the pre-period's extra outcomes, which the rates-only "
        "query never reads."),
        ("- `duckdb sql, CUPED, 1 GB`: the CUPED peer under the readout's memory limit; its ratio to "
        "`duckdb sql, CUPED` is what spilling costs the SQL, and the readout's ratio to it compares the two "
        "under the same limit."),
        ("- `geotarget revenue`: Welch's test and a 2,000-resample bootstrap interval (no peer). The bootstrap "
        "is not what costs: past 10M resampled values per group it draws each resample's sum from the normal "
        "law of a sum (2 x 2,000 draws, under 1 ms); the time is the grouped pass summing values per customer."),
        "",
        ("Memory: at DuckDB's default limit (80 % of the machine's memory) a query that groups 10M customers "
        "keeps its hash tables and the blocks it read resident, 2.3 to 2.8 GB here, the rates-only SQL "
        "included. A readout therefore lowers DuckDB's `memory_limit` to "
        f"{READOUT_MEMORY_LIMIT} while it runs and sets it back after (`geotarget.measure.budget`; "
        "`eng.lift(..., memory_limit=None)` leaves it alone): DuckDB then spills partitions of the hash "
        "tables to its temporary directory. The peak resident memory of the process is the limit plus "
        "Python, the imports (numpy, pandas, scipy: about 230 MB) and what DuckDB holds outside its buffer "
        "manager."),
        "",
        ("Target (the issue): at most 10 s and 2 GB at 10M customers and 50M outcomes, within 1.5x of a "
        "hand-written DuckDB SQL join-and-aggregate that computes the same rates, measured in the same run."),
    ]
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--customers", type=float, default=1e7)
    parser.add_argument("--outcomes", type=float, default=5e7)
    parser.add_argument("--quick", action="store_true", help="100,000 customers and 500,000 outcomes")
    parser.add_argument("--work", default=str(HERE / "work" / "lift"))
    parser.add_argument("--out", default=str(HERE / "RESULTS_lift.md"))
    parser.add_argument("--child", nargs=4, metavar=("VARIANT", "DB", "CAMPAIGN_ID", "END"), help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.child:
        print(json.dumps(_child(*args.child)))
        return 0
    customers, outcomes = (100_000, 500_000) if args.quick else (int(args.customers), int(args.outcomes))
    result = run(customers, outcomes, Path(args.work))
    report(result, Path(args.out))
    print(f"wrote {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
