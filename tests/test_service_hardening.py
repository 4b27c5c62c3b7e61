"""The service answers every bad input with a 4xx naming the field: filters of every column type and
operator, work over the budget, and no error body shows a file path or another key's data."""

from __future__ import annotations

import datetime as dt
import itertools
import socket

import numpy as np
import pandas as pd
import pytest

pytest.importorskip("fastapi", reason="the server extra is not installed (pip install -e '.[server]')")

from fastapi.testclient import TestClient  # noqa: E402

import geotarget  # noqa: E402
from geotarget.errors import ResourceLimitError  # noqa: E402
from geotarget.service import ServiceConfigError, ServiceSettings, create_app, is_loopback_host, serve  # noqa: E402

KEY = "hardening-key-0123456789abcdef"
H = {"X-API-Key": KEY}

COLUMNS = {"age": "BIGINT", "spend": "DOUBLE", "tier": "VARCHAR", "vip": "BOOLEAN", "joined": "DATE",
           "seen": "TIMESTAMP", "customer_id": "VARCHAR", "opted_out": "BOOLEAN"}
OPERATORS = ["==", "!=", "<", "<=", ">", ">=", "in", "not in", "between", "is null", "is not null"]
VALUES = [30, -1.5, 2**70, "abc", "", "30", "2024-05-01", "2024-13-45", "2024-05-01T10:00:00", True, "maybe",
          None, [1, "x"], ["gold", "silver"], [1, 2], [], [None], ["2024-01-01", "2024-12-31"], {"a": 1}]


@pytest.fixture(scope="module")
def engine():
    rng = np.random.default_rng(4)
    n = 400
    eng = geotarget.open(":memory:")
    eng.ingest_customers(pd.DataFrame({
        "customer_id": [f"c{i}" for i in range(n)], "lat": rng.uniform(40.70, 40.80, n),
        "lng": rng.uniform(-74.00, -73.90, n), "age": rng.integers(18, 80, n), "spend": rng.uniform(0, 99, n),
        "tier": rng.choice(["gold", "silver"], n), "vip": rng.random(n) < 0.3,
        "joined": [dt.date(2024, 1, 1) + dt.timedelta(days=int(d)) for d in rng.integers(0, 300, n)],
        "seen": pd.Timestamp("2024-01-01") + pd.to_timedelta(rng.integers(0, 10**6, n), unit="s"),
    }))
    eng.ingest_stores(pd.DataFrame({"store_id": ["S1", "S2"], "lat": [40.74, 40.76], "lng": [-73.96, -73.94]}))
    eng.create_campaign("base", stores=["S1"], radius="3km")
    yield eng
    eng.close()


@pytest.fixture(scope="module")
def client(engine):
    settings = ServiceSettings(min_audience=1)
    with TestClient(create_app(engine, keys=[f"{KEY}=admin+analyst+audiences+lookup+pii"], settings=settings), raise_server_exceptions=False) as c:
        yield c


def _condition(column, op, value):
    return [column, op] if op in ("is null", "is not null") else [column, op, value]


def _cases(per_pair: int = 3):
    """Every column with every operator, each pair with ``per_pair`` values; the values rotate so that
    every value meets every column and every operator across the pairs."""
    turn = itertools.cycle(VALUES)
    for column, op in itertools.product(COLUMNS, OPERATORS):
        values = [None] if op in ("is null", "is not null") else [next(turn) for _ in range(per_pair)]
        for value in values:
            yield column, op, value


def test_every_filter_on_every_endpoint_gets_an_answer_not_a_server_error(client, engine):
    seen = set()
    for i, (column, op, value) in enumerate(_cases()):
        where = [_condition(column, op, value)]
        answers = [
            client.post("/v1/audiences", headers=H, json={"stores": ["S1"], "radius": "3km", "where": where}),
            client.post("/v1/campaigns", headers=H, json={"name": f"f{i}", "stores": ["S1"], "radius": "1km",
                                                          "where": where}),
            client.patch("/v1/campaigns/base", headers=H, json={"where": where}),
        ]
        for r in answers:
            assert r.status_code < 500, (where, r.status_code, r.text)
            seen.add(r.status_code)
            if r.status_code == 422:
                body = r.json()
                assert body["error"] == "invalid_input" and "where" in body["message"] or column in body["message"]
        made = answers[1]
        if made.status_code in (200, 201):
            cid = made.json()["id"]
            r = client.post(f"/v1/campaigns/{cid}/audience", headers=H, json={})
            assert r.status_code < 500, (where, r.text)
            r = client.get("/v1/promotions", headers=H, params={"lat": 40.74, "lng": -73.96, "customer_id": "c3"})
            assert r.status_code == 200, (where, r.text)
            assert client.delete(f"/v1/campaigns/{cid}", headers=H).status_code == 204
    assert {200, 422} <= seen


