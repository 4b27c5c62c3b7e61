"""The HTTP service: keys, validation, limits, and every endpoint against the library's own answer."""

from __future__ import annotations

import io
import subprocess
import sys

import numpy as np
import pandas as pd
import pytest

pytest.importorskip("fastapi", reason="the server extra is not installed (pip install -e '.[server]')")

from fastapi.testclient import TestClient  # noqa: E402

import geotarget  # noqa: E402
from geotarget.sample import sample_customers, sample_neighborhoods, sample_stores  # noqa: E402
from geotarget.service import KeyRing, ServiceConfigError, ServiceSettings, create_app  # noqa: E402

KEY = "test-key-0123456789abcdef"
OTHER = "other-key-0123456789abcdef"
H = {"X-API-Key": KEY}
EVERY_SCOPE = "lookup+analyst+audiences+pii+admin"  # scopes themselves are tested in test_disclosure.py
HAS_LOOKUPS = all(hasattr(geotarget.Engine, m) for m in ("promotions_at", "stores_near", "create_campaign"))
needs_lookups = pytest.mark.skipif(
    not HAS_LOOKUPS, reason="Engine.stores_near / promotions_at / campaigns have not landed in the library yet")


@pytest.fixture(scope="module")
def engine():
    eng = geotarget.open(":memory:")
    customers = sample_customers(20_000, seed=5)
    customers["opted_out"] = False
    customers.loc[customers.index[::50], "opted_out"] = True  # 2 % opted out
    eng.ingest_customers(customers)
    eng.ingest_stores(sample_stores(20, seed=5))
    eng.ingest_regions(sample_neighborhoods(30, seed=5), layer="hoods", id_col="hood_id")
    yield eng
    eng.close()


@pytest.fixture(scope="module")
def client(engine):
    with TestClient(create_app(engine, keys=[f"{KEY}={EVERY_SCOPE}", f"{OTHER}={EVERY_SCOPE}"])) as c:
        yield c


def _opted_out(engine) -> set[str]:
    return set(engine.store.frame("SELECT customer_id FROM customers WHERE opted_out")["customer_id"])


# -- keys ----------------------------------------------------------------------------------------
def test_health_needs_no_key_and_docs_are_served(client):
    assert client.get("/health").json() == {"status": "ok", "version": geotarget.__version__}
    schema = client.get("/openapi.json").json()
    assert "/v1/audiences" in schema["paths"] and "APIKeyHeader" in schema["components"]["securitySchemes"]
    assert client.get("/docs").status_code == 200


def test_docs_page_loads_nothing_from_other_hosts(client):
    """/docs works offline: every script, style and icon it names is served by this server."""
    import re

    page = client.get("/docs").text
    urls = re.findall(r"""(?:src|href)\s*=\s*["']([^"']+)["']""", page) + re.findall(r"""url:\s*["']([^"']+)["']""", page)
    assert urls and not [u for u in urls if "//" in u]  # no absolute or protocol-relative URL
    assets = [u for u in urls if u.startswith("/docs/assets/")]
    assert {u.rsplit("/", 1)[1] for u in assets} >= {"swagger-ui-bundle.js", "swagger-ui.css"}
    for url in urls:
        got = client.get(url)
        assert got.status_code == 200 and len(got.content) > 100, url
    assert "SwaggerUIBundle" in client.get("/docs/assets/swagger-ui-bundle.js").text


def _v1_routes(app):
    for path, methods in app.openapi()["paths"].items():
        if path.startswith("/v1"):
            for method in methods:
                yield method.upper(), path.replace("{campaign}", "x").replace("{token}", "x")


@pytest.mark.parametrize("headers", [{}, {"X-API-Key": "wrong-key-0123456789abcdef"}, {"X-API-Key": ""}])
def test_every_v1_route_needs_a_valid_key(client, headers):
    routes = list(_v1_routes(client.app))
    assert len(routes) >= 12
    for method, path in routes:
        r = client.request(method, path, headers=headers, params={"lat": 95})
        assert r.status_code == 401, (method, path, r.text)
        assert r.headers["www-authenticate"] == "ApiKey" and r.json()["error"] == "unauthorized"


