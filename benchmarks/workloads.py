"""The workloads: timing over repeated warm runs, and checking every answer against the truth.

Each (workload, peer variant) is run once to warm up; that first answer is the
one checked against the truth. A task is ``(label, fn)`` or ``(label, fn,
as_frame)``: only ``fn`` is timed, and ``as_frame`` turns its answer into the
frame the check reads (geotarget's heatmap returns a ``HeatmapResult``, which
is what its users get). Timed runs follow, up to ``repeats`` of them,
stopping early once ``budget_s`` is spent (keeping at least two). A variant
whose warm-up alone takes longer than ``slow_s`` is timed by that single run.
"""

from __future__ import annotations

import os
import statistics
import time
import traceback
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd

from . import truth
from .data import RADIUS_M, SINGLE_STORE, Dataset, ids_to_rows

__all__ = ["Settings", "TimedOut", "Timing", "measure", "run_dataset", "run_map"]

HEAT_RES = 8
K_MIN = 10


@dataclass
class Settings:
    repeats: int = 5
    budget_s: float = 60.0
    slow_s: float = 240.0
    nearest_sample: int = 2000
    timeout_s: float = 900.0  # a peer that can stop a query (PostGIS) stops it after this long


class TimedOut(Exception):
    """A peer gave up on a query after ``limit_s`` seconds; its time is a lower bound."""

    def __init__(self, limit_s: float):
        super().__init__(f"stopped after {limit_s:.0f} s")
        self.limit_s = limit_s


@dataclass
class Timing:
    runs: list[float] = field(default_factory=list)
    warmup: float = 0.0

    @property
    def median(self) -> float:
        return statistics.median(self.runs)

    def as_dict(self) -> dict:
        return {"runs": self.runs, "warmup": self.warmup, "median": self.median,
                "min": min(self.runs), "max": max(self.runs)}


def measure(fn, args: tuple, cfg: Settings):
    """Warm up (keeping the answer), then time repeated runs."""
    t0 = time.perf_counter()
    answer = fn(*args)
    timing = Timing(warmup=time.perf_counter() - t0)
    if timing.warmup > cfg.slow_s:
        timing.runs = [timing.warmup]
        return answer, timing
    spent = 0.0
    while len(timing.runs) < cfg.repeats and not (spent > cfg.budget_s and len(timing.runs) >= 2):
        t0 = time.perf_counter()
        fn(*args)
        timing.runs.append(time.perf_counter() - t0)
        spent += timing.runs[-1]
    return answer, timing


class _Truth:
    """Truth answers for one dataset, computed on first use."""

    def __init__(self, ds: Dataset, ntas):
        self.ds, self.ntas = ds, ntas
        self._cache: dict[str, object] = {}

    def get(self, workload: str):
        if workload not in self._cache:
            ds = self.ds
            if workload == "single":
                value = truth.single_truth(ds.lat, ds.lng, SINGLE_STORE[1], SINGLE_STORE[2], RADIUS_M)
            elif workload == "many":
                value = truth.many_truth(ds.lat, ds.lng, ds.stores["lat"], ds.stores["lng"], RADIUS_M)
            elif workload == "regions":
                value = truth.region_truth(ds.lat, ds.lng, list(self.ntas.geometry))
            else:  # the cell containing each point, as h3-py's latlng_to_cell names it (h3ronpy agrees)
                value = truth.heatmap_truth(ds.lat, ds.lng, HEAT_RES, K_MIN)
            self._cache[workload] = value
        return self._cache[workload]


def _args(workload: str, ds: Dataset, ntas) -> tuple:
    return {
        "single": (SINGLE_STORE[1], SINGLE_STORE[2], RADIUS_M),
        "many": (RADIUS_M,),
        "regions": (list(ntas["NTAName"]) if ntas is not None else [],),
        "heatmap": (HEAT_RES, K_MIN),
    }[workload]


def _check(workload: str, answer: pd.DataFrame, ds: Dataset, truths: _Truth, cfg: Settings) -> dict:
    """Agreement of one answer with the truth, as a plain dict."""
    if workload == "heatmap":
        cells, counts = truths.get("heatmap")
        return truth.compare_heatmap(answer["cell"], answer["count"], cells, counts).as_dict()
    rows = ids_to_rows(answer["customer_id"])
    if workload == "single":
        offset = truth.radius_offset(ds.lat, ds.lng, [SINGLE_STORE[1]], [SINGLE_STORE[2]], RADIUS_M)
        out = truth.compare_rows(rows, truths.get("single"), offset).as_dict()
        out["max_distance_error_m"] = truth.distance_error(rows, answer["distance_m"], ds.lat, ds.lng,
                                                           SINGLE_STORE[1], SINGLE_STORE[2])
        return out
    if workload == "many":
        offset = truth.radius_offset(ds.lat, ds.lng, ds.stores["lat"], ds.stores["lng"], RADIUS_M, cap=2000)
        out = truth.compare_rows(rows, truths.get("many"), offset).as_dict()
        out |= truth.nearest_check(rows, answer["store_id"], answer["distance_m"], ds.lat, ds.lng, ds.stores,
                                   sample=cfg.nearest_sample)
        return out
    offset = truth.region_offset(ds.lat, ds.lng, list(truths.ntas.geometry))
    return truth.compare_rows(np.unique(rows), truths.get("regions"), offset).as_dict()


