"""A campaign centred on plain points (not stores): its promotions and its audience agree with the geodesic."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

import geotarget
from geotarget.cli._app import main
from geotarget.errors import InvalidInputError
from geotarget.geo.geodesy import geodesic_distance_m

CENTRES = [(40.7580, -73.9855), (40.7061, -74.0087)]


@pytest.fixture
def eng():
    e = geotarget.open(":memory:")
    rng = np.random.default_rng(2)
    n = 3000
    e.ingest_customers(pd.DataFrame({"customer_id": [f"c{i}" for i in range(n)], "lat": rng.uniform(40.69, 40.78, n),
                                     "lng": rng.uniform(-74.03, -73.96, n)}))
    e.ingest_stores(pd.DataFrame({"store_id": ["S1"], "lat": [40.73], "lng": [-73.99]}))
    yield e
    e.close()


def _near_any(lat, lng, radius_m):
    d = np.min([geodesic_distance_m(a, b, np.atleast_1d(lat), np.atleast_1d(lng)) for a, b in CENTRES], axis=0)
    return d <= radius_m


def test_point_campaign_promotions_and_audience_follow_the_geodesic(eng):
    c = eng.create_campaign("plaza", points=CENTRES, radius="600m")
    assert c.geofence == {"kind": "points", "points": [list(p) for p in CENTRES], "radius_m": 600.0}
    rng = np.random.default_rng(5)
    lats, lngs = rng.uniform(40.69, 40.78, 400), rng.uniform(-74.03, -73.96, 400)
    truth = _near_any(lats, lngs, 600.0)
    got = np.array([bool(eng.promotions_at(a, b)) for a, b in zip(lats, lngs)])
    assert (got == truth).all() and truth.any()
    frame = eng.store.frame("SELECT customer_id, lat, lng FROM customers")
    expected = set(frame["customer_id"][_near_any(frame["lat"].to_numpy(), frame["lng"].to_numpy(), 600.0)])
    assert set(eng.campaign_audience("plaza", min_size=0).to_pandas()["customer_id"]) == expected
    assert eng.stores_near(*CENTRES[0], radius="100km")[0]["store_id"] == "S1"  # points are not stores
    eng.update_campaign("plaza", radius="1km")
    assert eng.campaign("plaza").geofence["radius_m"] == 1000.0
    with pytest.raises(InvalidInputError, match="radius"):
        eng.create_campaign("no radius", points=CENTRES)
    with pytest.raises(InvalidInputError, match="lat"):
        eng.create_campaign("bad", points=[(123.0, 10.0)], radius="1km")


def test_cli_creates_a_point_campaign(tmp_path, capsys):
    db = tmp_path / "p.duckdb"
    with geotarget.open(db) as e:
        e.ingest_stores(pd.DataFrame({"store_id": ["S1"], "lat": [40.73], "lng": [-73.99]}))
    assert main(["--db", str(db), "campaign", "create", "pop-up", "--lat", "40.758", "--lng", "-73.9855",
                 "--radius", "500m"]) == 0
    assert '"kind": "points"' in capsys.readouterr().out
    assert main(["--db", str(db), "campaign", "at", "--lat", "40.759", "--lng", "-73.9855"]) == 0
    assert "pop-up" in capsys.readouterr().out


def test_service_creates_a_point_campaign(eng):
    pytest.importorskip("fastapi", reason="the server extra is not installed")
    from fastapi.testclient import TestClient

    from geotarget.service import create_app

    key = "point-key-0123456789abcdef"
    with TestClient(create_app(eng, keys=[f"{key}=admin+lookup"])) as client:
        r = client.post("/v1/campaigns", headers={"X-API-Key": key},
                        json={"name": "http", "points": [{"lat": 40.758, "lng": -73.9855}], "radius": "500m"})
        assert r.status_code == 201, r.text
        r = client.get("/v1/promotions", headers={"X-API-Key": key}, params={"lat": 40.7585, "lng": -73.9855})
        assert [p["name"] for p in r.json()["promotions"]] == ["http"]
