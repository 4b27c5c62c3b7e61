"""Device pings: ingest, visitation audiences, sensitive layers, consent and erasure, footfall."""

from __future__ import annotations

import json

import h3
import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
import shapely
from hypothesis import given
from hypothesis import strategies as st
from pyproj import Geod

from geotarget.errors import InvalidInputError, PrivacyError
from geotarget.geo.cells import latlng_to_cells
from geotarget.pings import PING_SCHEMA, Places, VisitRule, match_pings, partition_paths

GEOD = Geod(ellps="WGS84")
STORE = (40.758, -73.9855)
T0 = pd.Timestamp("2026-03-02T12:00:00Z")  # a Monday


def _at(distance_m: float, azimuth: float = 45.0, origin=STORE) -> tuple[float, float]:
    lng, lat, _ = GEOD.fwd(origin[1], origin[0], azimuth, distance_m)
    return lat, lng


def _ping(device, minutes, distance_m, azimuth=45.0, origin=STORE, accuracy=10.0):
    lat, lng = _at(distance_m, azimuth, origin)
    ts = (T0 + pd.Timedelta(minutes=minutes)).strftime("%Y-%m-%dT%H:%M:%SZ")
    return {"device_id": device, "timestamp": ts, "lat": lat, "lng": lng, "accuracy_m": accuracy}


@pytest.fixture
def peng(eng):
    eng.ingest_stores(pd.DataFrame({"store_id": ["S1", "S2"], "lat": [STORE[0], 40.70], "lng": [STORE[1], -74.0]}))
    rows = [
        # A: three pings 10 min apart at S1 on day 0 (a 20-minute visit), then one 40 min later (a new visit)
        _ping("A", 0, 50), _ping("A", 10, 80), _ping("A", 20, 60), _ping("A", 60, 70),
        # B: one ping at S1, one just outside 200 m
        _ping("B", 5, 199.9), _ping("B", 6, 200.1),
        # C: at S1 on two days, at 08:00 UTC on the second
        _ping("C", 0, 10), _ping("C", 60 * 20, 10),
        # D: never near a store
        _ping("D", 0, 5000),
    ]
    eng.ingest_pings(pd.DataFrame(rows))
    return eng


def test_ingest_partitions_by_day_and_parent_and_appends(eng, tmp_path):
    rows = [_ping("A", 0, 10), _ping("B", 60 * 24, 10, origin=(42.36, -71.06))]
    frame = pd.DataFrame(rows)
    rep = eng.ingest_pings(frame)
    assert (rep.read, rep.loaded, rep.rejected) == (2, 2, 0)
    files = partition_paths(eng.pings.root)
    assert len(files) == 2
    for path, row in zip(sorted(files, key=lambda p: "day=2026-03-03" in p), rows):
        day = row["timestamp"][:10]
        parent = h3.cell_to_parent(h3.latlng_to_cell(row["lat"], row["lng"], 15), 4)
        assert f"day={day}" in path and f"h3_parent={h3.str_to_int(parent)}" in path
        table = pq.read_table(path, schema=PING_SCHEMA)
        assert table.column("device_id").to_pylist() == [row["device_id"]]
        assert table.column("cell").to_pylist() == [h3.str_to_int(h3.latlng_to_cell(row["lat"], row["lng"], 15))]
    eng.ingest_pings(frame)  # appended, not upserted
    assert sum(pq.read_metadata(p).num_rows for p in partition_paths(eng.pings.root)) == 4


