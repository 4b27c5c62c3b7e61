"""An automated attacker: every differencing route of issue 15, through the library and over HTTP.

Each attack is first shown to work where the disclosure rules are off (the
owner's direct calls, an ``admin`` key), so that the test can fail; then the
same attack, with the rules the service applies (``eng.disclosure()``, a key
without ``admin``), must recover no value about fewer than k people and no
attribute of a single customer.
"""

from __future__ import annotations

import itertools
import math

import geopandas as gpd
import h3
import numpy as np
import pandas as pd
import pytest
import shapely

import geotarget
from geotarget.errors import AudienceTooSmallError, InvalidInputError, PrivacyError
from geotarget.geo.cells import cells_to_parents
from geotarget.store.policy import DEFAULT_MIN_EXCLUSION_M, PrivacyPolicy

needs_opendp = pytest.mark.skipif(__import__("importlib").util.find_spec("opendp") is None,
                                  reason="OpenDP is not installed (pip install -e '.[dp]')")

P0 = (40.75, -73.98)  # the centre of the synthetic town: 3,000 customers within 700 m
TARGET = (40.7522, -73.9771)  # one customer, alone in its res-10 cell
HERMIT = (40.75, -73.956275)  # one customer 2 km east of the centre, nobody within 1 km of him
TARGET_SPEND = 12_345.67
K = 10


def _disc(rng, n, lat, lng, radius_m):
    r = radius_m * np.sqrt(rng.random(n))
    t = rng.random(n) * 2 * np.pi
    return lat + r * np.sin(t) / 111_320.0, lng + r * np.cos(t) / (111_320.0 * math.cos(math.radians(lat)))


def _res10(lat, lng):
    """A point's res-10 cell by both assignments: its own, and the parent of its res-15 cell."""
    return {h3.latlng_to_cell(lat, lng, 10), h3.cell_to_parent(h3.latlng_to_cell(lat, lng, 15), 10)}


def _town(eng):
    rng = np.random.default_rng(15)
    n = 3_000
    lat, lng = _disc(rng, n, *P0, 700)
    alone = _res10(*TARGET)
    keep = np.array([not (_res10(a, b) & alone) for a, b in zip(lat, lng)])
    lat, lng = lat[keep], lng[keep]
    customers = pd.DataFrame({
        "customer_id": [f"c{i:05d}" for i in range(lat.size)], "lat": lat, "lng": lng,
        "spend": np.round(rng.gamma(2.0, 300.0, lat.size), 2),
        "tier": rng.choice(["gold", "silver", "bronze"], lat.size),
        "email": [f"person{i}@example.com" for i in range(lat.size)],
        "opted_out": rng.random(lat.size) < 0.02,
    })
    target = pd.DataFrame({"customer_id": ["target", "hermit"], "lat": [TARGET[0], HERMIT[0]],
                           "lng": [TARGET[1], HERMIT[1]], "spend": [TARGET_SPEND, 99.0], "tier": ["gold", "gold"],
                           "email": ["target@example.com", "hermit@example.com"], "opted_out": [False, False]})
    eng.ingest_customers(pd.concat([customers, target], ignore_index=True))
    eng.ingest_stores(pd.DataFrame({"store_id": ["S1", "S2", "S3"], "name": ["a", "b", "c"],
                                    "lat": [P0[0], P0[0] + 0.006, P0[0] - 0.004],
                                    "lng": [P0[1], P0[1] + 0.004, P0[1] - 0.006]}))
    boxes = []  # a 3x3 grid of zones, and one tiny zone around the target
    for i, j in itertools.product(range(3), range(3)):
        y0, x0 = P0[0] - 0.0135 + 0.009 * i, P0[1] - 0.018 + 0.012 * j
        boxes.append((f"z{i}{j}", shapely.box(x0, y0, x0 + 0.012, y0 + 0.009)))
    boxes.append(("tiny", shapely.box(TARGET[1] - 0.001, TARGET[0] - 0.001, TARGET[1] + 0.001, TARGET[0] + 0.001)))
    eng.ingest_regions(gpd.GeoDataFrame({"zone_id": [b[0] for b in boxes], "name": [b[0] for b in boxes]},
                                        geometry=[b[1] for b in boxes], crs="EPSG:4326"), layer="zones",
                       id_col="zone_id")
    eng.store.con.execute("CREATE TABLE IF NOT EXISTS privacy_policy (name VARCHAR PRIMARY KEY, "
                          "value VARCHAR NOT NULL, updated_at TIMESTAMPTZ NOT NULL DEFAULT now())")
    eng.store.con.execute("INSERT INTO privacy_policy (name, value) VALUES ('_noise_salt', 'fixed-for-tests')")
    return eng