def test_keys_are_kept_only_as_digests():
    ring = KeyRing([f"{KEY}=lookup", "sha256:" + "ab" * 32 + "=admin"])
    assert len(ring) == 2 and ring.check(KEY) and not ring.check(KEY + "x")
    assert KEY not in repr(vars(ring)) and KEY.encode() not in b"".join(d for d, _ in ring._entries)
    import hashlib

    assert KeyRing(["sha256:" + hashlib.sha256(KEY.encode()).hexdigest() + "=lookup"]).check(KEY)
    with pytest.raises(ServiceConfigError, match="at least 16"):
        KeyRing(["short=lookup"])
    with pytest.raises(ServiceConfigError, match="64 hex"):
        KeyRing(["sha256:abc=lookup"])


def test_keys_from_env_and_file(tmp_path):
    f = tmp_path / "keys.txt"
    f.write_text(f"# service keys\n{OTHER} lookup  # the mobile backend\n\n")
    ring = KeyRing.from_sources(keys_file=f, env={"GEOTARGET_API_KEYS": f"{KEY}=admin, "})
    assert len(ring) == 2 and ring.check(KEY) and ring.check(OTHER)
    with pytest.raises(ServiceConfigError, match="cannot read the key file"):
        KeyRing.from_sources(keys_file=tmp_path / "missing.txt", env={})


def test_no_key_refuses_to_start_unless_insecure(engine, monkeypatch):
    monkeypatch.delenv("GEOTARGET_API_KEYS", raising=False)
    with pytest.raises(ServiceConfigError, match="GEOTARGET_API_KEYS"):
        create_app(engine)
    with TestClient(create_app(engine, insecure_no_auth=True)) as c:
        assert c.get("/v1/heatmap", params={"res": 8}).status_code == 200


# -- validation and limits -------------------------------------------------------------------------
@pytest.mark.parametrize(("method", "path", "kw", "field"), [
    ("GET", "/v1/stores/near", {"params": {"lat": 91, "lng": 0}}, "lat"),
    ("GET", "/v1/stores/near", {"params": {"lat": 40, "lng": -181}}, "lng"),
    ("GET", "/v1/stores/near", {"params": {"lat": "nan", "lng": 0}}, "lat"),
    ("GET", "/v1/stores/near", {"params": {"lat": 40, "lng": 0, "radius": "500"}}, "radius"),
    ("GET", "/v1/stores/near", {"params": {"lat": 40, "lng": 0, "radius": "2 parsecs"}}, "radius"),
    ("GET", "/v1/stores/near", {"params": {"lat": 40, "lng": 0, "radius": "101km"}}, "radius"),
    ("GET", "/v1/stores/near", {"params": {"lat": 40, "lng": 0, "limit": 1001}}, "limit"),
    ("GET", "/v1/promotions", {"params": {"lat": 40, "lng": 0, "at": "2025-01-01T00:00:00"}}, "at"),
    ("GET", "/v1/campaigns", {"params": {"limit": 0}}, "limit"),
    ("GET", "/v1/heatmap", {"params": {"res": 16}}, "res"),
    ("GET", "/v1/heatmap", {"params": {"k_min": 0}}, "k_min"),
    ("POST", "/v1/audiences", {"json": {"stores": ["S001"], "radius": 500}}, "radius"),
    ("POST", "/v1/audiences", {"json": {"points": [{"lat": 100, "lng": 0}], "radius": "1km"}}, "points.0.lat"),
    ("POST", "/v1/audiences", {"json": {"stores": ["S001"], "radius": "1mi", "holdout": 1.0}}, "holdout"),
    ("POST", "/v1/audiences", {"json": {"stores": ["S001"], "radius": "1mi", "radious": "2mi"}}, "radious"),
    ("POST", "/v1/audiences", {"json": {"stores": ["S001"], "radius": "1mi", "format": "xlsx"}}, "format"),
    ("POST", "/v1/campaigns", {"json": {"name": "a/b", "stores": ["S001"], "radius": "1mi"}}, "name"),
    ("POST", "/v1/campaigns", {"json": {"name": "x", "cells": ["8"] * 10_001}}, "cells"),
])
def test_bad_input_is_422_naming_the_field(client, method, path, kw, field):
    r = client.request(method, path, headers=H, **kw)
    assert r.status_code == 422, r.text
    body = r.json()
    assert body["error"] == "invalid_input" and field in [e["field"] for e in body["errors"]]
    assert body["message"].startswith(field) or f"{field}:" in body["message"]


