"""Audiences against brute-force oracles: pyproj geodesic, shapely, h3."""

import h3
import numpy as np
import pandas as pd
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import geotarget
from geotarget.errors import InvalidFilterError, InvalidLocationError, InvalidRadiusError, NotFoundError
from geotarget.geo.geodesy import WGS84

lats = st.floats(min_value=-89.9, max_value=89.9, allow_nan=False)
lngs = st.floats(min_value=-180, max_value=180, allow_nan=False)
centres = st.one_of(
    st.tuples(lats, lngs),
    st.tuples(st.floats(85, 89.99), lngs),
    st.tuples(st.floats(-89.99, -85), lngs),
    st.tuples(st.floats(-60, 60), st.one_of(st.floats(179.5, 180), st.floats(-180, -179.5))),
    st.sampled_from([h3.cell_to_latlng(p) for p in h3.get_pentagons(6)]),
)


def _ring_points(rng, lat, lng, radius_m, n):
    """Points through the disk, and a shell packed 1 cm to 1 m either side of the rim."""
    az = rng.uniform(0, 360, 2 * n)
    dist = np.concatenate([radius_m * rng.uniform(0, 1.3, n),
                           radius_m + rng.choice([-1.0, 1.0], n) * rng.uniform(0.011, 1.0, n)])
    plng, plat, _ = WGS84.fwd(np.full(2 * n, lng), np.full(2 * n, lat), az, dist)
    return np.asarray(plat), np.asarray(plng)


def _truth(lat, lng, plat, plng):
    return np.asarray(WGS84.inv(np.full(plat.size, lng), np.full(plat.size, lat), plng, plat)[2])


@settings(max_examples=60)
@given(centres, st.floats(min_value=10, max_value=50_000), st.integers(0, 2**31))
def test_radius_audience_equals_geodesic_oracle(centre, radius_m, seed):
    lat, lng = centre
    rng = np.random.default_rng(seed)
    plat, plng = _ring_points(rng, lat, lng, radius_m, 150)
    keep = ~((plat == 0) & (plng == 0))
    plat, plng = plat[keep], plng[keep]
    ids = np.array([f"c{i}" for i in range(plat.size)])
    eng = geotarget.open(":memory:")
    # centres anywhere on Earth, Antarctica included: no lat/lng swap heuristic
    eng.ingest_customers(pd.DataFrame({"customer_id": ids, "lat": plat, "lng": plng}), swap_check=False)
    got = eng.audience(points=[(lat, lng)], radius_m=radius_m).to_pandas()
    truth = _truth(lat, lng, plat, plng)
    clear = np.abs(truth - radius_m) > 0.01
    expected = set(ids[clear & (truth <= radius_m)])
    got_ids = set(got["customer_id"])
    assert got_ids & set(ids[clear]) == expected
    # reported distances agree with the geodesic to the millimetre
    by_id = dict(zip(ids, truth))
    assert np.allclose(got["distance_m"], [by_id[i] for i in got["customer_id"]], atol=2e-3, rtol=0)
    eng.close()


@pytest.fixture
def city():
    rng = np.random.default_rng(7)
    n = 6000
    eng = geotarget.open(":memory:")
    cust = pd.DataFrame({
        "customer_id": [f"c{i:05d}" for i in range(n)],
        "lat": rng.uniform(40.60, 40.85, n), "lng": rng.uniform(-74.05, -73.80, n),
        "tier": rng.choice(["gold", "silver", "bronze"], n), "age": rng.integers(18, 90, n),
        "spend": np.round(rng.gamma(2, 100, n), 2),
        "email": [f"User{i}@Example.com" for i in range(n)],
        "phone": [f"212555{i:04d}" for i in range(n)],
        "opted_out": rng.random(n) < 0.05,
    })
    cust.loc[cust.index % 97 == 0, "age"] = None
    stores = pd.DataFrame({"store_id": [f"S{i:02d}" for i in range(12)], "name": [f"Store {i}" for i in range(12)],
                           "lat": rng.uniform(40.65, 40.80, 12), "lng": rng.uniform(-74.0, -73.85, 12)})
    eng.ingest_customers(cust)
    eng.ingest_stores(stores)
    yield eng, cust, stores
    eng.close()


