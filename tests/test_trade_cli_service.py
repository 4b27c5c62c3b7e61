"""The trade commands and routes are thin layers: they answer what the library answers."""

from __future__ import annotations

import json
import subprocess
import sys

import geopandas as gpd
import numpy as np
import pandas as pd
import pytest

import geotarget
from geotarget import trade
from geotarget.sample import sample_customers, sample_neighborhoods, sample_stores

KEY = "trade-key-0123456789abcdef"


@pytest.fixture(scope="module")
def db(tmp_path_factory):
    path = tmp_path_factory.mktemp("trade") / "t.duckdb"
    with geotarget.open(path) as eng:
        stores = sample_stores(12, seed=9)
        stores["brand"] = np.where(np.arange(12) % 3 == 0, "rival", "ours")
        stores["sqft"] = np.linspace(1.0, 4.0, 12)
        eng.ingest_stores(stores)
        eng.ingest_customers(sample_customers(6000, seed=9))
        eng.ingest_regions(sample_neighborhoods(20, seed=9), layer="hoods", id_col="hood_id")
    return path


def _cli(db, *args, cwd):
    return subprocess.run([sys.executable, "-m", "geotarget", "--db", str(db), *args], capture_output=True, text=True,
                          cwd=cwd, timeout=300)


def test_cli_trade_area_huff_and_sites(db, tmp_path):
    out = _cli(db, "trade-area", "--store", "S002", "--share", "0.7", "--res", "8", "--brand-col", "brand",
               "--brand", "ours", "--region-layer", "hoods", "--population-col", "population",
               "-o", "area.geojson", "--map", "area.html", cwd=tmp_path)
    assert out.returncode == 0, out.stderr
    got = gpd.read_file(tmp_path / "area.geojson")
    with geotarget.open(db, read_only=True) as eng:
        want = eng.trade_areas("S002", share=0.7, res=8, brand_col="brand", brand="ours", region_layer="hoods",
                               population_col="population").areas
    assert got["customers"].tolist() == want["customers"].tolist()
    assert got["area_km2"].tolist() == pytest.approx(want["area_km2"].tolist())
    assert "gt-tradearea" in (tmp_path / "area.html").read_text()

    out = _cli(db, "huff", "--brand-col", "brand", "--attract-col", "sqft", "-o", "cells.parquet",
               "--stores-out", "stores.csv", cwd=tmp_path)
    assert out.returncode == 0, out.stderr
    cells = pd.read_parquet(tmp_path / "cells.parquet")
    np.testing.assert_allclose(cells.groupby("h3")["probability"].sum(), 1.0, rtol=1e-12)
    with geotarget.open(db, read_only=True) as eng:
        model = eng.huff(brand_col="brand", attract_col="sqft")
    np.testing.assert_allclose(pd.read_csv(tmp_path / "stores.csv")["expected_customers"],
                               model.stores["expected_customers"])
    assert set(cells["h3"]) == set(model.cells.loc[model.cells["customers"] >= 10, "h3"])  # the floor held

    pd.DataFrame({"site_id": ["N1", "N2", "N3"], "lat": [40.75, 40.68, 40.80],
                  "lng": [-73.99, -73.95, -73.93]}).to_csv(tmp_path / "cand.csv", index=False)
    out = _cli(db, "sites", "--candidates", "cand.csv", "--pick", "2", "--brand-col", "brand", "--brand", "ours",
               "-o", "ranking.csv", cwd=tmp_path)
    assert out.returncode == 0, out.stderr
    ranking = pd.read_csv(tmp_path / "ranking.csv")
    assert ranking["rank"].tolist() == [1, 2, 3] and ranking["chosen"].sum() == 2
    assert ranking["net_gain"].is_monotonic_decreasing


@pytest.mark.parametrize("args", [
    ["trade-area", "--store", "NOPE", "-o", "a.geojson"],
    ["trade-area", "--share", "70", "-o", "a.geojson"],
    ["huff", "--attract-col", "nope", "-o", "c.parquet"],
    ["sites", "--candidates", "missing.csv", "-o", "r.csv"],
])
def test_cli_errors_are_one_line(db, tmp_path, args):
    out = _cli(db, *args, cwd=tmp_path)
    assert out.returncode == 2 and "Traceback" not in out.stderr
    assert out.stderr.strip().startswith("error:") and len(out.stderr.strip().splitlines()) <= 2


@pytest.fixture(scope="module")
def client(db):
    pytest.importorskip("fastapi", reason="the server extra is not installed (pip install -e '.[server]')")
    from fastapi.testclient import TestClient

    from geotarget.service import create_app

    eng = geotarget.open(db, read_only=True)
    with TestClient(create_app(eng, keys=[f"{KEY}=analyst"])) as c:
        yield c, eng
    eng.close()


def test_http_routes_answer_as_the_library(client):
    c, eng = client
    h = {"X-API-Key": KEY}
    assert c.post("/v1/huff", json={}).status_code == 401
    r = c.post("/v1/trade-areas", json={"share": [0.5, 0.9], "brand_col": "brand", "brand": "ours"}, headers=h)
    assert r.status_code == 200, r.text
    body = r.json()
    want = trade.trade_areas(eng, share=[0.5, 0.9], brand_col="brand", brand="ours").areas
    want = want[want["customers"] >= 10]
    assert [f["properties"]["customers"] for f in body["features"]] == want["customers"].tolist()
    r = c.post("/v1/huff", json={"brand_col": "brand", "attract_col": "sqft", "cells": True}, headers=h)
    assert r.status_code == 200, r.text
    model = trade.huff(eng, brand_col="brand", attract_col="sqft")
    got = pd.DataFrame(r.json()["stores"])
    np.testing.assert_allclose(got["expected_customers"], model.stores["expected_customers"], rtol=1e-6)
    assert all(cell["dominant_store"] for cell in r.json()["cells"])
    r = c.post("/v1/sites", json={"candidates": [{"lat": 40.75, "lng": -73.99}, {"lat": 40.70, "lng": -73.9}],
                                  "pick": 1, "brand_col": "brand", "brand": "ours"}, headers=h)
    assert r.status_code == 200, r.text
    assert [s["rank"] for s in r.json()["sites"]] == [1, 2] and sum(s["chosen"] for s in r.json()["sites"]) == 1


@pytest.mark.parametrize("path,body,field", [
    ("/v1/trade-areas", {"share": [1.5]}, "share"),
    ("/v1/trade-areas", {"stores": ["NOPE"]}, "NOPE"),
    ("/v1/huff", {"attract_col": "nope"}, "nope"),
    ("/v1/sites", {"candidates": [{"lat": 95, "lng": 0}]}, "lat"),
    ("/v1/sites", {"candidates": [{"lat": 40.7, "lng": -74}], "pick": 3}, "pick"),
])
def test_http_errors_name_the_field(client, path, body, field):
    c, _ = client
    r = c.post(path, json=body, headers={"X-API-Key": KEY})
    assert 400 <= r.status_code < 500, r.text
    assert field in json.dumps(r.json())