@pytest.mark.parametrize(("body", "status", "words"), [
    ({"stores": ["S001"], "radius": "1mi", "where": [["shoe_size", "==", 9]]}, 422, "unknown column 'shoe_size'"),
    ({"stores": ["S001"], "radius": "1mi", "min_size": 5}, 422, "min_size must be at least 100"),
    ({"stores": ["S001"]}, 422, "radius"),
    ({"stores": ["NOPE"], "radius": "1mi"}, 404, "store 'NOPE' not found"),
    ({"region_layer": "no_such_layer"}, 404, "layer 'no_such_layer' not found"),
])
def test_library_errors_map_to_statuses(client, body, status, words):
    r = client.post("/v1/audiences", headers=H, json=body)
    assert r.status_code == status, r.text
    assert words in r.json()["message"]


def test_heatmap_floor_cannot_be_lowered(client):
    r = client.get("/v1/heatmap", headers=H, params={"k_min": 5})
    assert r.status_code == 422 and "k_min must be at least 10" in r.json()["message"]


def test_body_over_the_limit_is_413_declared_or_streamed(client):
    r = client.post("/v1/audiences", headers=H, content=b"{" + b" " * 1_000_001 + b"}")
    assert r.status_code == 413 and r.json()["error"] == "too_large"

    def chunks():
        for _ in range(40):
            yield b" " * 50_000

    r = client.post("/v1/audiences", headers={**H, "Content-Type": "application/json"}, content=chunks())
    assert r.status_code == 413


def test_malformed_json_is_422(client):
    r = client.post("/v1/audiences", headers={**H, "Content-Type": "application/json"}, content=b"{not json")
    assert r.status_code == 422


# -- audiences ---------------------------------------------------------------------------------------
def test_audience_counts_match_the_library(client, engine):
    body = {"stores": ["S001", "S002"], "radius": "2mi", "where": [["tier", "in", ["gold", "silver"]]],
            "exclude_within": [{"lat": 40.758, "lng": -73.9855, "radius": "300m"}]}
    r = client.post("/v1/audiences", headers=H, json=body)
    assert r.status_code == 200, r.text
    aud = engine.audience(stores=["S001", "S002"], radius="2mi", where=[("tier", "in", ["gold", "silver"])],
                          exclude_within=[(40.758, -73.9855, "300m")])
    assert len(aud) >= 100
    got = r.json()
    assert got["customers"] == len(aud) and got["download"] is None
    assert got["per_store"] == aud.summary()["per_store"]


@pytest.mark.parametrize("fmt", ["csv", "parquet", "geojson"])
def test_download_is_the_library_export(client, engine, tmp_path, fmt):
    body = {"stores": ["S003"], "radius": "2mi", "holdout": 0.2, "campaign": "spring", "format": fmt}
    r = client.post("/v1/audiences", headers=H, json=body)
    assert r.status_code == 200, r.text
    info = r.json()["download"]
    aud = engine.audience(stores=["S003"], radius="2mi", holdout=0.2, campaign="spring")
    assert info["rows"] == len(aud) == r.json()["customers"] and r.json()["control"] == aud.control_count
    assert client.get(info["url"]).status_code == 401
    assert client.get(info["url"], headers={"X-API-Key": OTHER}).status_code == 404  # another key's file
    got = client.get(info["url"], headers=H)
    assert got.status_code == 200 and int(got.headers["content-length"]) == info["bytes"]
    expected = engine.audience(stores=["S003"], radius="2mi", holdout=0.2, campaign="spring").to_pandas()
    if fmt == "csv":
        frame = pd.read_csv(io.BytesIO(got.content), dtype={"customer_id": str})
    elif fmt == "parquet":
        frame = pd.read_parquet(io.BytesIO(got.content))
    else:
        import json

        frame = pd.DataFrame([f["properties"] for f in json.loads(got.content)["features"]])
    assert sorted(frame["customer_id"]) == sorted(expected["customer_id"])
    assert not set(frame["customer_id"]) & _opted_out(engine)