@pytest.fixture(scope="module")
def town():
    eng = geotarget.open(":memory:")
    _town(eng)
    eng.set_policy(heatmap_res="7,8,9")
    yield eng
    eng.close()


def _eligible(eng) -> pd.DataFrame:
    return eng.store.frame("SELECT customer_id, lat, lng, cell, spend FROM customers WHERE NOT opted_out")


# -- heatmaps ----------------------------------------------------------------------------------------------
def _kept(eng) -> pd.DataFrame:
    """The eligible customers the policy lets heatmaps count (the library's choice, checked below)."""
    from geotarget.maps.suppression import publishable_positions

    index, positions, _ = publishable_positions(eng, eng.policy())
    kept = set(index.take_ids(positions).to_pylist())
    truth = _eligible(eng)
    return truth[truth["customer_id"].isin(kept)].reset_index(drop=True)


def _members(eng, result, truth: pd.DataFrame) -> list[set]:
    """The customers behind each published row, by the assignment that reproduces the published counts."""
    if result.level == "region":
        regions = eng.regions(result.layer).set_index("region_id")
        pts = shapely.points(truth["lng"], truth["lat"])
        out = []
        for rid in result.frame["region_id"]:
            inside = shapely.intersects(regions.loc[rid, "geometry"], pts)
            out.append(set(truth["customer_id"][inside]))
        assert [len(g) for g in out] == result.frame["customers"].tolist()
        return out
    res = result.res
    by_parent = pd.Series(cells_to_parents(truth["cell"].to_numpy(np.uint64), res))
    by_point = pd.Series([int(h3.str_to_int(h3.latlng_to_cell(a, b, res))) for a, b in zip(truth["lat"], truth["lng"])])
    for assignment in (by_parent, by_point):
        groups = [set(truth["customer_id"][assignment == int(c)]) for c in result.frame["cell"]]
        if [len(g) for g in groups] == result.frame["customers"].tolist():
            return groups
    raise AssertionError("no cell assignment reproduces the published counts")


def _published(eng, guard, metric="count"):
    layers = [guard.heatmap(r, metric) for r in eng.policy().heatmap_res]
    layers += [guard.heatmap(metric=metric, region_layer=layer) for layer in eng.layers()]
    return layers


def test_plain_floor_is_defeated_by_two_resolutions(town):
    """The attack of the issue works on heatmaps that only keep a per-row floor: the test can fail."""
    fine = town.heatmap(10, "sum:spend", k_min=K)
    coarse = town.heatmap(9, "sum:spend", k_min=K)
    children = fine.cells.assign(parent=cells_to_parents(fine.cells["cell"].to_numpy(np.uint64), 9))
    hidden = coarse.cells.set_index("cell")[["customers", "value"]].sub(
        children.groupby("parent")[["customers", "value"]].sum(), fill_value=0).dropna()
    singles = hidden[(hidden["customers"] > 0) & (hidden["customers"] < K)]
    # groups of 1..k-1 people, with their total spend (standard cells do not nest exactly, so a parent
    # minus its children is the group of the parent's points that fall outside the children's cells)
    assert len(singles) > 0


def test_no_difference_of_published_heatmaps_isolates_fewer_than_k(town):
    """Every pair of published rows (any resolutions, cells against regions): the parts are 0 or >= k people."""
    guard = town.disclosure()
    truth = _kept(town)
    assert 0 < len(truth) < len(_eligible(town))
    rows = []
    for result in _published(town, guard):
        rows += _members(town, result, truth)
    assert len(rows) > 20
    for a, b in itertools.combinations(rows, 2):
        for part in (a - b, b - a, a & b):
            assert len(part) == 0 or len(part) >= K, (len(a), len(b), len(part))
    shown = set().union(*rows)
    assert "hermit" not in shown and "target" in shown  # the hermit is an atom of one; the target is not


