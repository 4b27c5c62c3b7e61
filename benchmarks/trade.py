"""``python -m benchmarks.trade``: the Huff model and 70 % trade areas, against plain numpy/scipy.

Two workloads over metro-clustered customers in New York (the generator of
:mod:`benchmarks.data`) and 1,000 stores:

- **Huff**: from the customers to every store's expected customers over
  the res-8 cells that hold them (cells, centres, WGS84 distances from every
  store to every cell centre, probabilities, expected customers);
- **trade areas**: from each customer's store (given, as a ``home_store``
  column would give it) to the 70 % trade area of every store (cells,
  customers per store and cell, distance order, cumulative share); then,
  apart, the nearest-store assignment and the polygons of all areas.

Each runs in a fresh process (``spawn``) for geotarget and for a
straightforward numpy/scipy/pandas version of the same computation (dense
matrices, h3-py in a loop for the cell centres, pandas group-bys), in the
same run; wall and CPU time and the process's peak RSS are recorded, and the two
answers are compared. Writes ``benchmarks/RESULTS_trade.md``.

Targets (issue 19): Huff for 1,000 stores over the res-8 cells of 10 M
customers within 30 s and 4 GB; 70 % trade areas for all 1,000 stores
within 10 s. ``--customers 20000 --stores 50`` runs in seconds.
"""

from __future__ import annotations

import argparse
import multiprocessing as mp
import os
import platform
import resource
import time
from datetime import UTC, datetime
from pathlib import Path

import numpy as np
import pandas as pd

HERE = Path(__file__).resolve().parent
RES = 8
SHARE = 0.7


def _data(n: int, n_stores: int, seed: int):
    from .data import _draw_metro

    rng = np.random.default_rng(seed)
    lat, lng = _draw_metro(rng, n)
    slat, slng = _draw_metro(rng, n_stores)
    attract = rng.uniform(1.0, 5.0, n_stores)
    home = rng.integers(0, n_stores, n)  # replaced by the nearest store below, shared by both sides
    return lat, lng, slat, slng, attract, home


def _rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0


# -- Huff ---------------------------------------------------------------------------------------------------


def huff_geotarget(lat, lng, slat, slng, attract):
    from geotarget.trade import huff_model
    from geotarget.trade.inputs import customer_cells

    cells, counts = np.unique(customer_cells(lat, lng, RES), return_counts=True)
    stores = pd.DataFrame({"store_id": np.arange(slat.size).astype(str), "lat": slat, "lng": slng, "brand": "",
                           "attractiveness": attract})
    model = huff_model(cells, counts.astype("float64"), stores, alpha=1.0, beta=2.0, res=RES)
    return model.stores["expected_demand"].to_numpy(), len(cells)


def huff_numpy(lat, lng, slat, slng, attract):
    import h3
    from pyproj import Geod

    cells, counts = np.unique(np.fromiter((h3.str_to_int(h3.latlng_to_cell(a, b, RES))
                                           for a, b in zip(lat.tolist(), lng.tolist())), "uint64", lat.size),
                              return_counts=True)
    centres = np.array([h3.cell_to_latlng(h3.int_to_str(int(c))) for c in cells])
    clat = np.repeat(centres[:, 0], slat.size)
    clng = np.repeat(centres[:, 1], slat.size)
    _, _, d = Geod(ellps="WGS84").inv(np.tile(slng, cells.size), np.tile(slat, cells.size), clng, clat)
    d = np.maximum(d.reshape(cells.size, slat.size), h3.average_hexagon_edge_length(RES, unit="m") / 2)
    u = attract[None, :] * d ** -2.0
    p = u / u.sum(axis=1, keepdims=True)
    return counts @ p, len(cells)


# -- trade areas ----------------------------------------------------------------------------------------------


def areas_geotarget(lat, lng, slat, slng, home):
    from geotarget.trade import trade_area_cells
    from geotarget.trade.inputs import customer_cells

    frame = trade_area_cells(home, customer_cells(lat, lng, RES), slat, slng, shares=[SHARE])
    area = frame[frame[f"in_{SHARE * 100:g}"]]
    return set(zip(area["store"].tolist(), area["cell"].tolist())), frame