def test_download_carries_requested_columns(client, engine):
    body = {"stores": ["S001"], "radius": "2mi", "format": "csv", "columns": ["tier", "spend_12m"]}
    r = client.post("/v1/audiences", headers=H, json=body)
    assert r.status_code == 200, r.text
    frame = pd.read_csv(io.BytesIO(client.get(r.json()["download"]["url"], headers=H).content),
                        dtype={"customer_id": str})
    expected = engine.audience(stores=["S001"], radius="2mi", columns=["tier", "spend_12m"]).to_pandas()
    merged = frame.merge(expected, on="customer_id", suffixes=("", "_lib"))
    assert len(merged) == len(frame) == len(expected)
    assert (merged["tier"] == merged["tier_lib"]).all()
    assert np.allclose(merged["spend_12m"], merged["spend_12m_lib"])
    bad = client.post("/v1/audiences", headers=H, json={**body, "columns": ["no_such_column"]})
    # named, but the known columns are not listed to an API client
    assert bad.status_code == 422 and "no_such_column" in bad.json()["message"] and "tier" not in bad.json()["message"]


def test_customer_match_holds_only_hashes(client, engine):
    r = client.post("/v1/audiences", headers=H, json={"stores": ["S001"], "radius": "2mi",
                                                       "format": "customer_match_google"})
    assert r.status_code == 200, r.text
    text = client.get(r.json()["download"]["url"], headers=H).text
    assert text.splitlines()[0] == "Email,Phone" and "@" not in text
    assert r.json()["download"]["rows"] == text.count("\n") - 1


def test_small_audience_is_403_without_telling_its_size(client, engine):
    aud = engine.audience(stores=["S001"], radius="100m")
    assert 0 < len(aud) < 100
    r = client.post("/v1/audiences", headers=H, json={"stores": ["S001"], "radius": "100m", "format": "csv"})
    assert r.status_code == 403 and r.json()["error"] == "privacy"
    assert str(len(aud)) not in r.json()["message"]


def test_region_and_ring_audiences(client, engine):
    r = client.post("/v1/audiences", headers=H, json={"region_layer": "hoods"})
    assert r.status_code == 200 and r.json()["customers"] == len(engine.audience(region_layer="hoods"))
    body = {"ring_point": {"lat": 40.758, "lng": -73.9855}, "res": 8, "k": 2}
    r = client.post("/v1/audiences", headers=H, json=body)
    assert r.status_code == 200, r.text
    assert r.json()["customers"] == len(engine.audience(ring_point=(40.758, -73.9855), res=8, k=2))


def test_export_row_cap_and_download_expiry(engine):
    limits = ServiceSettings(max_export_rows=50, download_ttl_s=0)
    with TestClient(create_app(engine, keys=[f"{KEY}={EVERY_SCOPE}"], settings=limits)) as c:
        r = c.post("/v1/audiences", headers=H, json={"stores": ["S001"], "radius": "2mi", "format": "csv"})
        assert r.status_code == 422 and "export limit of 50" in r.json()["message"]
        folder = c.app.state.downloads.folder
    assert not folder.exists()  # removed at shutdown
    with TestClient(create_app(engine, keys=[f"{KEY}={EVERY_SCOPE}"], settings=ServiceSettings(download_ttl_s=0))) as c:
        r = c.post("/v1/audiences", headers=H, json={"stores": ["S001"], "radius": "2mi", "format": "csv"})
        assert r.status_code == 200
        assert c.get(r.json()["download"]["url"], headers=H).status_code == 404  # already expired
        assert list(c.app.state.downloads.folder.iterdir()) == []