def test_differencing_sums_across_resolutions_recovers_no_spend(town):
    guard = town.disclosure()
    truth = _eligible(town).set_index("customer_id")
    res = sorted(town.policy().heatmap_res)
    for coarse_res, fine_res in zip(res, res[1:]):
        coarse = guard.heatmap(coarse_res, "sum:spend").cells
        fine = guard.heatmap(fine_res, "sum:spend").cells
        fine = fine.assign(parent=cells_to_parents(fine["cell"].to_numpy(np.uint64), coarse_res))
        diff = coarse.set_index("cell")[["customers", "value"]].sub(
            fine.groupby("parent")[["customers", "value"]].sum(), fill_value=0).dropna()
        assert ((diff["customers"] == 0) | (diff["customers"].abs() >= K)).all()
        assert not np.isclose(diff["value"].abs(), TARGET_SPEND).any()
    total = truth["spend"].sum()
    for result in _published(town, guard, "sum:spend"):
        left = total - result.frame["value"].sum()
        assert not math.isclose(left, TARGET_SPEND, abs_tol=0.01)
        assert result.suppressed_customers % result.k_min == 0  # what was left out is told only in multiples of k


def test_heatmaps_are_served_at_policy_resolutions_only(town):
    guard = town.disclosure()
    with pytest.raises(PrivacyError, match="published at res 7, 8, 9"):
        guard.heatmap(10)
    with pytest.raises(PrivacyError, match="at least the policy's"):
        guard.heatmap(8, k_min=5)


def test_a_cell_published_or_not_is_the_same_across_metrics(town):
    """A sum heatmap may leave out more than a count heatmap, but only whole atoms of >= k people."""
    guard = town.disclosure()
    truth = _eligible(town)
    counts = dict(zip(guard.heatmap(8).cells["cell"], guard.heatmap(8).cells["customers"]))
    sums = dict(zip(guard.heatmap(8, "sum:spend").cells["cell"], guard.heatmap(8, "sum:spend").cells["customers"]))
    for cell, n in sums.items():
        assert counts[cell] - n == 0 or counts[cell] - n >= K
    assert len(truth) > 0


# -- audience counts -----------------------------------------------------------------------------------------
def test_small_exclusion_zone_is_refused_and_admin_sees_the_difference(town):
    options = {"points": [TARGET], "radius": "3km"}
    admin = town.disclosure(admin=True)
    whole = admin.audience_counts(**options)["customers"]
    less = admin.audience_counts(**options, exclude_within=[(*TARGET, "15m")])["customers"]
    assert whole - less == 1  # the attack, where the rules do not apply
    analyst = town.disclosure()
    with pytest.raises(PrivacyError, match="min_exclusion_m"):
        analyst.audience_counts(**options, exclude_within=[(*TARGET, "15m")])
    # a zone over the floor that still holds only one person is refused as a difference
    assert admin.audience_counts(points=[P0], radius="3km")["customers"] - admin.audience_counts(
        points=[P0], radius="3km", exclude_within=[(*HERMIT, "600m")])["customers"] == 1
    with pytest.raises(PrivacyError, match="fewer than 100"):
        analyst.audience_counts(points=[P0], radius="3km", exclude_within=[(*HERMIT, "600m")])
    assert DEFAULT_MIN_EXCLUSION_M == pytest.approx(563.88)


def test_filters_on_the_id_column_are_refused(town):
    analyst = town.disclosure()
    for where in (["customer_id != target"], [("customer_id", "in", ["target", "c00001"])], {"Customer_ID": "x"}):
        with pytest.raises(PrivacyError, match="customer_id"):
            analyst.audience_counts(points=[P0], radius="3km", where=where)