def _dist_matrix(cust, stores):
    n, s = len(cust), len(stores)
    lat = np.repeat(cust["lat"].to_numpy(), s)
    lng = np.repeat(cust["lng"].to_numpy(), s)
    slat = np.tile(stores["lat"].to_numpy(), n)
    slng = np.tile(stores["lng"].to_numpy(), n)
    return np.asarray(WGS84.inv(slng, slat, lng, lat)[2]).reshape(n, s)


def test_many_stores_dedupe_and_nearest_assignment(city):
    eng, cust, stores = city
    radius = 3218.688
    aud = eng.audience(stores="all", radius="2mi")
    d = _dist_matrix(cust, stores)
    eligible = ~cust["opted_out"].to_numpy()
    inside = (d <= radius) & eligible[:, None]
    members = inside.any(axis=1)
    got = aud.to_pandas().set_index("customer_id")
    assert set(got.index) == set(cust["customer_id"][members])
    assert got.index.is_unique
    nearest = np.where(inside, d, np.inf).argmin(axis=1)
    expected_store = stores["store_id"].to_numpy()[nearest[members]]
    got_store = got.loc[cust["customer_id"][members], "store_id"].astype(str).to_numpy()
    assert (got_store == expected_store).all()
    assert np.allclose(got.loc[cust["customer_id"][members], "distance_m"], d[members].min(axis=1, where=inside[members], initial=np.inf), atol=2e-3)
    counts = aud.counts().set_index("store_id")
    assert counts["within"].tolist() == inside.sum(axis=0).tolist()
    assert counts["assigned"].sum() == len(aud)
    overlap = aud.overlap()
    brute = inside.T.astype(int) @ inside.astype(int)
    assert (overlap.to_numpy() == brute).all()


def test_single_store_by_id(city):
    eng, cust, stores = city
    s = stores.iloc[3]
    aud = eng.audience(stores=[s["store_id"]], radius="1km")
    d = _dist_matrix(cust, stores.iloc[[3]])[:, 0]
    expected = set(cust["customer_id"][(d <= 1000) & ~cust["opted_out"]])
    assert set(aud.to_pandas()["customer_id"]) == expected
    assert set(aud.to_pandas()["store_id"].astype(str)) <= {s["store_id"]}


def test_opted_out_never_appear(city):
    eng, cust, _ = city
    out_ids = set(cust["customer_id"][cust["opted_out"]])
    for aud in (eng.audience(stores="all", radius="5km"), eng.audience(points=[(40.72, -73.95)], radius="30km"),
                eng.audience(ring_point=(40.72, -73.95), res=5, k=3)):
        assert not out_ids & set(aud.to_pandas()["customer_id"])


def test_suppression_by_id_and_email(city, tmp_path):
    eng, cust, _ = city
    base = eng.audience(points=[(40.72, -73.95)], radius="30km")
    ids = base.to_pandas()["customer_id"].tolist()
    assert eng.ingest_suppressions(ids[:3]) == 3
    victim = cust.set_index("customer_id").loc[ids[3], "email"]
    assert eng.ingest_suppressions([victim.upper() + "  "], kind="email") == 1
    import hashlib
    other = cust.set_index("customer_id").loc[ids[4], "email"]
    eng.ingest_suppressions([hashlib.sha256(other.strip().lower().encode()).hexdigest()], kind="email_sha256")
    after = set(eng.audience(points=[(40.72, -73.95)], radius="30km").to_pandas()["customer_id"])
    assert not set(ids[:5]) & after
    assert len(after) == len(ids) - 5
    stored = eng.store.frame("SELECT value FROM suppressions")["value"].tolist()
    assert victim.lower() not in stored  # raw emails are never stored