# -- heatmap -----------------------------------------------------------------------------------------
@pytest.mark.parametrize("params", [{"res": 8}, {"res": 8, "k_min": 25}, {"region_layer": "hoods"}])
def test_heatmap_is_the_library_heatmap(client, engine, params):
    """The service serves the library's published heatmap (the policy's suppression, see test_disclosure.py)."""
    r = client.get("/v1/heatmap", headers=H, params=params)
    assert r.status_code == 200 and r.headers["content-type"] == "application/geo+json"
    got = r.json()
    lib = engine.disclosure().heatmap(params.get("res", 8), "count", region_layer=params.get("region_layer"),
                                      k_min=params.get("k_min", 10))
    key = "h3" if "region_layer" not in params else "region_id"
    assert sorted((f["properties"][key], f["properties"]["customers"]) for f in got["features"]) == sorted(
        zip(lib.frame[key].tolist(), lib.frame["customers"].tolist()))
    assert min(f["properties"]["customers"] for f in got["features"]) >= got["metadata"]["k_min"] >= 10
    assert got["metadata"]["suppressed_customers"] == lib.suppressed_customers


def test_heatmap_feature_cap(engine):
    limits = ServiceSettings(max_heatmap_features=3)
    with TestClient(create_app(engine, keys=[f"{KEY}={EVERY_SCOPE}"], settings=limits)) as c:
        r = c.get("/v1/heatmap", headers=H, params={"res": 8})
        assert r.status_code == 422 and "coarser res" in r.json()["message"]


# -- lookups and campaigns (the library half of issue 6) ----------------------------------------------
@needs_lookups
def test_stores_near_matches_the_library(client, engine):
    r = client.get("/v1/stores/near", headers=H, params={"lat": 40.75, "lng": -73.98, "radius": "3mi", "limit": 5})
    assert r.status_code == 200, r.text
    lib = engine.stores_near(40.75, -73.98, radius="3mi", limit=5)
    assert r.json() == {"count": len(lib), "stores": lib}


@needs_lookups
def test_campaign_crud_and_promotions(client, engine):
    store = engine.stores().iloc[0]
    body = {"name": "svc-spring", "stores": [store["store_id"]], "radius": "1mi", "where": [["tier", "==", "gold"]],
            "start": "2020-01-01T00:00:00+00:00", "end": "2099-01-01T00:00:00-05:00", "holdout": 0.1,
            "metadata": {"offer": "10% off"}}
    r = client.post("/v1/campaigns", headers=H, json=body)
    assert r.status_code == 201, r.text
    made = r.json()
    assert made == engine.campaign("svc-spring").to_dict() and made["metadata"] == {"offer": "10% off"}
    assert client.post("/v1/campaigns", headers=H, json=body).status_code in (409, 422)
    assert client.get(f"/v1/campaigns/{made['id']}", headers=H).json()["name"] == "svc-spring"
    listed = client.get("/v1/campaigns", headers=H, params={"limit": 1000}).json()
    assert "svc-spring" in [c["name"] for c in listed["campaigns"]] and listed["count"] == len(engine.campaigns())

    params = {"lat": float(store["lat"]), "lng": float(store["lng"])}
    r = client.get("/v1/promotions", headers=H, params=params)
    lib = engine.promotions_at(params["lat"], params["lng"])
    assert r.status_code == 200 and sorted(c["name"] for c in r.json()["promotions"]) == sorted(c.name for c in lib)
    assert "svc-spring" in [c["name"] for c in r.json()["promotions"]]
    at = "2019-06-01T12:00:00+00:00"
    r = client.get("/v1/promotions", headers=H, params={**params, "at": at})
    assert "svc-spring" not in [c["name"] for c in r.json()["promotions"]]

    r = client.patch("/v1/campaigns/svc-spring", headers=H, json={"metadata": {"offer": "20% off"}})
    assert r.status_code == 200 and r.json()["metadata"] == {"offer": "20% off"}
    assert client.post("/v1/campaigns/svc-spring/pause", headers=H).json()["status"] == "paused"
    r = client.get("/v1/promotions", headers=H, params=params)
    assert "svc-spring" not in [c["name"] for c in r.json()["promotions"]]
    assert client.post("/v1/campaigns/svc-spring/resume", headers=H).json()["status"] != "paused"

    r = client.post("/v1/campaigns/svc-spring/audience", headers=H, json={"format": "csv"})
    aud = engine.campaign_audience("svc-spring")
    if len(aud) >= 100:
        assert r.status_code == 200 and r.json()["customers"] == len(aud)
    else:
        assert r.status_code == 403
    wide = {"name": "svc-wide", "stores": [store["store_id"]], "radius": "3mi"}
    assert client.post("/v1/campaigns", headers=H, json=wide).status_code == 201
    member = engine.campaign_audience("svc-wide").to_pandas().iloc[0]
    zone = {"lat": float(member["lat"]), "lng": float(member["lng"]), "radius": "200m"}
    r = client.post("/v1/campaigns/svc-wide/audience", headers=H,
                    json={"exclude_within": [zone], "format": "csv", "columns": ["tier"]})
    narrowed = engine.campaign_audience("svc-wide", exclude_within=[(zone["lat"], zone["lng"], "200m")],
                                        columns=["tier"])
    assert 100 <= len(narrowed) < len(engine.campaign_audience("svc-wide"))
    assert r.status_code == 200, r.text
    assert r.json()["customers"] == len(narrowed)
    frame = pd.read_csv(io.BytesIO(client.get(r.json()["download"]["url"], headers=H).content),
                        dtype={"customer_id": str})
    assert sorted(frame["customer_id"]) == sorted(narrowed.to_pandas()["customer_id"])
    assert member["customer_id"] not in set(frame["customer_id"]) and "tier" in frame
    assert client.delete("/v1/campaigns/svc-wide", headers=H).status_code == 204
    assert client.delete("/v1/campaigns/svc-spring", headers=H).status_code == 204
    assert client.get("/v1/campaigns/svc-spring", headers=H).status_code == 404