def test_ingest_rejects_with_reasons(eng, tmp_path):
    good = _ping("A", 0, 10)
    rows = [
        good,
        {**good, "timestamp": "2026-03-02 12:00:00"},  # no timezone
        {**good, "timestamp": "yesterday+01:00"},
        {**good, "timestamp": ""},
        {**good, "accuracy_m": 250.0},
        {**good, "accuracy_m": -1.0},
        {**good, "lat": 123.0},
        {**good, "device_id": " "},
        {**good, "consent": "maybe"},
        {**good, "timestamp": "2026-03-02T07:00:00-05:00"},
    ]
    frame = pd.DataFrame(rows)
    frame["consent"] = frame["consent"].fillna("yes")
    path = tmp_path / "pings.csv"
    frame.to_csv(path, index=False)
    rep = eng.ingest_pings(path, max_accuracy_m=100)
    assert rep.read == rep.loaded + rep.rejected == 10
    assert rep.loaded == 2
    assert rep.reasons == {
        "timestamp without a timezone; add an offset such as Z or -05:00": 1,
        "timestamp not understood; use ISO 8601 with an offset, e.g. 2026-03-01T08:15:00Z": 1,
        "missing timestamp": 1,
        "accuracy worse than 100 m": 1,
        "accuracy is not a non-negative number of metres": 1,
        "latitude out of range [-90, 90]": 1,
        "missing id": 1,
        "no consent for this device": 1,
    }
    rejects = eng.rejects(kind="pings")
    assert sorted(rejects["row_number"]) == [2, 3, 4, 5, 6, 7, 8, 9]
    ts = pq.read_table(partition_paths(eng.pings.root)).column("ts").to_pylist()
    assert len(set(ts)) == 1  # 12:00Z and 07:00-05:00 are the same instant
    with pytest.raises(InvalidInputError, match="max_accuracy_m"):
        eng.ingest_pings(path, max_accuracy_m=0)


def test_dwell_gap_days_hours_and_window(peng):
    v = peng.visits(stores=["S1"], radius="200m")
    a = v[v["device_id"] == "A"].sort_values("start")
    assert a["dwell_minutes"].tolist() == [20.0, 0.0] and a["pings"].tolist() == [3, 1]
    assert set(peng.visitors(stores=["S1"], radius="200m")["device_id"]) == {"A", "B", "C"}
    assert set(peng.visitors(stores=["S1"], radius="200m", min_dwell_minutes=15)["device_id"]) == {"A"}
    assert set(peng.visitors(stores=["S1"], radius="200m", min_days=2)["device_id"]) == {"C"}
    assert set(peng.visitors(stores=["S1"], radius="200m", hours=[8])["device_id"]) == {"C"}
    # 08:00 UTC on Tuesday is 03:00 in New York, still Tuesday
    assert set(peng.visitors(stores=["S1"], radius="200m", hours=[3], tz="America/New_York")["device_id"]) == {"C"}
    assert set(peng.visitors(stores=["S1"], radius="200m", days_of_week=["tue"])["device_id"]) == {"C"}
    got = peng.visitors(stores=["S1"], radius="200m", start="2026-03-02T12:30:00Z", end="2026-03-03T00:00:00Z")
    assert set(got["device_id"]) == {"A"}
    assert peng.pings.last_scan.files_read < peng.pings.last_scan.files_total or peng.pings.last_scan.files_total == 1
    with pytest.raises(InvalidInputError, match="timezone"):
        peng.visitors(stores=["S1"], radius="200m", start="2026-03-02T12:30:00")
    with pytest.raises(InvalidInputError, match="exactly one"):
        peng.visitors(radius="200m")


def test_visit_distance_is_the_geodesic(peng):
    v = peng.visits(stores=["S1"], radius="200m")
    b = v[v["device_id"] == "B"]
    assert len(b) == 1 and abs(b["distance_m"].iloc[0] - 199.9) < 1e-6


def test_sensitive_layer_is_never_targeted_and_its_pings_never_count(peng):
    clinic = shapely.Point(STORE[1], STORE[0]).buffer(0.0004)  # about 35-45 m around the store
    import geopandas as gpd

    peng.ingest_regions(gpd.GeoDataFrame({"region_id": ["k1"], "name": ["clinic"]}, geometry=[clinic],
                                         crs="EPSG:4326"), layer="clinics")
    before = set(peng.visitors(stores=["S1"], radius="200m")["device_id"])
    footfall_before = peng.footfall(9, k_min=1, allow_no_floor=True).frame["devices"].sum()
    peng.mark_sensitive("clinics")
    after = peng.visits(stores=["S1"], radius="200m")
    assert "C" in before and "C" not in set(after["device_id"])  # C's pings are 10 m from the store
    assert (after["distance_m"] > 35).all()
    with pytest.raises(PrivacyError, match="sensitive"):
        peng.visitors(region_layer="clinics")
    with pytest.raises(PrivacyError, match="sensitive"):
        peng.audience(region_layer="clinics")
    with pytest.raises(PrivacyError, match="sensitive"):
        peng.create_campaign("care", region_layer="clinics")
    # C's two pings (two days) were inside the clinic: two (day, cell, device) fewer
    assert peng.footfall(9, k_min=1, allow_no_floor=True).frame["devices"].sum() == footfall_before - 2


