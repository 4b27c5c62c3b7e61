"""``python -m benchmarks.disclosure``: what the consistent heatmap suppression costs.

Builds a database of clustered customers (with a spend column) and a layer
of neighbourhood polygons, then times, side by side in one process:

- ``plain``: ``Engine.heatmap(res, metric)``, the per-cell k floor only;
- ``published, warm``: ``Engine.disclosure().heatmap(res, metric)``, the
  suppression across every policy resolution and region layer, its atoms
  already computed for this data version (every heatmap after the first);
- ``published, cold``: the same right after a write, when the atoms are
  computed again (the first heatmap of each data version).

The target (issue 15): a published heatmap at most 2x the plain one. Each
figure is the median of ``--repeat`` runs. Writes
``benchmarks/RESULTS_disclosure.md``, one section per policy (``--policies``).
"""

from __future__ import annotations

import argparse
import os
import platform
import statistics
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent


def _time(fn, repeat: int) -> float:
    times = []
    for _ in range(repeat):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def build(customers: int, seed: int = 7):
    """An in-memory engine with clustered customers, stores and 60 neighbourhoods."""
    import geotarget
    from geotarget.sample import sample_customers, sample_neighborhoods

    eng = geotarget.open(":memory:")
    frame = sample_customers(customers, seed=seed)
    eng.ingest_customers(frame[["customer_id", "lat", "lng", "spend_12m", "opted_out"]])
    eng.ingest_regions(sample_neighborhoods(60, seed=seed), layer="hoods", id_col="hood_id")
    return eng


def _touch(eng) -> None:
    """A write that moves the data version (the atoms are then computed again)."""
    eng.ingest_suppressions(["benchmark-nobody"])


def measure(eng, res: int, metric: str, repeat: int) -> dict:
    guard = eng.disclosure()
    eng.heatmap(res, metric)  # warm the customer index
    plain = _time(lambda: eng.heatmap(res, metric), repeat)
    guard.heatmap(res, metric)
    warm = _time(lambda: guard.heatmap(res, metric), repeat)
    colds = []
    for _ in range(max(1, repeat // 2)):
        _touch(eng)
        eng.heatmap(res, metric)  # the index rebuild is paid by both: leave it out of the cold figure
        start = time.perf_counter()
        guard.heatmap(res, metric)
        colds.append(time.perf_counter() - start)
    cold = statistics.median(colds)
    published = guard.heatmap(res, metric)
    return {"res": res, "metric": metric, "plain_s": plain, "warm_s": warm, "cold_s": cold,
            "warm_ratio": warm / plain, "cold_ratio": cold / plain, "cells": len(published.frame),
            "suppressed": published.suppressed_customers}


def report(rows: list[dict], customers: int, policy) -> str:
    lines = [
        f"## Cost of the consistent heatmap suppression: policy res {', '.join(map(str, policy.heatmap_res))}",
        "",
        f"{customers:,} clustered customers, 60 neighbourhood polygons; policy resolutions "
        f"{', '.join(map(str, policy.heatmap_res))}, k = {policy.k_min}. Median of repeated runs, one process; "
        f"{platform.machine()}, {os.cpu_count()} cores (load average {os.getloadavg()[0]:.1f}).",
        "",
        "| res | metric | plain | published, warm | ratio | published, cold | ratio | cells shown "
        "| customers left out |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    for r in rows:
        lines.append(f"| {r['res']} | {r['metric']} | {r['plain_s'] * 1e3:.1f} ms | {r['warm_s'] * 1e3:.1f} ms | "
                     f"{r['warm_ratio']:.2f}x | {r['cold_s'] * 1e3:.0f} ms | {r['cold_ratio']:.1f}x | "
                     f"{r['cells']:,} | {r['suppressed']:,} |")
    lines += ["", "Warm: the atoms of this data version are cached with the customer index, so a published "
              "heatmap aggregates only the kept customers on the same path as a plain one. Cold: the first "
              "heatmap after a write computes the atoms (an H3 cell per customer per policy resolution and a "
              "region per customer per layer).", ""]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(prog="python -m benchmarks.disclosure", description=__doc__.splitlines()[0])
    p.add_argument("--customers", type=int, default=1_000_000)
    p.add_argument("--repeat", type=int, default=7)
    p.add_argument("--policies", default="8;7,8,9",
                   help="policies to measure, ';'-separated, each the published resolutions (8 is the default)")
    p.add_argument("--out", type=Path, default=HERE / "RESULTS_disclosure.md")
    args = p.parse_args(argv)
    eng = build(args.customers)
    sections = []
    try:
        for spec in args.policies.split(";"):
            eng.set_policy(heatmap_res=spec)
            policy = eng.policy()
            rows = [measure(eng, res, metric, args.repeat) for res in policy.heatmap_res
                    for metric in ("count", "sum:spend_12m")]
            sections.append(report(rows, args.customers, policy))
    finally:
        eng.close()
    text = "\n".join(sections)
    args.out.write_text(text)
    print(text)


if __name__ == "__main__":
    main()