def run_dataset(ds: Dataset, peers: list, ntas, cfg: Settings, *, log=print) -> list[dict]:
    """Every workload of one dataset over every peer; one record per (workload, variant)."""
    truths = _Truth(ds, ntas)
    records = []
    for workload in ("single", "many", "regions", "heatmap"):
        if workload == "regions" and ntas is None:
            continue
        args = _args(workload, ds, ntas)
        for peer in peers:
            for label, fn, *as_frame in peer.tasks().get(workload, []):
                rec = {"dataset": ds.key, "distribution": ds.distribution, "size": ds.size,
                       "workload": workload, "peer": peer.name, "variant": label}
                try:
                    answer, timing = measure(fn, args, cfg)
                    if as_frame:  # the call a user makes is timed; reading its answer for the check is not
                        answer = as_frame[0](answer)
                    rec["timing"] = timing.as_dict()
                    rec["load_average"] = os.getloadavg()[0]  # other work on the machine skews timings
                    rec["count"] = len(answer)
                    rec["agreement"] = _check(workload, answer, ds, truths, cfg)
                    del answer
                    log(f"  {workload:8s} {label:52s} median {timing.median:9.4f} s  n={len(timing.runs)}"
                        f"  count {rec['count']:>10,}  exact={rec['agreement']['exact']}")
                except TimedOut as exc:
                    rec["timed_out_s"] = exc.limit_s
                    log(f"  {workload:8s} {label:52s} TIMED OUT after {exc.limit_s:.0f} s")
                except Exception as exc:  # noqa: BLE001 - a failing peer is reported, not fatal
                    rec["error"] = f"{type(exc).__name__}: {str(exc).splitlines()[0] if str(exc) else ''}"
                    log(f"  {workload:8s} {label:52s} FAILED {rec['error']}")
                    log(traceback.format_exc(limit=4))
                records.append(rec)
            for workload_missing, why in getattr(peer, "missing", {}).items():
                if workload_missing == workload:
                    records.append({"dataset": ds.key, "distribution": ds.distribution, "size": ds.size,
                                    "workload": workload, "peer": peer.name, "variant": peer.name,
                                    "unavailable": why})
    return records


def _naive_folium(cells: np.ndarray, counts: np.ndarray, path: Path) -> None:
    """The peer for map rendering: one folium GeoJson feature per hex, as a user would write it."""
    import folium
    import h3

    features = []
    for cell, count in zip(cells.tolist(), counts.tolist()):
        ring = [[lng, lat] for lat, lng in h3.cell_to_boundary(h3.int_to_str(cell))]
        features.append({"type": "Feature", "properties": {"count": int(count)},
                         "geometry": {"type": "Polygon", "coordinates": [ring + ring[:1]]}})
    fmap = folium.Map(location=[40.7, -73.95], zoom_start=11, tiles=None)
    folium.GeoJson({"type": "FeatureCollection", "features": features},
                   tooltip=folium.GeoJsonTooltip(["count"])).add_to(fmap)
    fmap.save(str(path))


def run_map(eng, out_dir: Path, cfg: Settings, *, res: int = 9, log=print) -> list[dict]:
    """Render a heatmap of about 20,000 hexes: geotarget.maps against naive folium."""
    records = []
    out_dir.mkdir(parents=True, exist_ok=True)
    try:
        from geotarget.maps import heatmap_map
    except ImportError as exc:
        return [{"workload": "map", "peer": "geotarget", "variant": "geotarget.maps.heatmap_map",
                 "unavailable": f"geotarget.maps.heatmap_map is not yet available ({exc})"}]
    from .geotarget_side import _heat_frame

    heat = eng.heatmap(res=res, metric="count", k_min=K_MIN)
    frame = _heat_frame(heat)
    variants = [
        ("geotarget.maps.heatmap_map", "geotarget", out_dir / "geotarget_heatmap.html",
         lambda p: heatmap_map(heat, tiles=None).save(str(p))),
        ("naive folium GeoJson, one feature per hex", "folium",
         out_dir / "folium_heatmap.html",
         lambda p: _naive_folium(frame["cell"].to_numpy(), frame["count"].to_numpy(), p)),
    ]
    for label, peer, path, fn in variants:
        rec = {"workload": "map", "peer": peer, "variant": label, "count": len(frame), "res": res}
        try:
            _, timing = measure(fn, (path,), cfg)
            rec["timing"] = timing.as_dict()
            rec["html_bytes"] = path.stat().st_size
            log(f"  map      {label:52s} median {timing.median:9.4f} s  {rec['html_bytes'] / 1e6:.1f} MB"
                f"  hexes {len(frame):,}")
        except Exception as exc:  # noqa: BLE001
            rec["error"] = f"{type(exc).__name__}: {exc}"
            log(f"  map      {label} FAILED {rec['error']}")
        records.append(rec)
    return records
