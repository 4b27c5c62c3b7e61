"""Seeded benchmark data: customers (uniform or metro-clustered), stores, NTA polygons.

Everything is written once under ``benchmarks/work/data`` and reused while the
seed, size and distribution are the same. Customer ids are ``c`` followed by
the zero-padded row number, so any peer's answer maps back to row positions
with one vectorized parse (:func:`ids_to_rows`).
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq

__all__ = [
    "BBOX",
    "DISTRIBUTIONS",
    "Dataset",
    "RADIUS_M",
    "SINGLE_STORE",
    "make_dataset",
    "ids_to_rows",
    "largest_ntas",
    "nta_path",
]

#: (min_lat, min_lng, max_lat, max_lng): the New York City bounding box.
BBOX = (40.4774, -74.2591, 40.9176, -73.7004)

#: Two miles in metres, the radius of every radius workload.
RADIUS_M = 3218.688

#: The store of the single-store workload, placed at Times Square in every dataset.
SINGLE_STORE = ("S0001", 40.7580, -73.9855)

DISTRIBUTIONS = ("uniform", "clustered")

N_STORES = 1000

# Metro model: (lat, lng, share of customers, sigma in km). Dense centres, a
# broad suburban spread around Manhattan, and a thin uniform rural scatter.
_CENTRES = [
    (40.7540, -73.9840, 0.10, 2.0),   # Midtown
    (40.7090, -74.0090, 0.05, 1.2),   # Financial District
    (40.6900, -73.9850, 0.06, 2.0),   # Downtown Brooklyn
    (40.7130, -73.9560, 0.05, 1.8),   # Williamsburg
    (40.7590, -73.8300, 0.05, 2.2),   # Flushing
    (40.7020, -73.8010, 0.04, 2.5),   # Jamaica
    (40.8610, -73.8900, 0.05, 2.5),   # Fordham
    (40.7180, -74.0470, 0.04, 1.8),   # Jersey City
    (40.6400, -74.0770, 0.02, 2.0),   # St. George
    (40.7720, -73.9300, 0.04, 1.8),   # Astoria
    (40.6500, -73.9500, 0.08, 4.0),   # Flatbush
]
_SUBURB_SHARE = 0.37  # broad Gaussian around Midtown
_SUBURB_SIGMA_KM = 14.0
_KM_PER_DEG_LAT = 111.0


def _km_per_deg_lng(lat: float) -> float:
    return _KM_PER_DEG_LAT * np.cos(np.radians(lat))


def _inside(lat: np.ndarray, lng: np.ndarray) -> np.ndarray:
    return (lat >= BBOX[0]) & (lat <= BBOX[2]) & (lng >= BBOX[1]) & (lng <= BBOX[3])


def _draw_uniform(rng: np.random.Generator, n: int) -> tuple[np.ndarray, np.ndarray]:
    return rng.uniform(BBOX[0], BBOX[2], n), rng.uniform(BBOX[1], BBOX[3], n)


def _draw_metro(rng: np.random.Generator, n: int) -> tuple[np.ndarray, np.ndarray]:
    """Metro-like points; draws outside the box are redrawn, not clipped."""
    lat = np.empty(0)
    lng = np.empty(0)
    while lat.size < n:
        want = int((n - lat.size) * 1.25) + 16
        centres = _CENTRES + [(40.7540, -73.9840, _SUBURB_SHARE, _SUBURB_SIGMA_KM)]
        shares = np.array([c[2] for c in centres])
        pick = rng.choice(len(centres) + 1, size=want, p=np.append(shares, 1.0 - shares.sum()))
        a = np.empty(want)
        b = np.empty(want)
        for i, (clat, clng, _, sigma_km) in enumerate(centres):
            m = pick == i
            a[m] = rng.normal(clat, sigma_km / _KM_PER_DEG_LAT, m.sum())
            b[m] = rng.normal(clng, sigma_km / _km_per_deg_lng(clat), m.sum())
        m = pick == len(centres)
        a[m], b[m] = _draw_uniform(rng, int(m.sum()))
        keep = _inside(a, b)
        lat = np.concatenate([lat, a[keep]])
        lng = np.concatenate([lng, b[keep]])
    return lat[:n], lng[:n]


def _draw(distribution: str, rng: np.random.Generator, n: int) -> tuple[np.ndarray, np.ndarray]:
    if distribution == "uniform":
        lat, lng = _draw_uniform(rng, n)
    elif distribution == "clustered":
        lat, lng = _draw_metro(rng, n)
    else:
        raise ValueError(f"unknown distribution {distribution!r}; use one of {DISTRIBUTIONS}")
    # 7 decimals is about 1 cm: the precision real customer files carry.
    return np.round(lat, 7), np.round(lng, 7)


@dataclass
class Dataset:
    """One benchmark dataset, with its files and in-memory columns."""

    distribution: str
    size: int
    seed: int
    customers_parquet: Path
    stores_csv: Path
    lat: np.ndarray
    lng: np.ndarray
    stores: pd.DataFrame

    @property
    def key(self) -> str:
        stores = "" if len(self.stores) == N_STORES else f"_st{len(self.stores)}"
        return f"{self.distribution}_{self.size}_s{self.seed}{stores}"

    @property
    def customer_ids(self) -> np.ndarray:
        width = len(str(self.size))
        return np.char.add("c", np.char.zfill(np.arange(self.size).astype(str), width))


def _customer_id_array(n: int) -> pa.Array:
    width = len(str(n))
    return pa.array(np.char.add("c", np.char.zfill(np.arange(n).astype(str), width)).astype(object), pa.string())


def make_dataset(work: Path, distribution: str, size: int, *, seed: int = 20240601,
                 n_stores: int = N_STORES) -> Dataset:
    """Generate (or reuse) one dataset under ``work / 'data'``."""
    folder = Path(work) / "data"
    folder.mkdir(parents=True, exist_ok=True)
    key = f"{distribution}_{size}_s{seed}"
    customers = folder / f"customers_{key}.parquet"
    stores_csv = folder / f"stores_{key}_{n_stores}.csv"
    # Distinct streams for customers and stores, stable across sizes.
    rng_c = np.random.default_rng([seed, size, DISTRIBUTIONS.index(distribution), 1])
    rng_s = np.random.default_rng([seed, DISTRIBUTIONS.index(distribution), 2])
    s_lat, s_lng = _draw(distribution, rng_s, n_stores)
    s_lat[0], s_lng[0] = SINGLE_STORE[1], SINGLE_STORE[2]
    stores = pd.DataFrame({
        "store_id": [f"S{i + 1:04d}" for i in range(n_stores)],
        "name": [f"Store {i + 1}" for i in range(n_stores)],
        "lat": s_lat,
        "lng": s_lng,
    })
    if not stores_csv.exists():
        stores.to_csv(stores_csv, index=False)
    if customers.exists():
        table = pq.read_table(customers, columns=["lat", "lng"])
        lat = table.column("lat").to_numpy()
        lng = table.column("lng").to_numpy()
    else:
        lat, lng = _draw(distribution, rng_c, size)
        tier = rng_c.choice(np.array(["bronze", "silver", "gold"], dtype=object), size, p=[0.6, 0.3, 0.1])
        table = pa.table({
            "customer_id": _customer_id_array(size),
            "lat": lat,
            "lng": lng,
            "tier": pa.array(tier, pa.string()),
            "spend": np.round(rng_c.gamma(2.0, 60.0, size), 2),
        })
        tmp = customers.with_suffix(".tmp")
        pq.write_table(table, tmp, row_group_size=1 << 20)
        os.replace(tmp, customers)
    return Dataset(distribution, size, seed, customers, stores_csv, lat, lng, stores)


def ids_to_rows(ids) -> np.ndarray:
    """Row positions of customer ids such as ``c0000042`` (vectorized)."""
    series = pd.Series(ids, dtype="string")
    return series.str.slice(1).astype("int64").to_numpy()


def nta_path() -> Path | None:
    """The NYC NTA 2020 GeoJSON: ``$GEOTARGET_REAL_DATA`` or ``../shared/data`` beside the repo."""
    root = os.environ.get("GEOTARGET_REAL_DATA")
    base = Path(root) if root else Path(__file__).resolve().parents[2] / "shared" / "data"
    path = base / "nyc" / "nyc_nta2020.geojson"
    return path if path.exists() else None


def largest_ntas(count: int = 10):
    """The ``count`` largest NTAs by area as a GeoDataFrame (EPSG:4326), or None."""
    import geopandas as gpd

    path = nta_path()
    if path is None:
        return None
    ntas = gpd.read_file(path).to_crs(4326)
    area = ntas.to_crs(2263).area
    return ntas.loc[area.sort_values(ascending=False).index[:count]].reset_index(drop=True)