def areas_numpy(lat, lng, slat, slng, home):
    import h3
    from pyproj import Geod

    from geotarget.geo.cells import latlng_to_cells

    df = pd.DataFrame({"store": home, "cell": latlng_to_cells(lat, lng, RES)})
    g = df.groupby(["store", "cell"]).size().rename("customers").reset_index()
    centres = np.array([h3.cell_to_latlng(h3.int_to_str(int(c))) for c in g["cell"].unique()])
    where = pd.Series(np.arange(len(centres)), index=g["cell"].unique())[g["cell"]].to_numpy()
    _, _, g["distance_m"] = Geod(ellps="WGS84").inv(slng[g["store"]], slat[g["store"]], centres[where, 1],
                                                    centres[where, 0])
    g = g.sort_values(["store", "distance_m", "cell"], kind="mergesort")
    g["cum"] = g.groupby("store")["customers"].cumsum()
    g["total"] = g.groupby("store")["customers"].transform("sum")
    need = np.ceil(np.round(SHARE * g["total"], 9))
    area = g[(g["cum"] - g["customers"]) < need]
    return set(zip(area["store"].tolist(), area["cell"].tolist()))


def nearest_numpy(lat, lng, slat, slng):
    """Nearest store on the sphere (k-d tree on unit vectors): what a plain scipy version does."""
    from scipy.spatial import cKDTree

    def unit(a, b):
        a, b = np.radians(a), np.radians(b)
        return np.column_stack([np.cos(a) * np.cos(b), np.cos(a) * np.sin(b), np.sin(a)])

    return cKDTree(unit(slat, slng)).query(unit(lat, lng), k=1)[1]


# -- runner -----------------------------------------------------------------------------------------------------


def _child(task: str, n: int, n_stores: int, seed: int, queue) -> None:
    try:
        lat, lng, slat, slng, attract, _ = _data(n, n_stores, seed)
        from geotarget.trade import nearest_store

        home, _ = nearest_store(lat, lng, slat, slng, with_distance=False)
        base = _rss_mb()
        out: dict = {"task": task, "data_rss_mb": base}
        cpu = time.process_time()
        t = time.perf_counter()
        if task == "huff geotarget":
            res, cells = huff_geotarget(lat, lng, slat, slng, attract)
            out["cells"] = cells
        elif task == "huff numpy":
            res, cells = huff_numpy(lat, lng, slat, slng, attract)
            out["cells"] = cells
        elif task == "areas geotarget":
            res, frame = areas_geotarget(lat, lng, slat, slng, home)
            out["seconds"], out["cpu_seconds"] = time.perf_counter() - t, time.process_time() - cpu
            from geotarget.trade import TradeAreas

            frame = frame.assign(store_id=frame["store"].astype(str), h3="")
            stores = pd.DataFrame({"store_id": np.arange(n_stores).astype(str), "lat": slat, "lng": slng})
            t2 = time.perf_counter()
            _ = TradeAreas(frame, stores, [SHARE], RES, "given").areas
            out["polygons_seconds"] = time.perf_counter() - t2
            t3 = time.perf_counter()
            nearest_store(lat, lng, slat, slng, with_distance=False)
            out["nearest_seconds"] = time.perf_counter() - t3
        elif task == "areas numpy":
            res = areas_numpy(lat, lng, slat, slng, home)
            out["seconds"], out["cpu_seconds"] = time.perf_counter() - t, time.process_time() - cpu
            t3 = time.perf_counter()
            near = nearest_numpy(lat, lng, slat, slng)
            out["nearest_seconds"] = time.perf_counter() - t3
            out["nearest_differs"] = int((near != home).sum())
        else:
            raise ValueError(task)
        out.setdefault("seconds", time.perf_counter() - t)
        out.setdefault("cpu_seconds", time.process_time() - cpu)
        out["peak_rss_mb"] = _rss_mb()
        out["answer"] = res if isinstance(res, set) else np.asarray(res).tolist()
        queue.put(out)
    except BaseException as exc:  # report, never hang the parent
        queue.put({"task": task, "error": f"{type(exc).__name__}: {exc}"})


def run_task(task: str, n: int, n_stores: int, seed: int) -> dict:
    ctx = mp.get_context("spawn")
    queue = ctx.Queue()
    proc = ctx.Process(target=_child, args=(task, n, n_stores, seed, queue))
    proc.start()
    out = queue.get()
    proc.join()
    return out


def compare(results: dict) -> dict:
    """How far the two sides' answers are apart."""
    out = {}
    a, b = results.get("huff geotarget", {}), results.get("huff numpy", {})
    if "answer" in a and "answer" in b:
        out["huff_max_abs_diff"] = float(np.max(np.abs(np.asarray(a["answer"]) - np.asarray(b["answer"]))))
    a, b = results.get("areas geotarget", {}), results.get("areas numpy", {})
    if "answer" in a and "answer" in b:
        out["areas_same_cells"] = a["answer"] == b["answer"]
        out["areas_cells"] = len(a["answer"])
    return out


