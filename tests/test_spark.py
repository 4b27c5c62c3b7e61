"""geotarget.spark: the same jobs on a local[2] SparkSession give the embedded engine's answers.

One session (the ``spark`` fixture of ``conftest.py``) serves every Spark test
module (a JVM start costs seconds); its files go under a tmp dir and its JVM
is stopped at the end. The tests skip, saying
why, only when pyspark or a Java runtime is missing (``make test`` installs
both: the ``spark`` extra and ``scripts/ensure-java.sh``).
"""

from __future__ import annotations

import sys

import geopandas as gpd
import numpy as np
import pandas as pd
import pytest
import shapely

import geotarget
from geotarget.errors import MissingDependencyError
from geotarget.pings import VisitRule
from geotarget.pings.consent import optout_hashes

CITIES = [(40.75, -73.98), (42.36, -71.06), (39.95, -75.16), (38.90, -77.03)]


def test_missing_pyspark_names_the_extra(monkeypatch):
    from geotarget.spark.session import pyspark_module

    monkeypatch.setitem(sys.modules, "pyspark", None)
    with pytest.raises(MissingDependencyError, match=r"geotarget\[spark\]"):
        pyspark_module()


@pytest.fixture(scope="module")
def world(tmp_path_factory):
    """A database with customers in four cities, two stores, regions, pings, a sensitive layer and an opt-out."""
    tmp = tmp_path_factory.mktemp("world")
    eng = geotarget.open(tmp / "w.duckdb")
    rng = np.random.default_rng(7)
    n = 4000
    city = rng.integers(0, 4, n)
    lat = np.array([CITIES[c][0] for c in city]) + rng.normal(0, 0.03, n)
    lng = np.array([CITIES[c][1] for c in city]) + rng.normal(0, 0.03, n)
    eng.ingest_customers(pd.DataFrame({"customer_id": [f"c{i}" for i in range(n)], "lat": lat, "lng": lng}))
    stores = pd.DataFrame({"store_id": ["S1", "S2"], "lat": [40.758, 40.74], "lng": [-73.9855, -74.0]})
    stores.to_csv(tmp / "stores.csv", index=False)
    eng.ingest_stores(stores)
    boxes = [shapely.box(-74.0, 40.74, -73.97, 40.77), shapely.box(-71.08, 42.34, -71.04, 42.38)]
    eng.ingest_regions(gpd.GeoDataFrame({"region_id": ["nyc", "bos"]}, geometry=boxes, crs="EPSG:4326"),
                       layer="areas")
    clinic = shapely.Point(-73.9855, 40.758).buffer(0.002)
    eng.ingest_regions(gpd.GeoDataFrame({"region_id": ["k1"]}, geometry=[clinic], crs="EPSG:4326"),
                       layer="clinics")
    eng.mark_sensitive("clinics")
    m = 6000
    home = rng.integers(0, 2, m)
    t0 = pd.Timestamp("2026-03-02T00:00:00Z")
    pings = pd.DataFrame({
        "device_id": [f"d{i}" for i in rng.integers(0, 400, m)],
        "timestamp": (t0 + pd.to_timedelta(rng.integers(0, 3 * 24 * 60, m), unit="min")).strftime(
            "%Y-%m-%dT%H:%M:%SZ"),
        "lat": np.array([CITIES[c][0] for c in home]) + rng.normal(0, 0.01, m),
        "lng": np.array([CITIES[c][1] for c in home]) + rng.normal(0, 0.01, m),
    })
    eng.ingest_pings(pings)
    eng.opt_out_devices(["d1"])
    import geotarget.spark as gs

    gs.export_customers(eng, tmp / "customers")
    yield eng, tmp
    eng.close()


def test_radius_audience_is_identical_and_pruned(spark, world):
    import geotarget.spark as gs

    eng, tmp = world
    embedded = eng.audience(stores="all", radius="2mi").to_pandas()
    places = eng.pings.places(stores="all", radius="2mi")
    df = gs.radius_audience(spark, tmp / "customers", places)
    got = gs.to_pandas(df)
    merged = embedded.merge(got, on="customer_id", how="outer", indicator=True)
    assert len(embedded) > 100 and (merged["_merge"] == "both").all()
    assert np.abs(merged["distance_m_x"] - merged["distance_m_y"]).max() <= 1e-6
    assert (merged["store_id"].astype(str) == merged["center_id"]).all()
    metrics = gs.scan_metrics(df)
    total = len(list((tmp / "customers").rglob("*.parquet")))
    assert 0 < metrics["files"] < total  # only New York's partitions were read
    plan = df._jdf.queryExecution().executedPlan().toString()
    assert "PartitionFilters: [" in plan and "h3_parent" in plan.split("PartitionFilters: [", 1)[1].split("]")[0]


