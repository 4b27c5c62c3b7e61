"""A seeded synthetic metro area for demos and tests.

Customers cluster like a real city: a few dense centres, a wider ring of
suburbs and a thin rural scatter, over the New York City area. Nothing here is
real data; the same seed always gives the same files.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

__all__ = ["NYC_BBOX", "sample_customers", "sample_neighborhoods", "sample_stores", "write_sample"]

#: (min_lat, min_lng, max_lat, max_lng) of the NYC area used by the sample.
NYC_BBOX = (40.4774, -74.2591, 40.9176, -73.7004)

_CENTRES = [  # (lat, lng, weight, spread in degrees)
    (40.7580, -73.9855, 0.22, 0.020),  # Midtown
    (40.7128, -74.0060, 0.12, 0.015),  # Lower Manhattan
    (40.6782, -73.9442, 0.16, 0.035),  # Brooklyn
    (40.7282, -73.7949, 0.12, 0.040),  # Queens
    (40.8448, -73.8648, 0.10, 0.030),  # Bronx
    (40.5795, -74.1502, 0.05, 0.030),  # Staten Island
    (40.7440, -74.0324, 0.08, 0.015),  # Hoboken / Jersey City
]


_NYC_AREAS = (212, 332, 347, 646, 718, 917, 929)

def _clustered(rng: np.random.Generator, n: int) -> tuple[np.ndarray, np.ndarray]:
    weights = np.array([c[2] for c in _CENTRES])
    rural = 1.0 - weights.sum()
    which = rng.choice(len(_CENTRES) + 1, size=n, p=np.append(weights, rural))
    lat = np.empty(n)
    lng = np.empty(n)
    for i, (clat, clng, _, spread) in enumerate(_CENTRES):
        m = which == i
        lat[m] = rng.normal(clat, spread, m.sum())
        lng[m] = rng.normal(clng, spread * 1.3, m.sum())
    m = which == len(_CENTRES)
    lat[m] = rng.uniform(NYC_BBOX[0], NYC_BBOX[2], m.sum())
    lng[m] = rng.uniform(NYC_BBOX[1], NYC_BBOX[3], m.sum())
    lat = np.clip(lat, NYC_BBOX[0], NYC_BBOX[2])
    lng = np.clip(lng, NYC_BBOX[1], NYC_BBOX[3])
    return np.round(lat, 6), np.round(lng, 6)


def sample_customers(n: int = 200_000, *, seed: int = 42) -> pd.DataFrame:
    """Synthetic customers with a tier, age, spend, email, phone and opt-out flag.

    Examples
    --------
    >>> df = sample_customers(1000, seed=1)
    >>> list(df.columns)[:3]
    ['customer_id', 'lat', 'lng']
    >>> sample_customers(5, seed=1).equals(sample_customers(5, seed=1))
    True
    """
    rng = np.random.default_rng(seed)
    lat, lng = _clustered(rng, n)
    ids = np.array([f"C{i:07d}" for i in range(1, n + 1)])
    tier = rng.choice(["bronze", "silver", "gold", "platinum"], size=n, p=[0.5, 0.3, 0.15, 0.05])
    spend = np.round(rng.gamma(2.0, 150.0, n) * np.select(
        [tier == "platinum", tier == "gold", tier == "silver"], [4.0, 2.5, 1.5], 1.0), 2)
    area = rng.integers(200, 999, n)
    line = rng.integers(0, 10_000_000, n)
    return pd.DataFrame({
        "customer_id": ids,
        "lat": lat,
        "lng": lng,
        "tier": tier,
        "age": rng.integers(18, 90, n),
        "spend_12m": spend,
        "email": [f" Customer.{i}@Example.COM " if i % 17 == 0 else f"customer.{i}@example.com" for i in range(1, n + 1)],
        # New York area codes and exchanges 200-999, so that phonenumbers calls most of them valid
        "phone": [f"({_NYC_AREAS[a % len(_NYC_AREAS)]}) {200 + (b // 10000) % 800:03d}-{b % 10000:04d}"
                  for a, b in zip(area, line)],
        "opted_out": rng.random(n) < 0.03,
        "signup_date": pd.Timestamp("2020-01-01") + pd.to_timedelta(rng.integers(0, 2000, n), unit="D"),
    })


def sample_stores(n: int = 40, *, seed: int = 42) -> pd.DataFrame:
    """Synthetic stores placed where the customers are dense."""
    rng = np.random.default_rng(seed + 1)
    lat, lng = _clustered(rng, n)
    return pd.DataFrame({
        "store_id": [f"S{i:03d}" for i in range(1, n + 1)],
        "name": [f"Store {i:03d}" for i in range(1, n + 1)],
        "lat": lat,
        "lng": lng,
        "format": rng.choice(["flagship", "express", "outlet"], size=n, p=[0.2, 0.6, 0.2]),
    })


def sample_neighborhoods(n: int = 60, *, seed: int = 42):
    """Voronoi 'neighborhoods' over the sample bounding box, with a population column."""
    import geopandas as gpd
    import shapely

    rng = np.random.default_rng(seed + 2)
    lat, lng = _clustered(rng, n)
    box = shapely.box(NYC_BBOX[1], NYC_BBOX[0], NYC_BBOX[3], NYC_BBOX[2])
    cells = shapely.voronoi_polygons(shapely.multipoints(np.column_stack([lng, lat])), extend_to=box)
    polys = [shapely.intersection(g, box) for g in shapely.get_parts(cells)]
    polys = [p for p in polys if not p.is_empty]
    return gpd.GeoDataFrame({
        "hood_id": [f"N{i:02d}" for i in range(1, len(polys) + 1)],
        "name": [f"Neighborhood {i:02d}" for i in range(1, len(polys) + 1)],
        "population": rng.integers(5_000, 120_000, len(polys)),
    }, geometry=polys, crs="EPSG:4326")


def write_sample(out: str | Path = "data/sample", *, n_customers: int = 200_000, n_stores: int = 40,
                 seed: int = 42) -> dict[str, Path]:
    """Write customers.csv, stores.csv and neighborhoods.geojson into ``out``."""
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    paths = {
        "customers": out / "customers.csv",
        "stores": out / "stores.csv",
        "neighborhoods": out / "neighborhoods.geojson",
    }
    sample_customers(n_customers, seed=seed).to_csv(paths["customers"], index=False)
    sample_stores(n_stores, seed=seed).to_csv(paths["stores"], index=False)
    sample_neighborhoods(seed=seed).to_file(paths["neighborhoods"], driver="GeoJSON")
    return paths
