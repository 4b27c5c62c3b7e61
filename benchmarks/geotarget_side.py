"""geotarget's side of every workload, written against its public API.

Parts of the API land at different times: any workload whose entry point is
missing is reported as "not yet available" instead of failing the run.
"""

from __future__ import annotations

import json
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pandas as pd

from .data import SINGLE_STORE, Dataset, nta_path

__all__ = ["GeotargetPeer", "measure_ingest"]

LAYER = "nyc_nta"


def measure_ingest(ds: Dataset, db: Path, *, log=print) -> dict:
    """Ingest the dataset's Parquet into ``db`` in a child process; its report and peak RSS."""
    root = Path(__file__).resolve().parents[1]
    done = subprocess.run([sys.executable, "-m", "benchmarks.ingest_child", str(ds.customers_parquet), str(db)],
                          capture_output=True, text=True, cwd=root)
    if done.returncode != 0:
        raise RuntimeError(f"geotarget ingest failed:\n{done.stderr[-2000:]}")
    figures = json.loads(done.stdout.strip().splitlines()[-1])
    log(f"  geotarget ingest: {figures['rows_per_second']:,.0f} rows/s, "
        f"peak RSS {figures['peak_rss_bytes'] / 2**30:.2f} GiB")
    return figures


def _heat_frame(heat) -> pd.DataFrame:
    """The ``cell`` (uint64) and ``count`` columns of a heatmap result, whatever their names."""
    import h3

    cells = heat.cells
    cell_col = next(c for c in ("cell", "h3", "h3_cell") if c in cells.columns)
    count_col = next(c for c in ("count", "customers", "value") if c in cells.columns)
    values = cells[cell_col]
    if values.dtype == object or pd.api.types.is_string_dtype(values.dtype):
        values = np.array([h3.str_to_int(v) for v in values], dtype="uint64")
    return pd.DataFrame({"cell": np.asarray(values, dtype="uint64"), "count": cells[count_col].to_numpy()})


class GeotargetPeer:
    """geotarget over a database its own ingest built."""

    name = "geotarget"

    def __init__(self, db: Path, ds: Dataset, ntas):
        import geotarget

        self.eng = geotarget.open(db)
        t0 = time.perf_counter()
        self.eng.ingest_stores(str(ds.stores_csv), id_col="store_id", name_col="name")
        self.setup_seconds = {"stores": time.perf_counter() - t0}
        self.ntas = ntas
        if ntas is not None:
            t1 = time.perf_counter()
            self.eng.ingest_regions(str(nta_path()), layer=LAYER, id_col="NTA2020", name_col="NTAName")
            self.setup_seconds["NTA regions"] = time.perf_counter() - t1
        self.missing: dict[str, str] = {}

    # -- workloads -----------------------------------------------------------
    def single(self, lat: float, lng: float, radius_m: float) -> pd.DataFrame:
        return self.eng.audience(stores=[SINGLE_STORE[0]], radius_m=radius_m).to_pandas()

    def many(self, radius_m: float) -> pd.DataFrame:
        return self.eng.audience(stores="all", radius_m=radius_m).to_pandas()

    def regions(self, names: list[str]) -> pd.DataFrame:
        return self.eng.audience(region_layer=LAYER, regions=list(names)).to_pandas()

    def heatmap(self, res: int, k_min: int):
        """Exactly what a user calls; the benchmark reads the answer with :func:`_heat_frame`, untimed."""
        return self.eng.heatmap(res=res, metric="count", k_min=k_min)

    def tasks(self) -> dict:
        tasks = {}
        if hasattr(self.eng, "audience"):
            tasks["single"] = [("geotarget audience", self.single)]
            tasks["many"] = [("geotarget audience (all stores)", self.many)]
            if self.ntas is not None:
                tasks["regions"] = [("geotarget region audience", self.regions)]
        else:
            for w in ("single", "many", "regions"):
                self.missing[w] = "Engine.audience is not yet available in this geotarget"
        if hasattr(self.eng, "heatmap"):
            tasks["heatmap"] = [("geotarget heatmap", self.heatmap, _heat_frame)]
        else:
            self.missing["heatmap"] = "Engine.heatmap is not yet available in this geotarget"
        return tasks

    def close(self) -> None:
        self.eng.close()
