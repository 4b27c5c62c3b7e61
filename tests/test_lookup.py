"""The reverse lookup against brute-force oracles: pyproj geodesic, shapely, h3."""

from datetime import UTC, datetime, timedelta

import geopandas as gpd
import h3
import numpy as np
import pandas as pd
import pytest
import shapely
from hypothesis import given, settings
from hypothesis import strategies as st
from shapely.geometry import Polygon, box

import geotarget
from geotarget.audience.privacy import holdout_groups
from geotarget.errors import InvalidInputError, InvalidLocationError, InvalidRadiusError
from geotarget.geo.geodesy import WGS84
from geotarget.geo.grid import bounding_box

NOW = datetime(2026, 6, 1, 12, tzinfo=UTC)
lats = st.floats(min_value=-89.9, max_value=89.9, allow_nan=False)
lngs = st.floats(min_value=-180, max_value=180, allow_nan=False)
centres = st.one_of(
    st.tuples(lats, lngs),
    st.tuples(st.floats(85, 89.99), lngs),
    st.tuples(st.floats(-60, 60), st.one_of(st.floats(179.5, 180), st.floats(-180, -179.5))),
)


def _geodesic(lat, lng, plat, plng):
    plat, plng = np.atleast_1d(plat), np.atleast_1d(plng)
    return np.asarray(WGS84.inv(np.full(plat.size, lng), np.full(plat.size, lat), plng, plat)[2])


@settings(max_examples=80)
@given(centres, st.floats(1, 100_000), st.integers(0, 2**31))
def test_bounding_box_holds_every_point_within_the_radius(centre, radius_m, seed):
    rng = np.random.default_rng(seed)
    lat, lng = centre
    plng, plat, _ = WGS84.fwd(np.full(200, lng), np.full(200, lat), rng.uniform(0, 360, 200),
                              radius_m * np.sqrt(rng.uniform(0, 1, 200)))
    lo, hi, ranges = bounding_box(lat, lng, radius_m)
    for a, b in zip(plat, plng):
        assert lo <= a <= hi
        assert any(x0 <= b <= x1 for x0, x1 in ranges) or abs(b) == 180