def test_a_unique_attribute_cannot_stand_in_for_the_id(town):
    """`email != x` removes one person: the difference check refuses it."""
    analyst = town.disclosure()
    with pytest.raises(PrivacyError, match="where"):
        analyst.audience_counts(points=[P0], radius="3km", where=["email != target@example.com"])
    with pytest.raises(AudienceTooSmallError):
        analyst.audience_counts(points=[P0], radius="3km", where=["email == target@example.com"])
    # a broad filter passes, noised and rounded
    got = analyst.audience_counts(points=[P0], radius="3km", where=["tier == gold"])
    assert got["customers"] % 10 == 0 and got["rounded_to"] == 10


def test_radius_binary_search_with_id_filter_is_refused(town):
    analyst = town.disclosure()
    with pytest.raises(PrivacyError):
        analyst.audience_counts(points=[P0], radius_m=1_234.0, where=["customer_id != target"])


def _annulus_game(guard, trials: int = 60) -> float:
    """Guess, from two released counts, whether one customer lies between two radii: the success rate."""
    eng = guard.engine
    truth = _eligible(eng)
    rng = np.random.default_rng(3)
    from pyproj import Geod

    n = len(truth)
    dist = Geod(ellps="WGS84").inv(np.full(n, P0[1]), np.full(n, P0[0]), truth["lng"].to_numpy(),
                                   truth["lat"].to_numpy())[2]
    dist = np.sort(dist[(dist > 300) & (dist < 650)])
    right = 0
    for _ in range(trials):
        i = int(rng.integers(1, dist.size - 2))
        one = bool(rng.random() < 0.5)  # the annulus holds one customer, or none
        r1 = (dist[i - 1] + dist[i]) / 2
        r2 = (dist[i] + dist[i + 1]) / 2 if one else r1 + (dist[i] - r1) / 2
        n1 = guard.audience_counts(points=[P0], radius_m=float(r1))["customers"]
        n2 = guard.audience_counts(points=[P0], radius_m=float(r2))["customers"]
        right += (n2 > n1) == one
    return right / trials


def test_radius_search_without_filters_learns_about_nobody(town):
    """Two radii whose annulus holds one person or none: exact counts tell; released counts do not."""
    assert _annulus_game(town.disclosure(admin=True), 30) == 1.0
    assert _annulus_game(town.disclosure(), 60) < 0.75


def test_same_question_same_answer(town):
    analyst = town.disclosure()
    first = analyst.audience_counts(stores=["S1"], radius="1km")
    assert all(analyst.audience_counts(stores=["S1"], radius="1km") == first for _ in range(3))


def test_decoy_points_around_a_target_are_refused(town):
    admin = town.disclosure(admin=True)
    off = 0.00045  # about 50 m
    decoys = [(TARGET[0] + off, TARGET[1]), (TARGET[0] - off, TARGET[1]), (TARGET[0], TARGET[1] + off),
              (TARGET[0], TARGET[1] - off)]
    options = {"points": [TARGET, *decoys, P0], "radius": "1km"}
    per_point = admin.audience_counts(**options)["per_store"]
    assert min(p["assigned"] for p in per_point) < 10  # the attack works without the rules
    with pytest.raises(PrivacyError):
        town.disclosure().audience_counts(**options)


def test_a_store_adding_few_people_of_its_own_is_refused(town):
    analyst = town.disclosure()
    with pytest.raises(PrivacyError):
        analyst.audience_counts(points=[P0, HERMIT], radius="1km")


def test_tiny_region_excluded_or_added_is_refused(town):
    with pytest.raises(PrivacyError, match="exclude_regions"):
        town.disclosure().audience_counts(points=[P0], radius="3km", exclude_regions=[("zones", "tiny")])
    admin = town.disclosure(admin=True)
    big = admin.audience_counts(region_layer="zones", regions=["z12"])["customers"]
    both = admin.audience_counts(region_layer="zones", regions=["z12", "tiny"])["customers"]
    assert 0 < both - big < 100  # the tiny zone adds a few dozen people of its own
    with pytest.raises(PrivacyError, match="regions"):
        town.disclosure().audience_counts(region_layer="zones", regions=["z12", "tiny"])
    assert town.disclosure().audience_counts(region_layer="zones", regions=["z12", "z10"])["customers"] > 0