def test_filters_match_pandas(city):
    eng, cust, _ = city
    eligible = cust[~cust["opted_out"]]
    cases = [
        ([("tier", "==", "gold")], eligible["tier"] == "gold"),
        ([("tier", "!=", "gold")], eligible["tier"] != "gold"),
        (["tier in gold,silver"], eligible["tier"].isin(["gold", "silver"])),
        ([("tier", "not in", ["gold"])], ~eligible["tier"].isin(["gold"])),
        (["age<30"], eligible["age"] < 30),
        (["age<=30"], eligible["age"] <= 30),
        (["age>60"], eligible["age"] > 60),
        ([("age", ">=", 60), ("tier", "==", "silver")], (eligible["age"] >= 60) & (eligible["tier"] == "silver")),
        (["age between 30,40"], eligible["age"].between(30, 40)),
        (["age is null"], eligible["age"].isna()),
        ({"tier": "bronze", "spend": (">", 150)}, (eligible["tier"] == "bronze") & (eligible["spend"] > 150)),
    ]
    for where, mask in cases:
        aud = eng.audience(points=[(40.72, -73.95)], radius="40km", where=where)
        assert set(aud.to_pandas()["customer_id"]) == set(eligible["customer_id"][mask.fillna(False)]), where


def test_filter_values_are_never_sql(city):
    eng, cust, _ = city
    evil = "x'; DROP TABLE customers; --"
    aud = eng.audience(points=[(40.72, -73.95)], radius="40km", where=[("tier", "==", evil)])
    assert len(aud) == 0
    assert eng.store.scalar("SELECT count(*) FROM customers") == len(cust)
    with pytest.raises(InvalidFilterError, match="available columns: customer_id"):
        eng.audience(points=[(40.72, -73.95)], radius="1km", where=["nope=1"])
    with pytest.raises(InvalidFilterError):
        eng.audience(points=[(40.72, -73.95)], radius="1km", where=[('tier"; DROP TABLE customers; --', "==", 1)])


def test_exclusions(city):
    eng, cust, stores = city
    zone = (40.72, -73.95, "1500m")
    base = eng.audience(points=[(40.72, -73.95)], radius="5km")
    excl = eng.audience(points=[(40.72, -73.95)], radius="5km", exclude_within=[zone])
    b = base.to_pandas()
    expected = set(b["customer_id"][b["distance_m"] > 1500])
    assert set(excl.to_pandas()["customer_id"]) == expected
    import geopandas as gpd
    from shapely.geometry import box
    eng.ingest_regions(gpd.GeoDataFrame({"name": ["west"]}, geometry=[box(-74.1, 40.5, -73.95, 40.9)], crs=4326),
                       layer="halves")
    east = eng.audience(points=[(40.72, -73.95)], radius="5km", exclude_regions=["halves:west"])
    assert set(east.to_pandas()["customer_id"]) == set(b["customer_id"][b["lng"] > -73.95])


def test_hex_ring_matches_h3(city):
    eng, cust, _ = city
    cell = h3.latlng_to_cell(40.72, -73.95, 8)
    aud = eng.audience(ring_cell=cell, k=2)
    disk = set(h3.grid_disk(cell, 2))
    eligible = cust[~cust["opted_out"]]
    # a customer's cell at res 8 is the one containing it, as h3-py's latlng_to_cell says
    expected = {cid for cid, la, ln in zip(eligible["customer_id"], eligible["lat"], eligible["lng"])
                if h3.latlng_to_cell(la, ln, 8) in disk}
    assert set(aud.to_pandas()["customer_id"]) == expected and expected
    same = eng.audience(ring_point=(40.72, -73.95), res=8, k=2)
    assert set(same.to_pandas()["customer_id"]) == expected