def report(results: dict, checks: dict, n: int, n_stores: int) -> str:
    def row(name, r, target=None):
        if "error" in r:
            return f"| {name} | failed: {r['error']} | | | | |"
        return (f"| {name} | {r['seconds']:.2f} | {r['cpu_seconds']:.2f} | {r['peak_rss_mb']:,.0f} "
                f"| {r['peak_rss_mb'] - r['data_rss_mb']:,.0f} | {target or ''} |")

    g, p = results["huff geotarget"], results["huff numpy"]
    ag, an = results["areas geotarget"], results["areas numpy"]
    lines = [
        "## Trade areas and the Huff model",
        "",
        f"`python -m benchmarks.trade --customers {n} --stores {n_stores}`, "
        f"{datetime.now(UTC):%Y-%m-%d}, Python {platform.python_version()} on {os.cpu_count()} CPUs, load average "
        f"{os.getloadavg()[0]:.1f}. {n:,} metro-clustered customers in New York, {n_stores:,} stores; res-{RES} "
        f"cells ({g.get('cells', 0):,} hold customers). Each row is one fresh process; seconds are wall time of the "
        "computation alone (data made before the clock starts); peak RSS is the whole process, and the column "
        "after it is the peak above the RSS once the data was made. The plain version is the same computation "
        "written the obvious way: h3-py in a loop, dense pyproj distances, a dense probability matrix, pandas "
        "group-bys. CPU seconds count every thread of the process; on a shared machine they are the steadier figure "
        "(wall time includes waiting for a CPU: see the load average).",
        "",
        "| workload | wall s | CPU s | peak RSS (MB) | above the data (MB) | target |",
        "| --- | ---: | ---: | ---: | ---: | --- |",
        row("Huff, geotarget (`huff_model`)", g, "30 s, 4 GB at 10 M / 1,000 stores"),
        row("Huff, plain numpy/pyproj", p),
        row(f"{SHARE:.0%} trade areas, geotarget (`trade_area_cells`)", ag, "10 s at 10 M / 1,000 stores"),
        row(f"{SHARE:.0%} trade areas, plain pandas", an),
        "",
    ]
    if "error" not in g and "error" not in p:
        lines.append(f"Huff: geotarget {p['seconds'] / g['seconds']:.1f}x the plain version's speed in wall time, "
                     f"{p['cpu_seconds'] / max(g['cpu_seconds'], 1e-9):.1f}x in CPU time; expected "
                     f"customers per store agree within {checks.get('huff_max_abs_diff', float('nan')):.2e}.")
    if "error" not in ag and "error" not in an:
        lines.append(f"Trade areas: geotarget {an['seconds'] / ag['seconds']:.1f}x the plain version's speed in wall "
                     f"time, {an['cpu_seconds'] / max(ag['cpu_seconds'], 1e-9):.1f}x in CPU time; "
                     f"the same {checks.get('areas_cells', 0):,} (store, cell) pairs: "
                     f"{'yes' if checks.get('areas_same_cells') else 'NO'}. Apart from that: polygons of all "
                     f"{n_stores:,} areas {ag['polygons_seconds']:.2f} s; geodesic nearest-store assignment "
                     f"{ag['nearest_seconds']:.2f} s (geotarget, exact on WGS84) against "
                     f"{an['nearest_seconds']:.2f} s for a k-d tree on the sphere, which picks another store for "
                     f"{an['nearest_differs']:,} customers.")
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m benchmarks.trade", description=__doc__.splitlines()[0])
    p.add_argument("--customers", type=float, default=1e7, help="customers (default 1e7)")
    p.add_argument("--stores", type=int, default=1000, help="stores (default 1000)")
    p.add_argument("--seed", type=int, default=19)
    p.add_argument("--out", type=Path, default=HERE / "RESULTS_trade.md")
    args = p.parse_args(argv)
    n = int(args.customers)
    results = {}
    for task in ("huff geotarget", "huff numpy", "areas geotarget", "areas numpy"):
        results[task] = run_task(task, n, args.stores, args.seed)
        r = results[task]
        print(task, r.get("error") or f"{r['seconds']:.2f} s ({r['cpu_seconds']:.2f} s CPU), "
                                      f"peak {r['peak_rss_mb']:,.0f} MB", flush=True)
    checks = compare(results)
    text = report(results, checks, n, args.stores)
    args.out.write_text(text)
    print(text)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