# -- differential privacy ---------------------------------------------------------------------------------
@needs_opendp
def test_dp_budget_is_charged_and_exhausted(town):
    guard = town.disclosure(key_id="dp-test")
    town.set_policy(dp_budget=2.0)
    try:
        hm = guard.heatmap(8, privacy="dp", epsilon=1.0)
        exact = town.heatmap(8, k_min=1, allow_no_floor=True).cells.set_index("cell")["customers"]
        got = hm.cells.set_index("cell")["customers"]
        assert (got >= town.policy().k_min).all()
        assert (got - exact.reindex(got.index)).abs().max() < 30
        counts = guard.audience_counts(stores=["S1", "S2"], radius="1km", privacy="dp", epsilon=0.9)
        assert counts["privacy"] == "dp" and len(counts["per_store"]) == 2
        with pytest.raises(PrivacyError, match="budget exhausted"):
            guard.heatmap(8, privacy="dp", epsilon=0.2)
        from geotarget.store.policy import spent_budget

        assert spent_budget(town.store, "dp-test") == pytest.approx(1.9)
        assert spent_budget(town.store, "another") == 0.0
    finally:
        town.set_policy(dp_budget=1.0)
    with pytest.raises(InvalidInputError, match="count only"):
        guard.heatmap(8, "sum:spend", privacy="dp", epsilon=0.1)
    with pytest.raises(InvalidInputError, match="needs epsilon"):
        guard.heatmap(8, privacy="dp")


# -- the policy ---------------------------------------------------------------------------------------------
def test_policy_is_stored_and_enforced_by_the_library(eng):
    assert eng.policy() == PrivacyPolicy()
    assert eng.info()["privacy_policy"]["k_min"] == 10
    eng.ingest_customers(pd.DataFrame({"customer_id": [f"c{i}" for i in range(30)], "lat": 40.75, "lng": -73.98}))
    new = eng.set_policy(k_min=20, min_exclusion_m="2000ft", heatmap_res=[8, 9])
    assert (new.k_min, round(new.min_exclusion_m, 1), new.heatmap_res) == (20, 609.6, (8, 9))
    assert eng.policy() == new
    with pytest.raises(PrivacyError, match="policy floor of 20"):
        eng.heatmap(8, k_min=10)
    assert eng.heatmap(8).k_min == 20
    assert len(eng.heatmap(8, k_min=10, allow_no_floor=True).cells) == 1  # the explicit override
    with pytest.raises(InvalidInputError, match="k_min"):
        eng.set_policy(k_min=1)
    with pytest.raises(InvalidInputError, match="unknown policy setting"):
        eng.set_policy(bogus=3)


def test_policy_cli(tmp_path):
    from typer.testing import CliRunner

    from geotarget.cli import app

    db = str(tmp_path / "p.duckdb")
    runner = CliRunner()
    out = runner.invoke(app, ["--db", db, "policy", "set", "min_audience=250", "sensitive_columns=income"])
    assert out.exit_code == 0, out.output
    out = runner.invoke(app, ["--db", db, "info", "--json"])
    assert '"min_audience": 250' in out.output and '"income"' in out.output
    out = runner.invoke(app, ["--db", db, "policy", "set", "k_min=one"])
    assert out.exit_code != 0


# -- promotions ---------------------------------------------------------------------------------------------
def test_opted_out_and_unknown_ids_get_the_same_answer(eng):
    cell = h3.latlng_to_cell(40.7, -74.0, 6)
    eng.ingest_customers(pd.DataFrame({"customer_id": ["in", "out"], "lat": 40.7, "lng": -74.0,
                                       "tier": "gold", "opted_out": [False, True]}))
    eng.create_campaign("gold", cells=[cell], where=["tier=gold"])
    eng.create_campaign("anyone", cells=[cell])
    names = lambda cid: sorted(c.name for c in eng.promotions_at(40.7, -74.0, customer_id=cid))
    assert names("in") == ["anyone", "gold"]
    assert names("out") == names("never-seen") == ["anyone"]


# -- over HTTP ----------------------------------------------------------------------------------------------
KEYS = {scope: f"{scope}-key-0123456789abcdef" for scope in ("lookup", "analyst", "audiences", "pii", "admin")}


