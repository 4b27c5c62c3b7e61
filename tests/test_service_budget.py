"""Aggregate routes (heatmap, trade areas, Huff, sites) have a work budget and a time limit over HTTP.

Over either, a request gets 413 with a message naming the field and the server setting, never a 500;
a request within the budget answers as the library does.
"""

from __future__ import annotations

import pytest

pytest.importorskip("fastapi", reason="the server extra is not installed (pip install -e '.[server]')")

from fastapi.testclient import TestClient  # noqa: E402

import geotarget  # noqa: E402
from geotarget.audience.budget import charge_cells, charge_scan, work_budget  # noqa: E402
from geotarget.errors import ResourceLimitError  # noqa: E402
from geotarget.sample import sample_customers, sample_neighborhoods, sample_stores  # noqa: E402
from geotarget.service import ServiceSettings, create_app  # noqa: E402

KEY = "analyst-key-0123456789abcdef"
H = {"X-API-Key": KEY}
N_CUSTOMERS = 4_000


@pytest.fixture(scope="module")
def engine():
    eng = geotarget.open(":memory:")
    eng.ingest_customers(sample_customers(N_CUSTOMERS, seed=11))
    eng.ingest_stores(sample_stores(6, seed=11))
    eng.ingest_regions(sample_neighborhoods(30, seed=11), layer="hoods", id_col="hood_id")
    yield eng
    eng.close()


def _client(engine, **limits):
    return TestClient(create_app(engine, keys=[f"{KEY}=analyst"], settings=ServiceSettings(**limits)))


def test_a_normal_heatmap_still_answers_as_the_library_does(engine):
    with _client(engine) as c:
        for params in ({"res": 8}, {"res": 8, "region_layer": "hoods"}, {"res": 8, "metric": "penetration:hoods:population"}):
            r = c.get("/v1/heatmap", headers=H, params=params)
            assert r.status_code == 200, (params, r.text)
            lib = engine.disclosure().heatmap(params["res"], params.get("metric", "count"),
                                              region_layer=params.get("region_layer"))
            assert len(r.json()["features"]) == len(lib.frame) > 0


@pytest.mark.parametrize("params, limits, names", [
    ({"res": 8}, {"max_cells": 20}, ["res:", "max_cells", "coarser res"]),
    ({"res": 8, "metric": "penetration:hoods:population"}, {"max_cells": 20}, ["res:", "max_cells"]),
    ({"res": 8, "region_layer": "hoods"}, {"max_cells": 20}, ["region_layer:", "30 cells or regions", "max_cells"]),
    ({"res": 8}, {"max_scanned": N_CUSTOMERS // 2}, ["max_scanned", "customers"]),
    ({"res": 8, "region_layer": "hoods"}, {"request_timeout_s": 0.0}, ["request_timeout_s", "coarser res"]),
])
def test_a_heatmap_over_the_budget_is_refused_with_413_naming_the_field(engine, params, limits, names):
    with _client(engine, **limits) as c:
        r = c.get("/v1/heatmap", headers=H, params=params)
    assert r.status_code == 413, r.text
    body = r.json()
    assert body["error"] == "too_much_work"
    for name in names:
        assert name in body["message"], (name, body["message"])


def test_a_pathological_heatmap_is_refused_before_its_costly_work(engine, monkeypatch):
    """A fine penetration heatmap is refused once its cells are counted: nothing is apportioned or drawn."""
    import geotarget.maps.geometry as geometry

    def never(*args, **kwargs):  # pragma: no cover - reached only if the budget failed
        raise AssertionError("the refused heatmap apportioned population")

    monkeypatch.setattr(geometry, "apportion", never)
    monkeypatch.setattr(geometry, "cells_to_polygons", never)
    with _client(engine, max_cells=10) as c:
        r = c.get("/v1/heatmap", headers=H, params={"res": 8, "metric": "penetration:hoods:population"})
    assert r.status_code == 413 and "max_cells" in r.json()["message"], r.text


def test_trade_routes_have_the_budget_too(engine):
    with _client(engine, max_cells=5) as c:
        r = c.post("/v1/huff", headers=H, json={"res": 9})
        assert r.status_code == 413 and "res:" in r.json()["message"], r.text
    with _client(engine, max_cells=N_CUSTOMERS) as c:  # customers' cells pass; the layer's covering does not
        r = c.post("/v1/huff", headers=H, json={"res": 11, "demand": "population", "region_layer": "hoods",
                                                 "population_col": "population"})
        assert r.status_code == 413 and "population cells at res 11" in r.json()["message"], r.text
    with _client(engine, max_scanned=100) as c:
        for path, body in (("/v1/trade-areas", {"res": 8}), ("/v1/huff", {"res": 8}),
                           ("/v1/sites", {"candidates": [{"lat": 40.75, "lng": -73.98}], "radius": "1km"})):
            r = c.post(path, headers=H, json=body)
            assert r.status_code == 413 and "max_scanned" in r.json()["message"], (path, r.text)
    with _client(engine) as c:
        r = c.post("/v1/huff", headers=H, json={"res": 8})
        assert r.status_code == 200, r.text


def test_budgets_count_across_one_request_and_not_outside_one():
    with work_budget(max_scanned=1_000) as budget:
        charge_scan(600)
        with pytest.raises(ResourceLimitError, match="1,200 customer rows"):
            charge_scan(600)
    assert budget.scanned == 600
    charge_scan(10**12)  # no budget in force: the library and the CLI trust their caller
    charge_cells(10**12, what="x", field="res", hint="y")


def test_a_lift_breakdown_over_the_budget_is_refused_naming_by():
    import numpy as np
    import pandas as pd

    rng = np.random.default_rng(4)
    n = 1_500
    eng = geotarget.open(":memory:")
    eng.ingest_stores(pd.DataFrame({"store_id": ["S1"], "lat": [40.73], "lng": [-73.97]}))
    eng.ingest_customers(pd.DataFrame({"customer_id": [f"c{i}" for i in range(n)],
                                       "lat": 40.73 + rng.normal(0, 0.01, n), "lng": -73.97 + rng.normal(0, 0.01, n),
                                       "tier": rng.choice(["gold", "silver"], n)}))
    eng.create_campaign("spring", stores=["S1"], radius="5mi", holdout=0.3, start="2026-05-01T00:00:00+00:00")
    eng.launch_campaign("spring")
    ids = eng.campaign_assignment("spring")["customer_id"]
    eng.ingest_outcomes(pd.DataFrame({"customer_id": ids, "timestamp": "2026-05-05T09:30:00+00:00",
                                      "value": 1.0, "outcome_id": [f"o{i}" for i in range(len(ids))]}))
    with _client(eng, max_cells=5) as c:
        r = c.get("/v1/campaigns/spring/lift", headers=H, params={"by": "h3_9"})
        assert r.status_code == 413 and "by:" in r.json()["message"] and "max_cells" in r.json()["message"], r.text
        r = c.get("/v1/campaigns/spring/lift", headers=H, params={"by": "tier"})
        assert r.status_code == 200, r.text
    eng.close()