def test_holdout_is_deterministic(city, tmp_path):
    eng, _, _ = city
    a = eng.audience(points=[(40.72, -73.95)], radius="40km", holdout=0.2, campaign="spring")
    b = eng.audience(points=[(40.72, -73.95)], radius="40km", holdout=0.2, campaign="spring")
    c = eng.audience(points=[(40.72, -73.95)], radius="40km", holdout=0.2, campaign="autumn")
    fa, fb, fc = a.to_pandas(), b.to_pandas(), c.to_pandas()
    assert fa["group"].tolist() == fb["group"].tolist()
    assert fa["group"].tolist() != fc["group"].tolist()
    assert a.control_count + a.treatment_count == len(a)
    assert 0.15 < a.control_count / len(a) < 0.25
    a.to_csv(tmp_path / "h.csv")
    written = pd.read_csv(tmp_path / "h.csv")
    assert set(written["group"]) == {"control", "treatment"}
    with pytest.raises(geotarget.InvalidInputError, match="campaign"):
        eng.audience(points=[(40.72, -73.95)], radius="1km", holdout=0.1)


def test_minimum_audience_size(city, tmp_path):
    eng, _, _ = city
    small = eng.audience(points=[(40.72, -73.95)], radius="100m")
    assert len(small) < 100
    with pytest.raises(geotarget.AudienceTooSmallError, match="below the minimum of 100"):
        small.to_csv(tmp_path / "s.csv")
    assert not (tmp_path / "s.csv").exists()
    small.to_csv(tmp_path / "s.csv", allow_small=True)
    assert len(pd.read_csv(tmp_path / "s.csv")) == len(small)
    big = eng.audience(points=[(40.72, -73.95)], radius="3km", min_size=10_000)
    with pytest.raises(geotarget.AudienceTooSmallError):
        big.to_parquet(tmp_path / "b.parquet")


@pytest.mark.parametrize("fmt", ["csv", "parquet", "geojson", "geoparquet"])
def test_exports_round_trip(city, tmp_path, fmt):
    import geopandas as gpd
    eng, _, _ = city
    aud = eng.audience(stores="all", radius="2km", columns=["tier"])
    path = tmp_path / f"a.{fmt}"
    getattr(aud, f"to_{fmt}")(path)
    if fmt == "csv":
        back = pd.read_csv(path)
    elif fmt == "parquet":
        back = pd.read_parquet(path)
    elif fmt == "geojson":
        back = gpd.read_file(path)
    else:
        back = gpd.read_parquet(path)
    expected = aud.to_pandas()
    assert len(back) == len(aud)
    assert {"customer_id", "lat", "lng", "distance_m", "store_id", "tier"} <= set(back.columns)
    assert set(back["customer_id"].astype(str)) == set(expected["customer_id"])


def test_customer_match_has_no_raw_identifiers(city, tmp_path):
    import hashlib
    eng, cust, _ = city
    aud = eng.audience(points=[(40.72, -73.95)], radius="40km", holdout=0.1, campaign="c")
    path = aud.to_customer_match(tmp_path / "cm.csv")
    text = path.read_text()
    assert "@" not in text and "example" not in text.lower() and "212555" not in text
    out = pd.read_csv(path)
    assert list(out.columns) == ["Email", "Phone"]
    assert len(out) == aud.treatment_count  # the control group is not uploaded
    first = aud.to_pandas(["email"]).query("group == 'treatment'").iloc[0]
    assert hashlib.sha256(first["email"].strip().lower().encode()).hexdigest() in set(out["Email"])
    meta = pd.read_csv(aud.to_customer_match(tmp_path / "m.csv", platform="meta"))
    phone = "1" + cust.set_index("customer_id").loc[first["customer_id"], "phone"]
    assert hashlib.sha256(phone.encode()).hexdigest() in set(meta["phone"])