@pytest.fixture(scope="module")
def http(town):
    pytest.importorskip("fastapi")
    from fastapi.testclient import TestClient

    from geotarget.service import create_app

    entries = [f"{k}={s}" for s, k in KEYS.items() if s != "pii"] + [f"{KEYS['pii']}=audiences+pii"]
    with TestClient(create_app(town, keys=entries)) as client:
        yield client


def _as(scope: str) -> dict:
    return {"X-API-Key": KEYS[scope]}


@pytest.mark.parametrize(("entries", "words"), [
    (["key-without-any-scope-0123"], "has no scope"),
    (["key-with-empty-scopes-0123="], "has no scope"),
    (["key-with-a-bad-scope-0123=lookup+root"], "unknown scope 'root'"),
])
def test_a_key_without_scope_is_refused_at_startup(town, entries, words):
    from geotarget.service import KeyRing, ServiceConfigError, create_app

    with pytest.raises(ServiceConfigError, match=words):
        KeyRing(entries)
    with pytest.raises(ServiceConfigError, match=words):
        create_app(town, keys=entries)


def test_scopes_from_env_and_key_file(tmp_path):
    from geotarget.service import KeyRing, ServiceConfigError

    f = tmp_path / "keys"
    f.write_text("# keys\nsha256:" + "ab" * 32 + " analyst,audiences\n" + KEYS["lookup"] + " lookup  # app\n")
    ring = KeyRing.from_sources(keys_file=f, env={"GEOTARGET_API_KEYS": f"{KEYS['admin']}=admin+analyst"})
    assert ring.identify(KEYS["admin"])[1] == {"admin", "analyst"}
    assert ring.identify(KEYS["lookup"])[1] == {"lookup"}
    f.write_text(KEYS["lookup"] + "\n")
    with pytest.raises(ServiceConfigError, match="line 1"):
        KeyRing.from_sources(keys_file=f, env={})
    with pytest.raises(ServiceConfigError, match="GEOTARGET_API_KEYS"):
        KeyRing.from_sources(env={"GEOTARGET_API_KEYS": KEYS["lookup"]})


ROUTES = [  # (method, path, kwargs, the scopes that may call it)
    ("GET", "/v1/stores/near", {"params": {"lat": P0[0], "lng": P0[1], "radius": "1km"}}, {"lookup"}),
    ("GET", "/v1/promotions", {"params": {"lat": P0[0], "lng": P0[1], "customer_id": "c00001"}}, {"lookup"}),
    ("GET", "/v1/heatmap", {"params": {"res": 8}}, {"analyst"}),
    ("POST", "/v1/audiences", {"json": {"points": [{"lat": P0[0], "lng": P0[1]}], "radius": "1km"}},
     {"analyst", "audiences", "pii", "admin"}),
    ("POST", "/v1/audiences", {"json": {"points": [{"lat": P0[0], "lng": P0[1]}], "radius": "1km", "format": "csv"}},
     {"audiences", "pii"}),
    ("GET", "/v1/campaigns", {}, {"admin"}),
    ("POST", "/v1/campaigns", {"json": {"name": "scoped", "stores": ["S1"], "radius": "1km"}}, {"admin"}),
    ("PATCH", "/v1/campaigns/scoped", {"json": {"where": ["spend > 1000"]}}, {"admin"}),
    ("DELETE", "/v1/campaigns/scoped", {}, {"admin"}),
]


def test_every_route_answers_out_of_scope_keys_403(http):
    for method, path, kwargs, allowed in ROUTES:
        for scope in KEYS:
            r = http.request(method, path, headers=_as(scope), **kwargs)
            if scope in allowed:
                assert r.status_code < 400, (method, path, scope, r.text)
            else:
                assert r.status_code == 403, (method, path, scope, r.status_code, r.text)
                assert "scope" in r.json()["message"]
    assert http.get("/v1/heatmap", headers={"X-API-Key": "wrong-key-0123456789abc"}).status_code == 401


