"""Ingest of the shared real datasets (skipped when ../shared/data is absent)."""

import pandas as pd
import pytest
import shapely
from conftest import real_file


def test_sf_crime_incidents_csv(eng):
    path = real_file("sf/sf_crime_incidents_2012h2.csv")
    raw = pd.read_csv(path)
    rep = eng.ingest_customers(path, id_col="IncidntNum")
    assert rep.read == len(raw) == rep.loaded + rep.rejected
    assert rep.loaded == raw["IncidntNum"].nunique()  # several offences per incident: last one kept
    from geotarget.store.validation import REASON_DUPLICATE

    assert set(rep.reasons) <= {REASON_DUPLICATE} and "--id-from row" in REASON_DUPLICATE
    got = eng.store.frame("SELECT lat, lng FROM customers")
    assert got["lat"].between(37.6, 37.9).all() and got["lng"].between(-122.6, -122.3).all()


@pytest.mark.parametrize("id_from", ["row", "hash"])
def test_sf_crime_incidents_without_a_unique_id(eng, id_from):
    path = real_file("sf/sf_crime_incidents_2012h2.csv")
    raw = pd.read_csv(path)
    rep = eng.ingest_stores(path, id_from=id_from)
    assert rep.read == len(raw) == rep.loaded + rep.rejected
    exact_copies = int(raw.duplicated().sum())
    assert rep.loaded == len(raw) - (0 if id_from == "row" else exact_copies)
    if id_from == "row":
        ids = eng.store.frame("SELECT store_id FROM stores")["store_id"].astype(int)
        assert sorted(ids) == list(range(1, len(raw) + 1))


def test_london_cycle_docks_geojson(eng):
    import geopandas as gpd

    path = real_file("london/london_cycle_hire_docks.geojson")
    truth = gpd.read_file(path)
    rep = eng.ingest_customers(path)
    assert rep.loaded == len(truth) and rep.rejected == 0
    got = eng.store.frame("SELECT customer_id, lat, lng FROM customers").set_index("customer_id")
    first = truth.iloc[0]
    assert got.loc[str(first["id"]), "lat"] == pytest.approx(first.geometry.y)
    assert got.loc[str(first["id"]), "lng"] == pytest.approx(first.geometry.x)


def test_king_county_house_sales(eng):
    path = real_file("seattle/kc_house_sales_2014_15.csv")
    raw = pd.read_csv(path, dtype={"id": str})
    rep = eng.ingest_customers(path)
    assert rep.loaded == raw["id"].nunique()
    assert rep.rejected == len(raw) - raw["id"].nunique()
    assert eng.store.columns("customers")["price"] in ("DOUBLE", "BIGINT")
    # the kept row of a house sold twice is its last sale in the file
    dup = raw[raw["id"].duplicated(keep=False)].groupby("id").tail(1).iloc[0]
    price = eng.store.scalar("SELECT price FROM customers WHERE customer_id = $i", {"i": dup["id"]})
    assert price == dup["price"]


def test_nyc_nta_regions(eng):
    import geopandas as gpd

    path = real_file("nyc/nyc_nta2020.geojson")
    truth = gpd.read_file(path)
    rep = eng.ingest_regions(path, layer="nyc_nta", id_col="NTA2020", name_col="NTAName")
    assert rep.loaded == len(truth) == 262
    regions = eng.regions("nyc_nta").set_index("region_id")
    east_harlem = truth.loc[truth["NTAName"] == "East Harlem (North)"].iloc[0]
    got = regions.loc[east_harlem["NTA2020"]]
    assert got["name"] == "East Harlem (North)"
    assert shapely.equals_exact(got.geometry, shapely.make_valid(east_harlem.geometry), tolerance=1e-9)