def test_conquesting_and_campaign_geofence(peng):
    competitors = pd.DataFrame({"place_id": ["K1"], "lat": [STORE[0]], "lng": [STORE[1]]})
    assert set(peng.visitors(points=competitors, radius="200m")["device_id"]) == {"A", "B", "C"}
    mine = peng.visitors(points=competitors, radius="200m", exclude={"stores": ["S1"], "radius": "100m"})
    assert set(mine["device_id"]) == {"B"}  # A and C were also within 100 m of S1
    peng.create_campaign("spring", stores=["S1"], radius="200m")
    by_campaign = peng.visitors(campaign="spring")
    assert by_campaign.equals(peng.visitors(stores=["S1"], radius="200m"))


def test_regions_match_shapely(peng):
    import geopandas as gpd

    box = shapely.box(STORE[1] - 0.0008, STORE[0] - 0.0008, STORE[1] + 0.0008, STORE[0] + 0.0008)
    peng.ingest_regions(gpd.GeoDataFrame({"region_id": ["b1"]}, geometry=[box], crs="EPSG:4326"), layer="blocks")
    got = set(peng.visitors(region_layer="blocks")["device_id"])
    table = pq.read_table(partition_paths(peng.pings.root))
    inside = shapely.intersects_xy(box, table.column("lng").to_numpy(), table.column("lat").to_numpy())
    assert got == set(np.asarray(table.column("device_id").to_pylist())[inside])


def test_opt_out_and_erasure_reach_every_copy(peng, tmp_path):
    bad = pd.DataFrame([{**_ping("C", 0, 10), "accuracy_m": 900.0}])
    peng.ingest_pings(bad)
    assert any("C" in json.loads(r).values() for r in peng.rejects(kind="pings")["raw"])
    assert peng.opt_out_devices(["B"]) == 1
    assert "B" not in set(peng.visitors(stores=["S1"], radius="200m")["device_id"])
    done = peng.erase_devices(["C"])
    assert done == {"pings": 2, "rejects": 1}
    table = pq.read_table(partition_paths(peng.pings.root))
    assert "C" not in set(table.column("device_id").to_pylist())
    assert not any("C" in json.loads(r).values() for r in peng.rejects(kind="pings")["raw"])
    stored = peng.store.frame("SELECT * FROM device_optouts")
    assert len(stored) == 2 and not ({"B", "C"} & set(stored["device_sha256"]))  # hashes only
    rep = peng.ingest_pings(pd.DataFrame([_ping("C", 5, 10), _ping("E", 5, 10)]))
    assert rep.loaded == 1 and rep.reasons == {"device opted out or erased": 1}


def test_footfall_matches_h3_and_floor(eng):
    rng = np.random.default_rng(3)
    n = 3000
    lat = 40.75 + rng.normal(0, 0.01, n)
    lng = -73.98 + rng.normal(0, 0.01, n)
    ts = T0 + pd.to_timedelta(rng.integers(0, 3 * 24 * 60, n), unit="min")
    frame = pd.DataFrame({"device_id": [f"d{i}" for i in rng.integers(0, 300, n)],
                          "timestamp": ts.strftime("%Y-%m-%dT%H:%M:%SZ"), "lat": lat, "lng": lng})
    eng.ingest_pings(frame)
    got = eng.footfall(8, k_min=5)
    cells = [h3.latlng_to_cell(a, b, 8) for a, b in zip(lat, lng)]
    truth = (pd.DataFrame({"day": ts.strftime("%Y-%m-%d"), "h3": cells, "device_id": frame["device_id"]})
             .groupby(["day", "h3"])["device_id"].nunique())
    shown = truth[truth >= 5]
    assert dict(zip(zip(got.frame["day"], got.frame["h3"]), got.frame["devices"])) == shown.to_dict()
    assert got.suppressed_cells == int((truth < 5).sum())
    with pytest.raises(PrivacyError):
        eng.footfall(8, k_min=0)


