"""geotarget.spark.narrow: filters, exclusions, consent, suppression and holdout on Spark equal the embedded engine's.

Every test runs the same audience on both engines over the same customers and
compares ids (and distances, store ids, groups). The Spark session is the
shared ``spark`` fixture of ``conftest.py``.
"""

from __future__ import annotations

import geopandas as gpd
import numpy as np
import pandas as pd
import pyarrow as pa
import pytest
import shapely

import geotarget
from geotarget.errors import InvalidFilterError, InvalidInputError

N = 3000
WHERES = [
    ["age between 25,40", "tier in gold,silver"],
    ["since>=2021-06-01", "tier is null"],
    {"age": (">=", 50), "vip": True, "tier": ("!=", "gold")},
]
ZONE = "40.752,-73.99,700m"
CONSENT = ["no", "yes", "maybe", None, "opted_in", "", "false", "TRUE", "unsubscribed", "0"]


def _customers(seed: int = 11, n: int = N) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    tiers = np.array(["gold", "silver", "bronze", None], dtype=object)
    return pd.DataFrame({
        "customer_id": [f"c{i}" for i in range(n)],
        "lat": 40.75 + rng.normal(0, 0.015, n),
        "lng": -73.985 + rng.normal(0, 0.015, n),
        "tier": tiers[rng.integers(0, 4, n)],
        "age": rng.integers(18, 80, n),
        "since": pd.to_datetime("2020-01-01") + pd.to_timedelta(rng.integers(0, 1500, n), unit="D"),
        "vip": rng.random(n) < 0.3,
        "email": [f"user{i}@example.com" if i % 3 == 0 else None for i in range(n)],
    }).assign(since=lambda f: f["since"].dt.date)


def _regions(eng) -> None:
    boxes = [shapely.box(-74.0, 40.74, -73.975, 40.765), shapely.box(-73.99, 40.755, -73.97, 40.775)]
    eng.ingest_regions(gpd.GeoDataFrame({"region_id": ["west", "east"]}, geometry=boxes, crs="EPSG:4326"),
                       layer="areas")


@pytest.fixture(scope="module")
def shop(tmp_path_factory, spark):
    """Customers with attributes and emails, two stores, a region layer; exported, then a suppression list."""
    import geotarget.spark as gs

    tmp = tmp_path_factory.mktemp("shop")
    eng = geotarget.open(tmp / "shop.duckdb")
    eng.ingest_customers(_customers())
    stores = pd.DataFrame({"store_id": ["S1", "S2"], "lat": [40.758, 40.745], "lng": [-73.9855, -73.995]})
    stores.to_csv(tmp / "stores.csv", index=False)
    eng.ingest_stores(stores)
    _regions(eng)
    gs.export_customers(eng, tmp / "customers")
    # suppressed after the export: only the suppression list keeps them out of a Spark audience
    eng.ingest_suppressions(["c1", "c2", "c4", "c5"])
    eng.ingest_suppressions([" USER3@Example.com ", "user6@example.com", "user9@example.com"], kind="email")
    yield eng, tmp, eng.pings.places(stores="all", radius="2km")
    eng.close()


def _ids(frame) -> list[str]:
    return sorted(frame["customer_id"].astype(str))


def _same_radius(got: pd.DataFrame, embedded: pd.DataFrame) -> None:
    merged = embedded.merge(got, on="customer_id", how="outer", indicator=True)
    assert (merged["_merge"] == "both").all(), merged[merged["_merge"] != "both"].head()
    assert np.abs(merged["distance_m_x"] - merged["distance_m_y"]).max() <= 1e-6
    assert (merged["store_id"].astype(str) == merged["center_id"]).all()


def test_filters_match_embedded(spark, shop):
    import geotarget.spark as gs

    eng, tmp, places = shop
    everyone = len(eng.audience(stores="all", radius="2km"))
    for where in WHERES:
        embedded = eng.audience(stores="all", radius="2km", where=where).to_pandas()
        got = gs.to_pandas(gs.radius_audience(spark, tmp / "customers", places, where=where, suppressions=eng))
        assert 0 < len(embedded) < everyone, where
        _same_radius(got, embedded)
    regions = eng.pings.places(region_layer="areas")
    embedded = eng.audience(region_layer="areas", where=["age>=40", "tier in silver,bronze"]).to_pandas()
    got = gs.to_pandas(gs.region_audience(spark, tmp / "customers", regions, where=["age>=40", "tier in silver,bronze"],
                                          suppressions=eng))
    assert len(embedded) > 50 and _ids(got) == _ids(embedded)


def test_exclusions_match_embedded(spark, shop):
    import geotarget.spark as gs

    eng, tmp, places = shop
    whole = eng.audience(stores="all", radius="2km")
    embedded = eng.audience(stores="all", radius="2km", exclude_within=[ZONE], exclude_regions=["areas:east"])
    assert 100 < len(embedded) < len(whole) - 100
    got = gs.to_pandas(gs.radius_audience(spark, tmp / "customers", places, exclude_within=[ZONE],
                                          exclude_regions=["areas:east"], engine=eng, suppressions=eng))
    _same_radius(got, embedded.to_pandas())


def test_suppression_list_applies_to_an_earlier_export(spark, shop):
    import geotarget.spark as gs

    eng, tmp, places = shop
    embedded = _ids(eng.audience(stores="all", radius="2km").to_pandas())
    unsuppressed = _ids(gs.to_pandas(gs.radius_audience(spark, tmp / "customers", places)))
    got = _ids(gs.to_pandas(gs.radius_audience(spark, tmp / "customers", places, suppressions=eng)))
    assert got == embedded
    gone = set(unsuppressed) - set(got)
    assert {"c3", "c6"} <= gone and {"c1", "c2"} & gone  # by email hash and by id
    frame = gs.suppression_frame_of(eng)
    assert set(frame["kind"]) == {"id", "email_sha256"} and not frame["value"].str.contains("@").any()


