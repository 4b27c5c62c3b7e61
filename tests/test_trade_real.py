"""Real data: Chicago supermarkets (their chain as brand) and community-area population (2010)."""

from __future__ import annotations

import warnings

import numpy as np
import pandas as pd
import pytest
from conftest import real_file

import geotarget
from geotarget import trade
from geotarget.errors import GeotargetWarning

STORES = "chicago/chicago_supermarkets_2015.geojson"
AREAS = "chicago/chicago_community_areas_pop2000_2010.geojson"


@pytest.fixture(scope="module")
def chicago():
    import geopandas as gpd
    import shapely

    stores_path, areas_path = real_file(STORES), real_file(AREAS)
    eng = geotarget.open(":memory:")
    shops = gpd.read_file(stores_path)
    # the point geometry is the location (eleven rows have lat = lon = 0 and OBJECTID 0); one row has no chain
    shops = pd.DataFrame({"store_id": [f"M{i:03d}" for i in range(len(shops))], "name": shops["address"],
                          "chain": shops["chain"].fillna("UNKNOWN").str.upper().str.strip(),
                          "lat": shops.geometry.y, "lng": shops.geometry.x})
    eng.ingest_stores(shops)
    with warnings.catch_warnings():  # one community area's ring self-touches; the ingest repairs it and says so
        warnings.simplefilter("ignore", GeotargetWarning)
        eng.ingest_regions(str(areas_path), layer="community", name_col="community")
    # customers of the city drawn where people live: each area gets points in proportion to its 2010 population
    areas = gpd.read_file(areas_path)
    rng = np.random.default_rng(2010)
    pop = areas["POP2010"].to_numpy(dtype=float)
    n = rng.multinomial(30_000, pop / pop.sum())
    lat, lng = [], []
    for geom, k in zip(areas.geometry, n):
        minx, miny, maxx, maxy = geom.bounds
        got = 0
        while got < k:
            x, y = rng.uniform(minx, maxx, 4 * k + 10), rng.uniform(miny, maxy, 4 * k + 10)
            inside = shapely.contains_xy(geom, x, y)
            take = min(k - got, int(inside.sum()))
            lng.extend(x[inside][:take])
            lat.extend(y[inside][:take])
            got += take
    eng.ingest_customers(pd.DataFrame({"customer_id": [f"p{i:06d}" for i in range(len(lat))], "lat": lat,
                                       "lng": lng}))
    yield eng, shops, float(pop.sum())
    eng.close()


def test_huff_over_chicago_population(chicago):
    eng, shops, total_pop = chicago
    model = trade.huff(eng, res=8, brand_col="chain", demand="population", region_layer="community",
                       population_col="POP2010", alpha=1.0, beta=2.0)
    assert len(model.stores) == len(shops)
    np.testing.assert_allclose(model.probabilities.sum(axis=1), 1.0, rtol=1e-12)
    assert model.cells["demand"].sum() == pytest.approx(total_pop, rel=1e-6)  # every person is somewhere
    assert model.stores["expected_demand"].sum() == pytest.approx(total_pop, rel=1e-6)
    brands = model.brand_shares().set_index("brand")
    assert brands["share"].sum() == pytest.approx(1.0)
    assert brands["share"].idxmax() == "JEWEL OSCO"  # the chain with most stores draws most people
    shares = trade.region_shares(eng, model, "community", population_col="POP2010")
    per_region = shares.groupby("region_id")["share"].sum()
    np.testing.assert_allclose(per_region, 1.0, rtol=1e-9)
    assert shares.drop_duplicates("region_id")["demand"].sum() == pytest.approx(total_pop, rel=1e-6)
    first = shares.drop_duplicates("region_id")
    np.testing.assert_allclose(first["demand"], first["population"], rtol=1e-6)  # cells cover every area
    assert first["customers"].sum() == 30_000
    assert first["penetration"].between(0.004, 0.03).all()  # 30,000 customers for 2.7 M people, about 1.1 %


def test_jewel_osco_trade_areas_and_sites(chicago):
    eng, shops, _ = chicago
    ta = trade.trade_areas(eng, share=0.7, res=8, brand_col="chain", brand="JEWEL OSCO",
                           region_layer="community", population_col="POP2010")
    areas = ta.areas
    assert len(areas) == (shops["chain"] == "JEWEL OSCO").sum()
    served = areas[areas["store_customers"] > 0]
    assert (served["customers"] >= 0.7 * served["store_customers"]).all()
    assert (served["population"] > 0).all()
    np.testing.assert_allclose(served["penetration"], served["customers"] / served["population"])
    model = trade.huff(eng, res=8, brand_col="chain")
    combined = trade.trade_area_shares(ta, model)
    assert combined["brand_share"].between(0, 1).all() and (combined["missing_cells"] == 0).all()
    cand = pd.DataFrame({"site_id": ["loop", "far south"], "lat": [41.8819, 41.66], "lng": [-87.6278, -87.60]})
    ranking = trade.evaluate_sites(model, cand, brand="JEWEL OSCO")
    assert (ranking["captured_demand"] >= ranking["cannibalised"]).all()
    assert np.allclose(ranking["net_gain"], ranking["from_competitors"])