@pytest.mark.parametrize("where, column", [
    ([["age", ">", "abc"]], "age"), ([["tier", ">", 5]], "tier"), ([["joined", ">", "2024-13-01"]], "joined"),
    ([["opted_out", "==", "maybe"]], "opted_out")])
def test_misfit_filters_are_refused_naming_the_column(client, where, column):
    for r in (client.post("/v1/audiences", headers=H, json={"stores": ["S1"], "radius": "1km", "where": where}),
              client.post("/v1/campaigns", headers=H, json={"name": "bad", "stores": ["S1"], "radius": "1km",
                                                            "where": where})):
        assert r.status_code == 422 and column in r.json()["message"], r.text


def test_work_over_the_budget_is_refused_with_413(engine):
    settings = ServiceSettings(min_audience=1, max_candidates=50)
    with TestClient(create_app(engine, keys=[f"{KEY}=admin+analyst+audiences+lookup+pii"], settings=settings)) as c:
        points = [{"lat": 40.7 + i * 1e-4, "lng": -73.95} for i in range(1000)]
        r = c.post("/v1/audiences", headers=H, json={"points": points, "radius": "100km"})
        assert r.status_code == 413 and "km2" in r.json()["message"], r.text
        r = c.post("/v1/audiences", headers=H, json={"stores": ["S1", "S2"], "radius": "5km"})
        assert r.status_code == 413 and "50 customers" in r.json()["message"], r.text
        r = c.post("/v1/campaigns/base/audience", headers=H, json={})
        assert r.status_code == 413, r.text
        small = c.post("/v1/audiences", headers=H, json={"stores": ["S1"], "radius": "200m"})
        assert small.status_code != 413, small.text  # within the budget (the privacy policy may still refuse it)


def test_work_budget_times_out():
    from geotarget.audience import work_budget
    from geotarget.audience.budget import check_time

    with work_budget(timeout_s=0.0), pytest.raises(ResourceLimitError, match="limit of 0 s"):
        check_time()


def test_error_bodies_show_no_path_and_no_listing(client, engine, tmp_path):
    r = client.post("/v1/audiences", headers=H, json={"stores": ["NOPE"], "radius": "1km"})
    assert r.status_code == 404 and "S1" not in r.text and "S2" not in r.text
    r = client.post("/v1/audiences", headers=H, json={"stores": ["S1"], "radius": "1km", "where": [["zz", "==", 1]]})
    assert r.status_code == 422 and "tier" not in r.text and "spend" not in r.text
    r = client.post("/v1/audiences", headers=H, json={"region_layer": "nope"})
    assert r.status_code == 404, r.text
    for metric in ("mean:tier", "sum:joined", "median:vip", "mean:nope"):
        r = client.get("/v1/heatmap", headers=H, params={"res": 8, "metric": metric})
        assert r.status_code == 422 and "columns" not in r.json()["message"], (metric, r.text)
    path = tmp_path / "ro.duckdb"
    geotarget.open(path).close()
    with TestClient(create_app(str(path), keys=[f"{KEY}=admin+analyst+audiences+lookup+pii"], read_only=True)) as c:
        r = c.post("/v1/campaigns", headers=H, json={"name": "x", "cells": ["882a100d67fffff"]})
        assert r.status_code == 409, r.text
        assert str(tmp_path) not in r.text and "ro.duckdb" not in r.text


def test_loopback_check_resolves_the_host(monkeypatch):
    assert is_loopback_host("127.0.0.1") and is_loopback_host("::1") and is_loopback_host("127.5.6.7")
    assert not is_loopback_host("0.0.0.0") and not is_loopback_host("10.0.0.1")

    def fake(host, *args, **kwargs):
        table = {"localhost": ["127.0.0.1", "::1"], "localhost.attacker.invalid": ["203.0.113.9"],
                 "127.0.0.1.nip.example": ["198.51.100.4"], "mixed.example": ["127.0.0.1", "192.0.2.1"]}
        if host not in table:
            raise socket.gaierror("no such host")
        return [(socket.AF_INET6 if ":" in a else socket.AF_INET, 1, 6, "", (a, 0)) for a in table[host]]

    monkeypatch.setattr(socket, "getaddrinfo", fake)
    assert is_loopback_host("localhost")
    for host in ("localhost.attacker.invalid", "127.0.0.1.nip.example", "mixed.example", "unknown.example"):
        assert not is_loopback_host(host)
        with pytest.raises(ServiceConfigError, match="loopback"):
            serve(":memory:", host=host, insecure_no_auth=True)