def test_holdout_puts_the_same_customers_in_control(spark, shop):
    import geotarget.spark as gs

    eng, tmp, places = shop
    embedded = eng.audience(stores="all", radius="2km", holdout=0.3, campaign="spring").to_pandas()
    got = gs.to_pandas(gs.radius_audience(spark, tmp / "customers", places, holdout=0.3, campaign="spring",
                                          suppressions=eng))
    merged = embedded.merge(got, on="customer_id", how="outer", indicator=True)
    assert (merged["_merge"] == "both").all()
    assert (merged["group_x"] == merged["group_y"]).all()
    control = (merged["group_x"] == "control").mean()
    assert 0.2 < control < 0.4
    other = gs.to_pandas(gs.radius_audience(spark, tmp / "customers", places, holdout=0.3, campaign="autumn"))
    assert set(other.loc[other["group"] == "control", "customer_id"]) != set(
        got.loc[got["group"] == "control", "customer_id"])


def test_unknown_consent_means_no(spark, tmp_path):
    """A raw dataset with a consent column: rows the embedded ingest marks opted out never reach Spark's audience."""
    import geotarget.spark as gs
    from geotarget.geo.cells import latlng_to_cells
    from geotarget.pings.dataset import write_partitioned

    frame = _customers(seed=5, n=1200)[["customer_id", "lat", "lng", "tier"]]
    frame["opted_out"] = [CONSENT[i % len(CONSENT)] for i in range(len(frame))]
    other = geotarget.open(tmp_path / "consent.duckdb")
    other.ingest_customers(frame)
    _regions(other)
    embedded = other.audience(region_layer="areas").to_pandas()
    table = pa.Table.from_pandas(frame, preserve_index=False).append_column(
        "cell", pa.array(latlng_to_cells(frame["lat"].to_numpy(), frame["lng"].to_numpy()).astype("int64")))
    write_partitioned(table, tmp_path / "raw", day_column=None)
    regions = other.pings.places(region_layer="areas")
    got = gs.to_pandas(gs.region_audience(spark, tmp_path / "raw", regions))
    assert _ids(got) == _ids(embedded) and len(got) > 50
    kept = set(frame.loc[frame["customer_id"].isin(got["customer_id"]), "opted_out"])
    assert kept == {"no", "opted_in", "false", "0"}
    renamed = table.rename_columns(["customer_id", "lat", "lng", "tier", "consent", "cell"])
    write_partitioned(renamed, tmp_path / "renamed", day_column=None)
    named = gs.to_pandas(gs.region_audience(spark, tmp_path / "renamed", regions, consent_col="consent"))
    assert _ids(named) == _ids(embedded)
    other.close()


def test_bad_options_fail_as_on_the_embedded_engine(spark, shop):
    import geotarget.spark as gs

    eng, tmp, places = shop
    for where in (["age > abc"], ["nosuch=1"], ["tier >= 5"]):
        with pytest.raises(InvalidFilterError) as embedded:
            eng.audience(stores="all", radius="2km", where=where)
        with pytest.raises(InvalidFilterError) as got:
            gs.radius_audience(spark, tmp / "customers", places, where=where)
        assert str(got.value).split(";")[0] == str(embedded.value).split(";")[0]
    with pytest.raises(InvalidInputError, match="campaign"):
        gs.radius_audience(spark, tmp / "customers", places, holdout=0.2)
    with pytest.raises(InvalidInputError, match="exclusion zone"):
        gs.radius_audience(spark, tmp / "customers", places, exclude_within=["40.7,-73.9"])
    with pytest.raises(InvalidInputError, match="database"):
        gs.radius_audience(spark, tmp / "customers", places, exclude_regions=["areas:east"])
    with pytest.raises(InvalidInputError, match="consent column 'nope'"):
        gs.radius_audience(spark, tmp / "customers", places, consent_col="nope")


def test_cli_spark_audience_options(spark, shop, tmp_path, capsys):
    from typer.testing import CliRunner

    from geotarget.cli import app
    from geotarget.cli._app import main

    eng, tmp, _ = shop
    out = tmp_path / "aud.csv"
    res = CliRunner().invoke(app, [
        "--db", str(tmp / "shop.duckdb"), "spark", "audience", "--customers", str(tmp / "customers"),
        "--stores", str(tmp / "stores.csv"), "--radius", "2km", "--where", "age>=30", "--where", "tier!=bronze",
        "--exclude-within", ZONE, "--exclude-region", "areas:east", "--holdout", "0.25", "--campaign", "spring",
        "-o", str(out)])
    assert res.exit_code == 0, res.output
    embedded = eng.audience(stores="all", radius="2km", where=["age>=30", "tier!=bronze"], exclude_within=[ZONE],
                            exclude_regions=["areas:east"], holdout=0.25, campaign="spring").to_pandas()
    got = pd.read_csv(out)
    assert len(got) > 50
    merged = embedded.merge(got, on="customer_id", how="outer", indicator=True)
    assert (merged["_merge"] == "both").all() and (merged["group_x"] == merged["group_y"]).all()
    code = main(["--db", str(tmp / "shop.duckdb"), "spark", "audience", "--customers", str(tmp / "customers"),
                 "--stores", str(tmp / "stores.csv"), "--radius", "2km", "--holdout", "0.2",
                 "-o", str(tmp_path / "x.csv")])
    err = capsys.readouterr().err
    assert code == 2 and "campaign" in err and "Traceback" not in err