@settings(max_examples=25)
@given(centres, st.floats(50, 50_000), st.integers(0, 2**31))
def test_stores_near_equals_geodesic_oracle(centre, radius_m, seed):
    rng = np.random.default_rng(seed)
    lat, lng = centre
    n = 60
    dist = np.concatenate([radius_m * rng.uniform(0, 1.5, n // 2),
                           radius_m + rng.choice([-1, 1], n // 2) * rng.uniform(0.01, 0.5, n // 2)])
    slng, slat, _ = WGS84.fwd(np.full(n, lng), np.full(n, lat), rng.uniform(0, 360, n), dist)
    stores = pd.DataFrame({"store_id": [f"S{i:03d}" for i in range(n)], "lat": slat, "lng": slng})
    with geotarget.open(":memory:") as eng:
        eng.ingest_stores(stores, swap_check=False)  # stores near the poles are real here
        got = eng.stores_near(lat, lng, radius_m=radius_m)
    truth = _geodesic(lat, lng, slat, slng)
    expected = sorted((d, f"S{i:03d}") for i, d in enumerate(truth) if d <= radius_m)
    assert [s["store_id"] for s in got] == [s for _, s in expected]
    assert np.allclose([s["distance_m"] for s in got], [d for d, _ in expected], rtol=0, atol=1e-6)


def test_stores_near_options(eng):
    eng.ingest_stores(pd.DataFrame({"store_id": ["A", "B", "C"], "name": ["a", "b", "c"],
                                    "lat": [40.0, 40.001, 40.01], "lng": [-74.0, -74.0, -74.0]}))
    assert [s["store_id"] for s in eng.stores_near(40.0, -74.0, "2km", limit=2)] == ["A", "B"]
    assert eng.stores_near(40.0, -74.0, "2km")[0] == {"store_id": "A", "name": "a", "lat": 40.0, "lng": -74.0,
                                                      "distance_m": 0.0}
    with pytest.raises(InvalidRadiusError):
        eng.stores_near(40.0, -74.0, "200km")
    with pytest.raises(InvalidLocationError, match="lat"):
        eng.stores_near(123.0, -74.0)
    with pytest.raises(InvalidInputError, match="limit"):
        eng.stores_near(40.0, -74.0, limit=0)


# -- a small world of stores, regions, customers and campaigns ---------------------------
def _world():
    rng = np.random.default_rng(7)
    eng = geotarget.open(":memory:")
    n_st = 40
    stores = pd.DataFrame({"store_id": [f"S{i:02d}" for i in range(n_st)],
                           "lat": rng.uniform(40.60, 40.90, n_st), "lng": rng.uniform(-74.10, -73.80, n_st)})
    eng.ingest_stores(stores)
    donut = Polygon([(-74.0, 40.7), (-73.9, 40.7), (-73.9, 40.8), (-74.0, 40.8)],
                    [[(-73.97, 40.73), (-73.93, 40.73), (-73.93, 40.77), (-73.97, 40.77)]])
    polys = [box(-74.1, 40.6, -74.0, 40.7), Polygon([(-73.9, 40.6), (-73.8, 40.6), (-73.85, 40.75)]),
             Polygon([(-74.05, 40.8), (-73.85, 40.8001), (-73.85, 40.8002), (-74.05, 40.8001)]), donut,
             box(-73.95, 40.85, -73.9, 40.9)]
    eng.ingest_regions(gpd.GeoDataFrame({"name": [f"R{i}" for i in range(len(polys))]}, geometry=polys, crs=4326),
                       layer="hoods")
    n = 600
    lat, lng = rng.uniform(40.6, 40.9, n), rng.uniform(-74.1, -73.8, n)
    customers = pd.DataFrame({
        "customer_id": [f"c{i}" for i in range(n)], "lat": lat, "lng": lng,
        "tier": rng.choice(["gold", "silver", "bronze", None], n), "spend": np.round(rng.uniform(0, 500, n), 1),
        "age": rng.integers(18, 80, n), "vip": rng.random(n) < 0.3, "opted_out": rng.random(n) < 0.05,
    })
    eng.ingest_customers(customers)
    eng.ingest_suppressions(["c1", "c2", "ghost"])
    wheres = [None, None, [("tier", "==", "gold")], {"tier": ["gold", "silver"]}, ["spend>=250"],
              [("age", "between", (30, 50))], [("vip", "==", True)], [("tier", "is null")], ["tier!=bronze"],
              [("spend", "<", 100), ("tier", "not in", ["silver"])]]
    for i in range(30):
        kw = {"stores": list(rng.choice(stores["store_id"], rng.integers(1, 4), replace=False)),
                  "radius_m": float(rng.uniform(300, 5000))}
        _campaign(eng, rng, f"radius-{i:02d}", kw, wheres)
    for i in range(8):
        kw = {"region_layer": "hoods", "regions": list(rng.choice([f"R{j}" for j in range(5)], rng.integers(1, 3),
                                                               replace=False))}
        _campaign(eng, rng, f"regions-{i}", kw, wheres)
    for i in range(8):
        cells = [h3.latlng_to_cell(rng.uniform(40.6, 40.9), rng.uniform(-74.1, -73.8), int(r))
                 for r in rng.integers(6, 10, 4)]
        _campaign(eng, rng, f"cells-{i}", {"cells": cells}, wheres)
    return eng, customers


def _campaign(eng, rng, name, geofence, wheres):
    start = NOW - timedelta(days=1) if rng.random() < 0.7 else NOW + timedelta(days=1)
    end = None if rng.random() < 0.5 else start + rng.choice([timedelta(hours=1), timedelta(days=3)])
    c = eng.create_campaign(name, where=wheres[rng.integers(len(wheres))], start=start, end=end,
                            holdout=0.3 if rng.random() < 0.3 else None, metadata={"offer": name}, **geofence)
    if rng.random() < 0.15:
        eng.pause_campaign(c.id)


@pytest.fixture(scope="module")
def world():
    eng, customers = _world()
    yield eng, customers
    eng.close()


class _Oracle:
    """Brute force over every campaign: pyproj geodesic, shapely, h3."""

    def __init__(self, eng):
        self.stores = eng.stores().set_index("store_id")
        self.regions = eng.regions("hoods").set_index("region_id") if "hoods" in eng.layers() else None
        self.campaigns = eng.campaigns(status="active")

    def inside(self, c, lat, lng) -> np.ndarray:
        """Whether each point is in the campaign's geofence (vectorized over points)."""
        lat, lng = np.atleast_1d(np.asarray(lat, dtype=float)), np.atleast_1d(np.asarray(lng, dtype=float))
        fence = c.geofence
        hit = np.zeros(lat.size, dtype=bool)
        if fence["kind"] == "radius":
            for _, s in self.stores.loc[fence["stores"]].iterrows():
                hit |= _geodesic(s["lat"], s["lng"], lat, lng) <= fence["radius_m"]
        elif fence["kind"] == "regions":
            for r in fence["regions"]:
                hit |= shapely.intersects_xy(self.regions.loc[r, "geometry"], lng, lat)
        else:
            for cell in fence["cells"]:
                res = h3.get_resolution(cell)
                hit |= np.array([h3.latlng_to_cell(a, b, res) == cell for a, b in zip(lat, lng)])
        return hit


def _probe_points(eng, rng):
    """Random points, points 5 cm either side of every campaign rim, region vertices and cell corners."""
    pts = list(zip(rng.uniform(40.6, 40.9, 150), rng.uniform(-74.1, -73.8, 150)))
    stores = eng.stores().set_index("store_id")
    for c in eng.campaigns():
        fence = c.geofence
        if fence["kind"] == "radius":
            s = stores.loc[fence["stores"][0]]
            for d in (fence["radius_m"] - 0.05, fence["radius_m"] + 0.05, fence["radius_m"] - 0.002,
                      fence["radius_m"] + 0.002):
                x, y, _ = WGS84.fwd(s["lng"], s["lat"], rng.uniform(0, 360), d)
                pts.append((y, x))
        elif fence["kind"] == "cells":
            pts += [tuple(v) for v in h3.cell_to_boundary(fence["cells"][0])[:2]]
    for geom in eng.regions("hoods").geometry:
        pts += [(y, x) for x, y in shapely.get_coordinates(geom)[:4]]
    return pts


def test_promotions_at_equals_brute_force(world):
    eng, _ = world
    rng = np.random.default_rng(11)
    oracle = _Oracle(eng)
    pts = np.array(_probe_points(eng, rng))
    live = [c for c in oracle.campaigns if c.is_live(NOW)]
    inside = np.array([oracle.inside(c, pts[:, 0], pts[:, 1]) for c in live])
    for k, (lat, lng) in enumerate(pts):
        expected = [c.name for c, hit in zip(live, inside[:, k]) if hit]
        assert [c.name for c in eng.promotions_at(lat, lng, at=NOW)] == expected, (lat, lng)


def test_time_window_is_start_inclusive_end_exclusive(eng):
    start, end = NOW, NOW + timedelta(hours=2)
    eng.create_campaign("w", cells=[h3.latlng_to_cell(40.7, -74.0, 7)], start=start, end=end)
    names = [[c.name for c in eng.promotions_at(40.7, -74.0, at=t)]
             for t in (start - timedelta(microseconds=1), start, end - timedelta(microseconds=1), end)]
    assert names == [[], ["w"], ["w"], []]
    assert [c.name for c in eng.promotions_at(40.7, -74.0, at="2026-06-01T13:00:00+01:00")] == ["w"]  # = start
    with pytest.raises(InvalidInputError, match="timezone-aware"):
        eng.promotions_at(40.7, -74.0, at=datetime(2026, 6, 1, 12))


def test_paused_campaigns_are_left_out(eng):
    eng.create_campaign("p", cells=[h3.latlng_to_cell(40.7, -74.0, 7)])
    assert [c.name for c in eng.promotions_at(40.7, -74.0)] == ["p"]
    eng.pause_campaign("p")
    assert eng.promotions_at(40.7, -74.0) == []
    eng.resume_campaign("p")
    assert [c.name for c in eng.promotions_at(40.7, -74.0)] == ["p"]


def test_customer_checks_agree_with_the_campaign_audience(world):
    """For every customer in a geofence: promoted iff in the treatment group of the exported audience.

    An opted-out or suppressed customer is answered as an unknown id: the campaigns without a
    segment, less the holdout its id hashes into (the answer tells nothing about its consent).
    """
    eng, customers = world
    eligible = set(eng.store.frame("SELECT customer_id FROM customers WHERE NOT opted_out AND customer_id NOT IN "
                                   "(SELECT value FROM suppressions WHERE kind = 'id')")["customer_id"])
    checked = 0
    oracle = _Oracle(eng)
    for c in oracle.campaigns:
        if not c.is_live(NOW):
            continue
        rows = eng.campaign_audience(c.id).to_pandas()
        treated = set(rows.loc[rows.get("group", pd.Series("treatment", index=rows.index)) == "treatment",
                               "customer_id"])
        inside = customers[oracle.inside(c, customers["lat"], customers["lng"])]
        for cid, lat, lng in inside[["customer_id", "lat", "lng"]].itertuples(index=False):
            got = c.name in [p.name for p in eng.promotions_at(lat, lng, at=NOW, customer_id=cid)]
            if cid in eligible:
                assert got == (cid in treated), (c.name, c.where, cid)
            else:
                unknown = not c.where and (not c.holdout or holdout_groups([cid], c.holdout, c.id)[0] == "treatment")
                assert got == unknown, (c.name, c.where, cid)
            checked += 1
    assert checked > 200


def test_holdout_matches_holdout_groups(eng):
    cell = h3.latlng_to_cell(40.7, -74.0, 5)
    ids = [f"k{i}" for i in range(400)]
    eng.ingest_customers(pd.DataFrame({"customer_id": ids, "lat": 40.7, "lng": -74.0}))
    c = eng.create_campaign("h", cells=[cell], holdout=0.25)
    groups = holdout_groups(ids, 0.25, c.id)
    got = [bool(eng.promotions_at(40.7, -74.0, customer_id=i)) for i in ids]
    assert got == [g == "treatment" for g in groups]
    assert 50 < got.count(False) < 150


def test_consent_and_unknown_customers(world):
    eng, customers = world
    opted = customers.loc[customers["opted_out"], "customer_id"].iloc[0]
    lat, lng = 40.75, -73.95
    anyone = eng.promotions_at(lat, lng, at=NOW)
    assert anyone
    stranger = eng.promotions_at(lat, lng, at=NOW, customer_id="never-seen")
    assert {c.name for c in stranger} <= {c.name for c in anyone if not c.where}
    for cid in (opted, "c1", "ghost"):  # opted out, suppressed id, suppressed id unknown to the table
        # answered as an unknown id: neither its attributes nor its opt-out show
        got = eng.promotions_at(lat, lng, at=NOW, customer_id=cid)
        assert {c.name for c in got} == {c.name for c in anyone if not c.where and not c.holdout}
    with pytest.raises(InvalidInputError, match="customer_id"):
        eng.promotions_at(lat, lng, customer_id="  ")


@settings(max_examples=40)
@given(st.floats(40.6, 40.9), st.floats(-74.1, -73.8), st.integers(5, 11))
def test_cell_geofences_use_the_containing_cell(lat, lng, res):
    """Points near the corners of a cell: in it iff h3-py's latlng_to_cell says so."""
    cell = h3.latlng_to_cell(lat, lng, res)
    corners = h3.cell_to_boundary(cell)
    with geotarget.open(":memory:") as eng:
        eng.create_campaign("c", cells=[cell])
        for clat, clng in corners:
            for dlat in (-1e-7, 0.0, 1e-7):
                p = (clat + dlat, clng + dlat)
                inside = h3.latlng_to_cell(*p, res) == cell
                assert bool(eng.promotions_at(*p)) == inside


@pytest.mark.parametrize("where", [
    [("age", ">=", "40")],  # text against a number column: cast to the column's type
    [("zip", "==", 10001)],  # a number against a text column: the text is read as a number
    [("zip", "in", ["10001", "10003"])],
    [("score", "between", (1, 2.5))],
    [("vip", "==", "true")],
    [("vip", "!=", True), ("age", "<", 60)],
    [("zip", "is not null"), ("score", ">", 0)],
    [("age", "in", [30, None])],
])
def test_segment_matching_equals_sql(eng, where):
    rng = np.random.default_rng(5)
    n = 300
    eng.ingest_customers(pd.DataFrame({
        "customer_id": [f"k{i}" for i in range(n)], "lat": 40.7, "lng": -74.0,
        "age": rng.choice([18, 30, 40, 65, None], n), "zip": rng.choice(["10001", "10002", "10003", None], n),
        "score": rng.choice([0.5, 1.0, 2.5, 3.0, np.nan], n), "vip": rng.choice([True, False], n)}))
    c = eng.create_campaign("seg", cells=[h3.latlng_to_cell(40.7, -74.0, 6)], where=where)
    members = set(eng.campaign_audience(c.id).to_pandas()["customer_id"])
    promoted = {f"k{i}" for i in range(n) if eng.promotions_at(40.7, -74.0, customer_id=f"k{i}")}
    assert promoted == members and 0 < len(members) < n


def test_customer_changes_reach_promotions_at_once(eng):
    cell = h3.latlng_to_cell(40.7, -74.0, 6)
    eng.ingest_customers(pd.DataFrame({"customer_id": ["a", "b"], "lat": 40.7, "lng": -74.0, "tier": "gold"}))
    eng.create_campaign("gold", cells=[cell], where=["tier=gold"])
    names = lambda cid: [c.name for c in eng.promotions_at(40.7, -74.0, customer_id=cid)]  # noqa: E731
    assert names("a") == names("b") == ["gold"]
    eng.create_campaign("everyone", cells=[cell])  # a campaign change alone keeps the customer table
    assert names("a") == ["everyone", "gold"]
    eng.ingest_customers(pd.DataFrame({"customer_id": ["a"], "lat": 40.7, "lng": -74.0, "tier": "silver"}))
    assert names("a") == ["everyone"]
    eng.ingest_suppressions(["b"])
    assert names("b") == names("unknown") == ["everyone"]  # suppressed: the answer of an unknown id
    eng.ingest_customers(pd.DataFrame({"customer_id": ["a"], "lat": 40.7, "lng": -74.0, "tier": "gold",
                                       "opted_out": True}))
    assert names("a") == names("unknown") == ["everyone"]
