"""A small synthetic city for the heatmap, map and browser tests (not a test module)."""

from __future__ import annotations

import json
import re

import geotarget
from geotarget.sample import sample_customers, sample_neighborhoods, sample_stores


def sample_engine(n_customers: int = 6000, n_stores: int = 6):
    """An in-memory engine with clustered customers, stores and a 'hoods' layer with population."""
    eng = geotarget.open(":memory:")
    eng.ingest_customers(sample_customers(n_customers, seed=7))
    eng.ingest_stores(sample_stores(n_stores, seed=7))
    eng.ingest_regions(sample_neighborhoods(20, seed=7), layer="hoods", id_col="hood_id")
    return eng


def leaked_customers(eng, text: str) -> list[str]:
    """Customer ids, or coordinate pairs in either order, found in ``text``."""
    rows = eng.store.frame("SELECT customer_id, lat, lng FROM customers")
    found = [c for c in set(re.findall(r"C\d{7}", text)) if c in set(rows["customer_id"])]
    for cid, lat, lng in rows.itertuples(index=False):
        for a, b in ((lng, lat), (lat, lng)):
            if f"{a}, {b}" in text or f"{a},{b}" in text:
                found.append(f"{cid}@{lat},{lng}")
    return found


def embedded_geojson(html: str) -> list[dict]:
    """The GeoJSON FeatureCollections folium embedded in a map page."""
    out = []
    for m in re.finditer(r'_add\((\{"features": .*?)\);\n', html, flags=re.S):
        out.append(json.loads(m.group(1)))
    return out