def test_raw_personal_columns_need_pii(http):
    body = {"points": [{"lat": P0[0], "lng": P0[1]}], "radius": "1km", "format": "csv", "columns": ["email"]}
    r = http.post("/v1/audiences", headers=_as("audiences"), json=body)
    assert r.status_code == 403 and "pii" in r.json()["message"]
    r = http.post("/v1/audiences", headers=_as("pii"), json=body)
    assert r.status_code == 200, r.text
    assert "email" in http.get(r.json()["download"]["url"], headers=_as("pii")).text.splitlines()[0]
    r = http.post("/v1/audiences", headers=_as("audiences"), json={**body, "columns": ["tier"]})
    assert r.status_code == 200, r.text
    header = http.get(r.json()["download"]["url"], headers=_as("audiences")).text.splitlines()[0].split(",")
    assert "tier" in header and "customer_id" in header and not {"lat", "lng", "distance_m"} & set(header)
    r = http.post("/v1/audiences", headers=_as("audiences"), json={**body, "columns": None, "format": "geojson"})
    assert r.status_code == 403 and "pii" in r.json()["message"]
    r = http.post("/v1/audiences", headers=_as("audiences"), json={**body, "columns": None,
                                                                  "format": "customer_match_google"})
    assert r.status_code == 200 and "@" not in http.get(r.json()["download"]["url"], headers=_as("audiences")).text


def test_http_attacks_on_audience_counts_get_403(http):
    at = lambda lat, lng: {"lat": lat, "lng": lng}
    three_km = {"points": [at(*TARGET)], "radius": "3km"}
    admin = [http.post("/v1/audiences", headers=_as("admin"), json=b).json()["customers"]
             for b in (three_km, {**three_km, "exclude_within": [{**at(*TARGET), "radius": "15m"}]})]
    assert admin[0] - admin[1] == 1  # the key that may know sees it; no other may ask
    attacks = [
        {**three_km, "exclude_within": [{**at(*TARGET), "radius": "15m"}]},
        {"points": [at(*P0)], "radius": "3km", "exclude_within": [{**at(*HERMIT), "radius": "600m"}]},
        {"points": [at(*P0)], "radius": "1234.5m", "where": ["customer_id != target"]},
        {"points": [at(*P0)], "radius": "3km", "where": ["email != target@example.com"]},
        {"points": [at(*TARGET), at(TARGET[0] + 0.00045, TARGET[1]), at(TARGET[0] - 0.00045, TARGET[1]),
                    at(TARGET[0], TARGET[1] + 0.00045), at(TARGET[0], TARGET[1] - 0.00045), at(*P0)], "radius": "1km"},
        {"points": [at(*P0), at(*HERMIT)], "radius": "1km"},
        {"points": [at(*P0)], "radius": "3km", "exclude_regions": [{"layer": "zones", "name": "tiny"}]},
    ]
    for body in attacks:
        for scope in ("analyst", "audiences"):
            r = http.post("/v1/audiences", headers=_as(scope), json=body)
            assert r.status_code == 403, (scope, body, r.text)
            message = r.json()["message"]  # a refusal never tells a size
            assert all(text not in message for n in admin for text in (str(n), f"{n:,}"))
    ok = http.post("/v1/audiences", headers=_as("analyst"), json={"stores": ["S1", "S2"], "radius": "1km"}).json()
    assert ok["rounded_to"] == 10 and all(v % 10 == 0 for p in ok["per_store"] for v in (p["within"], p["assigned"]))


def test_http_heatmaps_are_the_published_ones(http, town):
    for params in ({"res": 7}, {"res": 9, "metric": "sum:spend"}, {"region_layer": "zones"}):
        r = http.get("/v1/heatmap", headers=_as("analyst"), params=params)
        assert r.status_code == 200, r.text
        lib = town.disclosure().heatmap(params.get("res", 8), params.get("metric", "count"),
                                        region_layer=params.get("region_layer"))
        key = "h3" if "res" in params else "region_id"
        assert sorted((f["properties"][key], f["properties"]["customers"]) for f in r.json()["features"]) == sorted(
            zip(lib.frame[key], lib.frame["customers"]))
    r = http.get("/v1/heatmap", headers=_as("analyst"), params={"res": 10})
    assert r.status_code == 403 and "published at res" in r.json()["message"]