# -- the package and the command ----------------------------------------------------------------------
def test_service_and_cli_import_no_server_dependency():
    code = ("import sys, geotarget, geotarget.cli, geotarget.service; "
            "print(','.join(m for m in ('fastapi', 'uvicorn', 'starlette') if m in sys.modules))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == ""


def _serve(tmp_path, *args, env_keys="", block_import=False):
    prelude = "import sys; sys.modules['fastapi'] = None; " if block_import else "import sys; "
    code = prelude + f"sys.argv = ['geotarget', '--db', {str(tmp_path / 's.duckdb')!r}, 'serve', *{list(args)!r}]; " \
                     "from geotarget.cli import run; run()"
    env = {"PATH": "/usr/bin:/bin", "GEOTARGET_API_KEYS": env_keys}
    return subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env, timeout=120)


@pytest.mark.parametrize(("args", "kw", "words"), [
    ((), {}, "no API key configured; set GEOTARGET_API_KEYS"),
    ((), {"env_keys": "short=lookup"}, "use at least 16"),
    (("--insecure-no-auth", "--host", "0.0.0.0"), {}, "loopback"),
    ((), {"env_keys": f"{KEY}=lookup", "block_import": True}, "pip install 'geotarget[server]'"),
])
def test_serve_refuses_with_one_line(tmp_path, args, kw, words):
    out = _serve(tmp_path, *args, **kw)
    assert out.returncode == 2, out.stderr
    lines = [line for line in out.stderr.splitlines() if line.strip()]
    assert len(lines) == 1 and lines[0].startswith("error:") and words in lines[0], out.stderr


def test_a_short_load_on_a_real_server_has_no_5xx_and_only_right_answers():
    """The load test, bounded in requests as well as time; never a timing assertion."""
    from benchmarks.service_load import run

    results, facts = run(customers=5_000, stores=10, campaigns=20, points=20, clients=4, duration_s=120,
                         max_requests_per_client=25, log=lambda *a: None)
    result = results["mixed"]
    assert result.requests == 4 * 25
    assert result.server_errors == 0 and not result.wrong and not result.errors, (result.statuses, result.wrong)
    assert facts["clean_shutdown"]