# -- the matching kernel: exact against pyproj, and the same on any split of the pings -----------------
@given(
    lat=st.floats(-70, 70), lng=st.floats(-179.9, 179.9), radius=st.floats(20, 5000),
    seed=st.integers(0, 2**16), split=st.integers(1, 59),
)
def test_match_is_exact_and_split_invariant(lat, lng, radius, seed, split):
    rng = np.random.default_rng(seed)
    n = 60
    dist = np.concatenate([radius + rng.choice([-1e-3, 1e-3], 20), rng.uniform(0, 2 * radius, n - 20)])
    plng, plat, _ = GEOD.fwd(np.full(n, lng), np.full(n, lat), rng.uniform(0, 360, n), dist)
    table = pa.table({"device_id": [f"d{i}" for i in range(n)],
                      "ts": pa.array(np.arange(n) * 1_000_000, type=pa.timestamp("us", tz="UTC")),
                      "lat": plat, "lng": plng, "cell": latlng_to_cells(plat, plng).astype("int64")})
    places = Places("radius", ("P",), lat=(lat,), lng=(lng,), radius_m=radius)
    got = match_pings(table, places, VisitRule()).to_pandas()
    _, _, truth = GEOD.inv(np.full(n, lng), np.full(n, lat), plng, plat)
    assert set(got["device_id"]) == {f"d{i}" for i in np.flatnonzero(truth <= radius)}
    by_id = dict(zip(got["device_id"], got["distance_m"]))
    assert all(abs(by_id[f"d{i}"] - truth[i]) <= 1e-6 for i in np.flatnonzero(truth <= radius))
    halves = pd.concat([match_pings(table.slice(0, split), places, VisitRule()).to_pandas(),
                        match_pings(table.slice(split), places, VisitRule()).to_pandas()])
    pd.testing.assert_frame_equal(halves.sort_values("device_id").reset_index(drop=True),
                                  got.sort_values("device_id").reset_index(drop=True))


@given(seed=st.integers(0, 2**16), split=st.integers(1, 199), res=st.integers(5, 11),
       tz=st.sampled_from(["UTC", "America/New_York", "Asia/Kolkata"]))
def test_footfall_keys_match_h3_on_any_split(seed, split, res, tz):
    from geotarget.pings.footfall import footfall_keys

    rng = np.random.default_rng(seed)
    n = 200
    lat = 40.75 + rng.normal(0, 0.02, n)
    lng = -73.98 + rng.normal(0, 0.02, n)
    ts = 1_772_409_600_000_000 + rng.integers(0, 3 * 86_400_000_000, n)
    table = pa.table({"device_id": [f"d{i}" for i in rng.integers(0, 20, n)],
                      "ts": pa.array(ts, type=pa.timestamp("us", tz="UTC")), "lat": lat, "lng": lng,
                      "cell": latlng_to_cells(lat, lng).astype("int64")})
    days = pd.to_datetime(ts, unit="us", utc=True).tz_convert(tz).strftime("%Y-%m-%d")
    truth = {(d, h3.str_to_int(h3.latlng_to_cell(a, b, res)), dev)
             for d, a, b, dev in zip(days, lat, lng, table.column("device_id").to_pylist())}
    whole = footfall_keys(table, res, tz=tz).to_pylist()
    parts = footfall_keys(table.slice(0, split), res, tz=tz).to_pylist() + \
        footfall_keys(table.slice(split), res, tz=tz).to_pylist()
    assert {(r["day"], r["cell"], r["device_id"]) for r in whole} == truth
    assert {(r["day"], r["cell"], r["device_id"]) for r in parts} == truth