@needs_opendp
def test_http_dp_budget_per_key(http, town):
    town.set_policy(dp_budget=1.0)
    try:
        ok = http.get("/v1/heatmap", headers=_as("analyst"), params={"res": 8, "privacy": "dp", "epsilon": 0.6})
        assert ok.status_code == 200, ok.text
        r = http.get("/v1/heatmap", headers=_as("analyst"), params={"res": 8, "privacy": "dp", "epsilon": 0.6})
        assert r.status_code == 403 and "budget" in r.json()["message"]
        r = http.post("/v1/audiences", headers=_as("admin"),
                      json={"stores": ["S1"], "radius": "1km", "privacy": "dp", "epsilon": 0.6})
        assert r.status_code == 200 and r.json()["privacy"] == "dp"  # another key, another budget
    finally:
        town.set_policy(dp_budget=1.0)


def test_http_promotions_oracle_is_closed(http, town):
    """A lookup key cannot write a segment filter; opted-out and unknown ids read alike."""
    create = {"name": "rich", "stores": ["S1"], "radius": "2km", "where": ["spend > 1000"]}
    for scope in ("lookup", "analyst", "audiences", "pii"):
        assert http.post("/v1/campaigns", headers=_as(scope), json=create).status_code == 403
    assert http.post("/v1/campaigns", headers=_as("admin"), json={**create, "where": None}).status_code == 201
    try:
        assert http.patch("/v1/campaigns/rich", headers=_as("lookup"), json={"where": ["spend > 2000"]}
                          ).status_code == 403
        opted = town.store.frame("SELECT customer_id FROM customers WHERE opted_out LIMIT 1")["customer_id"][0]
        ask = lambda cid: http.get("/v1/promotions", headers=_as("lookup"),
                                   params={"lat": P0[0], "lng": P0[1], "customer_id": cid}).json()
        assert ask(opted) == ask("nobody-by-that-name")
    finally:
        http.delete("/v1/campaigns/rich", headers=_as("admin"))


# -- the suppression as a property ----------------------------------------------------------------------------
from hypothesis import given, settings  # noqa: E402
from hypothesis import strategies as st  # noqa: E402


@settings(max_examples=12, deadline=None)
@given(seed=st.integers(0, 10_000), n=st.integers(40, 400), spread_m=st.floats(100, 3_000),
       res=st.sets(st.integers(6, 10), min_size=1, max_size=3), k=st.integers(2, 12))
def test_published_rows_never_split_into_small_groups(seed, n, spread_m, res, k):
    """Random towns and policies: every part of every pair of published rows holds 0 or >= k people."""
    rng = np.random.default_rng(seed)
    lat, lng = _disc(rng, n, *P0, spread_m)
    with geotarget.open(":memory:") as eng:
        eng.ingest_customers(pd.DataFrame({"customer_id": [f"c{i}" for i in range(n)], "lat": lat, "lng": lng,
                                           "spend": rng.random(n)}))
        eng.ingest_regions(gpd.GeoDataFrame(
            {"zone_id": ["w", "e"], "name": ["w", "e"]},
            geometry=[shapely.box(P0[1] - 0.05, P0[0] - 0.05, P0[1] + 0.001, P0[0] + 0.05),
                      shapely.box(P0[1] + 0.001, P0[0] - 0.05, P0[1] + 0.05, P0[0] + 0.05)], crs="EPSG:4326"),
            layer="halves", id_col="zone_id")
        eng.set_policy(heatmap_res=sorted(res), k_min=k)
        guard = eng.disclosure()
        truth = _kept(eng)
        rows = []
        for result in _published(eng, guard):
            rows += _members(eng, result, truth)
        for a, b in itertools.combinations(rows, 2):
            for part in (a - b, b - a, a & b):
                assert len(part) == 0 or len(part) >= k
        everyone = len(_eligible(eng))
        for result in _published(eng, guard):
            assert result.suppressed_customers % k == 0 and result.suppressed_customers <= everyone


def test_routes_of_other_features_take_the_scope_in_one_line(http):
    """The trade-area routes declare require_scope("analyst") on their router."""
    for scope in KEYS:
        r = http.post("/v1/trade-areas", headers=_as(scope), json={})
        assert (r.status_code == 403) == (scope != "analyst"), (scope, r.status_code, r.text)
