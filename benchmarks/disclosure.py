"""``python -m benchmarks.disclosure``: what the consistent heatmap suppression costs.

Builds a database of clustered customers (with a spend column) and a layer
of neighbourhood polygons, then times, side by side in one process:

- ``plain``: ``Engine.heatmap(res, metric)``, the per-cell k floor only;
- ``published``: ``Engine.disclosure().heatmap(res, metric)``, the
  suppression across every policy resolution and region layer.

Two situations:

- **warm**: the atoms of this data version are already computed (every
  heatmap of a data version after its first);
- **first after a write**: the first heatmap after each kind of write, plain
  and published, each after its own write of the same kind, each including
  everything the write makes it pay (the customer index read again, each
  customer's standard cell, and for the published one the atoms). The
  writes: a suppression list entry (no customer moves), an upsert that
  moves 1% of the customers, and a region layer replaced by a new one.

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


class _Writes:
    """The writes measured: each call moves the data version (so the next heatmap is the first after it)."""

    def __init__(self, eng, customers: int, seed: int = 7):
        import numpy as np

        self.eng, self.seed, self.calls = eng, seed, 0
        self.ids = eng.store.frame("SELECT customer_id, lat, lng FROM customers")
        self.moved = max(1, customers // 100)
        self.rng = np.random.default_rng(seed)

    def suppression(self) -> None:
        self.calls += 1
        self.eng.ingest_suppressions([f"benchmark-nobody-{self.calls}"])

    def upsert(self) -> None:
        """1% of the customers move up to about 300 m (a partial upsert of id, lat, lng)."""
        pick = self.ids.sample(self.moved, random_state=int(self.rng.integers(1 << 31)))
        frame = pick.assign(lat=pick["lat"] + self.rng.uniform(-0.003, 0.003, len(pick)),
                            lng=pick["lng"] + self.rng.uniform(-0.003, 0.003, len(pick)))
        self.eng.ingest_customers(frame)

    def layer(self) -> None:
        from geotarget.sample import sample_neighborhoods

        self.calls += 1
        self.eng.ingest_regions(sample_neighborhoods(60, seed=self.seed + self.calls), layer="hoods", id_col="hood_id")


WRITES = {"suppression list": "suppression", "upsert moving 1%": "upsert", "region layer replaced": "layer"}


def measure(eng, res: int, metric: str, repeat: int) -> dict:
    guard = eng.disclosure()
    eng.heatmap(res, metric)  # warm the customer index
    plain = _time(lambda: eng.heatmap(res, metric), repeat)
    guard.heatmap(res, metric)
    warm = _time(lambda: guard.heatmap(res, metric), repeat)
    published = guard.heatmap(res, metric)
    return {"res": res, "metric": metric, "plain_s": plain, "warm_s": warm, "warm_ratio": warm / plain,
            "cells": len(published.frame), "suppressed": published.suppressed_customers}


def _first(write, fn) -> float:
    write()
    start = time.perf_counter()
    fn()
    return time.perf_counter() - start


def measure_after_write(eng, writes: _Writes, res: int, metric: str, repeat: int) -> list[dict]:
    """The first plain and the first published heatmap after each kind of write (each after its own write)."""
    from geotarget.maps.atoms import atom_keys_reused

    guard = eng.disclosure()
    guard.heatmap(res, metric)  # the atoms of the current data version exist, as in a running service
    rows = []
    for label, name in WRITES.items():
        write = getattr(writes, name)
        plains, pubs, reused = [], [], []
        for _ in range(max(1, repeat)):
            plains.append(_first(write, lambda: eng.heatmap(res, metric)))
            pubs.append(_first(write, lambda: guard.heatmap(res, metric)))
            reused.append(atom_keys_reused(eng))
        plain, pub = statistics.median(plains), statistics.median(pubs)
        rows.append({"write": label, "res": res, "metric": metric, "plain_s": plain, "published_s": pub,
                     "ratio": pub / plain, "reused": statistics.median(reused)})
    return rows


def report(rows: list[dict], after: list[dict], customers: int, policy) -> str:
    lines = [
        f"## Cost of the consistent heatmap suppression: policy res {', '.join(map(str, policy.heatmap_res))}",
        "",
        f"{customers:,} clustered customers, 60 neighbourhood polygons; policy resolutions "
        f"{', '.join(map(str, policy.heatmap_res))}, k = {policy.k_min}. Median of repeated runs, one process; "
        f"{platform.machine()}, {os.cpu_count()} cores (load average {os.getloadavg()[0]:.1f}).",
        "",
        "### Warm (every heatmap of a data version after its first)",
        "",
        "| res | metric | plain | published | ratio | cells shown | customers left out |",
        "|---|---|---|---|---|---|---|",
    ]
    for r in rows:
        lines.append(f"| {r['res']} | {r['metric']} | {r['plain_s'] * 1e3:.1f} ms | {r['warm_s'] * 1e3:.1f} ms | "
                     f"{r['warm_ratio']:.2f}x | {r['cells']:,} | {r['suppressed']:,} |")
    lines += ["", "### First heatmap after a write", "",
              "| write | res | metric | plain, first after the write | published, first after the write | ratio "
              "| customers whose atom keys were carried over |",
              "|---|---|---|---|---|---|---|"]
    for r in after:
        lines.append(f"| {r['write']} | {r['res']} | {r['metric']} | {r['plain_s'] * 1e3:.0f} ms | "
                     f"{r['published_s'] * 1e3:.0f} ms | {r['ratio']:.2f}x | {r['reused']:,.0f} of {customers:,} |")
    lines += ["", "Warm: the atoms and kept customers of this data version are cached with the customer index. A "
              "published count is everyone's count per cell less the left-out customers' (both from the kept cell "
              "codes); a published value metric aggregates on the snapshot, its column joined to it once per data "
              "version, while a plain one reads and indexes every customer's coordinates and value in DuckDB each "
              "time.", "",
              "First after a write: the plain count reads the customer index again and indexes every customer "
              "into cells at its resolution; the plain value metric reads and indexes coordinates and values from "
              "DuckDB as always. The published one reads the customer index again, carries each customer's atom "
              "keys (standard cells at every policy resolution, region per layer) from the previous snapshot when "
              "its point is unchanged, computes them for moved and new customers (a replaced layer's region of "
              "every customer is assigned by the layer's write itself, which is outside the timing), hands the standard cells to "
              "the heatmap, and for a value metric joins the column to the snapshot.", ""]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(prog="python -m benchmarks.disclosure", description=__doc__.splitlines()[0])
    p.add_argument("--customers", type=int, default=1_000_000)
    p.add_argument("--repeat", type=int, default=7)
    p.add_argument("--after-repeat", type=int, default=3, help="writes per kind, metric and path (plain, published)")
    p.add_argument("--policies", default="8;7,8,9",
                   help="policies to measure, ';'-separated, each the published resolutions (8 is the default)")
    p.add_argument("--out", type=Path, default=HERE / "RESULTS_disclosure.md")
    args = p.parse_args(argv)
    eng = build(args.customers)
    writes = _Writes(eng, args.customers)
    sections = []
    try:
        for spec in args.policies.split(";"):
            eng.set_policy(heatmap_res=spec)
            policy = eng.policy()
            rows = [measure(eng, res, metric, args.repeat) for res in policy.heatmap_res
                    for metric in ("count", "sum:spend_12m")]
            res = 8 if 8 in policy.heatmap_res else policy.heatmap_res[0]
            after = [row for metric in ("count", "sum:spend_12m")
                     for row in measure_after_write(eng, writes, res, metric, args.after_repeat)]
            sections.append(report(rows, after, args.customers, policy))
    finally:
        eng.close()
    text = "\n".join(sections)
    args.out.write_text(text)
    print(text)


if __name__ == "__main__":
    main()