def test_bad_queries_get_clear_errors(city):
    eng, _, _ = city
    with pytest.raises(InvalidRadiusError, match="no unit"):
        eng.audience(stores=["S01"], radius=2)
    with pytest.raises(InvalidRadiusError, match="allow_large"):
        eng.audience(stores=["S01"], radius="150km")
    assert len(eng.audience(stores=["S01"], radius="150km", allow_large_radius=True)) > 0
    with pytest.raises(NotFoundError, match="S99"):
        eng.audience(stores=["S99"], radius="1mi")
    with pytest.raises(InvalidLocationError, match="swapped"):
        eng.audience(points=[(140.72, -73.95)], radius="1mi")
    with pytest.raises(geotarget.InvalidInputError, match="exactly one"):
        eng.audience(stores=["S01"], points=[(40.7, -74)], radius="1mi")


def test_thin_polygon_loses_no_customer(eng):
    """A sliver far thinner than any covering hexagon."""
    import geopandas as gpd
    import shapely
    from shapely.geometry import Polygon
    rng = np.random.default_rng(3)
    sliver = Polygon([(-73.99, 40.70), (-73.90, 40.75), (-73.90, 40.75002), (-73.99, 40.70002)])
    x = rng.uniform(-73.99, -73.90, 4000)
    t = (x + 73.99) / 0.09
    y = 40.70 + 0.05 * t + rng.uniform(-0.00001, 0.00003, 4000)
    eng.ingest_customers(pd.DataFrame({"customer_id": [f"p{i}" for i in range(4000)], "lat": y, "lng": x}))
    eng.ingest_regions(gpd.GeoDataFrame({"name": ["sliver"]}, geometry=[sliver], crs=4326), layer="thin")
    got = set(eng.audience(region_layer="thin", regions=["sliver"]).to_pandas()["customer_id"])
    truth = {f"p{i}" for i in np.flatnonzero(shapely.intersects_xy(sliver, x, y))}
    assert got == truth and len(truth) > 1000


def test_boundary_and_holes(eng):
    import geopandas as gpd
    from shapely.geometry import Polygon
    donut = Polygon([(-74.0, 40.7), (-73.9, 40.7), (-73.9, 40.8), (-74.0, 40.8)],
                    [[(-73.96, 40.74), (-73.94, 40.74), (-73.94, 40.76), (-73.96, 40.76)]])
    eng.ingest_regions(gpd.GeoDataFrame({"name": ["donut"]}, geometry=[donut], crs=4326), layer="d")
    pts = {"edge": (40.7, -73.95), "hole": (40.75, -73.95), "hole_edge": (40.74, -73.95),
           "inside": (40.72, -73.97), "outside": (40.69, -73.95)}
    eng.ingest_customers(pd.DataFrame({"customer_id": list(pts), "lat": [p[0] for p in pts.values()],
                                       "lng": [p[1] for p in pts.values()]}))
    got = set(eng.audience(region_layer="d", regions=["donut"]).to_pandas()["customer_id"])
    assert got == {"edge", "hole_edge", "inside"}


def test_nyc_nta_audience_equals_shapely(eng):
    import geopandas as gpd
    import shapely
    from conftest import real_file
    nta = real_file("nyc/nyc_nta2020.geojson")
    listings = pd.read_csv(real_file("nyc/nyc_airbnb_listings_2019.csv"), usecols=["id", "latitude", "longitude"])
    eng.ingest_customers(listings)
    eng.ingest_regions(nta, layer="nyc_nta", id_col="NTA2020", name_col="NTAName")
    polys = gpd.read_file(nta)
    names = ["East Harlem (North)", "Midtown-Times Square", "Williamsburg", "Astoria (Central)", "Breezy Point-Belle Harbor-Rockaway Park-Broad Channel"]
    for name in names:
        geom = shapely.make_valid(polys.loc[polys["NTAName"] == name].geometry.iloc[0])
        truth = set(listings["id"].astype(str)[shapely.covers(geom, shapely.points(listings["longitude"], listings["latitude"]))])
        got = set(eng.audience(region_layer="nyc_nta", regions=[name]).to_pandas()["customer_id"])
        assert got == truth, name
    everything = eng.audience(region_layer="nyc_nta")
    assert len(everything) == 48_882  # MANIFEST sanity figure: points inside NTA polygons