def test_region_audience_is_identical(spark, world):
    import geotarget.spark as gs

    eng, tmp = world
    embedded = eng.audience(region_layer="areas").to_pandas()
    places = eng.pings.places(region_layer="areas")
    got = gs.to_pandas(gs.region_audience(spark, tmp / "customers", places))
    assert sorted(got["customer_id"]) == sorted(embedded["customer_id"]) and len(got) > 100


def test_visitors_visits_and_footfall_are_identical(spark, world):
    import geotarget.spark as gs

    eng, _ = world
    opts = {"min_dwell_minutes": 0, "hours": range(6, 22), "start": "2026-03-02T06:00:00Z",
            "end": "2026-03-04T12:00:00Z"}
    embedded = eng.visitors(stores="all", radius="1km", **opts)
    places = eng.pings.places(stores="all", radius="1km")
    rule = VisitRule.make(optouts=optout_hashes(eng.store), **opts)
    df = gs.visitors(spark, eng.pings.root, places, rule)
    got = gs.to_pandas(df).sort_values("device_id").reset_index(drop=True)
    assert len(embedded) > 20 and "d1" not in set(got["device_id"])
    pd.testing.assert_frame_equal(got[embedded.columns], embedded, check_dtype=False)
    assert 0 < gs.scan_metrics(df)["files"] < len(eng.pings.files())
    visits = gs.to_pandas(gs.visits(spark, eng.pings.root, places, rule))
    expected = eng.visits(stores="all", radius="1km", **opts)
    key = ["device_id", "place_id", "start"]
    a = visits.sort_values(key).reset_index(drop=True)
    b = expected.sort_values(key).reset_index(drop=True)
    assert a[key].astype(str).equals(b[key].astype(str))
    assert np.abs(a["distance_m"] - b["distance_m"]).max() <= 1e-6
    foot = gs.footfall(spark, eng.pings.root, 9, k_min=3, rule=VisitRule(optouts=rule.optouts),
                       sensitive_wkb=places.sensitive_wkb)
    pd.testing.assert_frame_equal(foot.frame, eng.footfall(9, k_min=3).frame)


def test_cli_spark_audience(spark, world, tmp_path):
    from typer.testing import CliRunner

    from geotarget.cli import app

    eng, tmp = world
    runner = CliRunner()
    out = tmp_path / "aud.csv"
    res = runner.invoke(app, ["--db", str(tmp / "w.duckdb"), "spark", "audience", "--customers",
                              str(tmp / "customers"), "--stores", str(tmp / "stores.csv"), "--radius", "2mi",
                              "-o", str(out), "--master", "local[2]"])
    assert res.exit_code == 0, res.output
    assert sorted(pd.read_csv(out)["customer_id"]) == sorted(eng.audience(stores="all", radius="2mi")
                                                            .to_pandas()["customer_id"])
    assert not spark.sparkContext._jsc.sc().isStopped()  # the running session was reused, not stopped


def test_cli_spark_visits(spark, world, tmp_path):
    from typer.testing import CliRunner

    import geotarget.spark as gs
    from geotarget.cli import app
    from geotarget.pings import read_points

    eng, tmp = world
    geotarget.open(tmp_path / "other.duckdb").close()  # places from a file; no sensitive layers or opt-outs here
    out = tmp_path / "visitors.csv"
    res = CliRunner().invoke(app, ["--db", str(tmp_path / "other.duckdb"), "spark", "visits", "--pings",
                                   str(eng.pings.root), "--places", str(tmp / "stores.csv"), "--radius", "1km",
                                   "--min-days", "2", "-o", str(out)])
    assert res.exit_code == 0, res.output
    pts = read_points(tmp / "stores.csv")
    places = gs.jobs.Places("radius", tuple(pts["place_id"]), lat=tuple(pts["lat"]), lng=tuple(pts["lng"]),
                            radius_m=1000.0)
    expected = gs.to_pandas(gs.visitors(spark, eng.pings.root, places, VisitRule(min_days=2)))
    got = pd.read_csv(out)
    assert len(got) > 5 and sorted(got["device_id"]) == sorted(expected["device_id"])


def test_cli_spark_visits_excludes_the_visitors_of_other_stores(spark, world, tmp_path):
    from typer.testing import CliRunner

    from geotarget.cli import app

    eng, tmp = world
    out = tmp_path / "conquest.csv"
    res = CliRunner().invoke(app, ["--db", str(tmp / "w.duckdb"), "spark", "visits", "--store", "S1", "--radius",
                                   "1km", "--exclude-store", "S2", "-o", str(out)])
    assert res.exit_code == 0, res.output
    expected = eng.visitors(stores=["S1"], radius="1km", exclude={"stores": ["S2"], "radius": "1km"})
    everyone = eng.visitors(stores=["S1"], radius="1km")
    got = pd.read_csv(out)
    assert 0 < len(expected) < len(everyone)
    assert sorted(got["device_id"]) == sorted(expected["device_id"])
