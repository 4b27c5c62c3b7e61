"""Trade areas: the share they hold, their minimality, standard cells, nearest stores; against h3-py and pyproj."""

from __future__ import annotations

import h3
import numpy as np
import pandas as pd
import pytest
import shapely
from hypothesis import given, settings
from hypothesis import strategies as st
from pyproj import Geod

from geotarget import trade
from geotarget.errors import InvalidInputError, NotFoundError
from geotarget.maps.geometry import cells_to_polygons

GEOD = Geod(ellps="WGS84")


def _geodesic(lat1, lng1, lat2, lng2) -> float:
    return GEOD.inv(lng1, lat1, lng2, lat2)[2]


@settings(max_examples=40)
@given(seed=st.integers(0, 10_000), n_stores=st.integers(1, 12), spread=st.floats(0.001, 0.5))
def test_nearest_store_is_the_geodesic_nearest(seed, n_stores, spread):
    rng = np.random.default_rng(seed)
    slat, slng = 40 + rng.normal(0, spread, n_stores), -74 + rng.normal(0, spread, n_stores)
    lat, lng = 40 + rng.normal(0, spread, 50), -74 + rng.normal(0, spread, 50)
    idx, dist = trade.nearest_store(lat, lng, slat, slng)
    for i in range(50):
        brute = [_geodesic(lat[i], lng[i], slat[j], slng[j]) for j in range(n_stores)]
        assert dist[i] == pytest.approx(min(brute), abs=1e-6)
        assert idx[i] == int(np.argmin(brute))


def _oracle(store_lat, store_lng, lat, lng, res, share):
    """The trade area by brute force: h3-py cells, pyproj distances, a Python loop."""
    counts: dict = {}
    for a, b in zip(lat, lng):
        c = h3.latlng_to_cell(a, b, res)
        counts[c] = counts.get(c, 0) + 1
    order = sorted(counts, key=lambda c: (_geodesic(store_lat, store_lng, *h3.cell_to_latlng(c)), h3.str_to_int(c)))
    total, cum, area = sum(counts.values()), 0, []
    for c in order:
        if cum >= share * total - 1e-9:
            break
        area.append(c)
        cum += counts[c]
    return area, counts


@settings(max_examples=30)
@given(seed=st.integers(0, 10_000), share=st.sampled_from([0.5, 0.7, 0.9, 1.0, 0.33]), res=st.sampled_from([7, 8, 9]))
def test_trade_area_holds_the_share_and_no_cell_can_be_dropped(seed, share, res):
    rng = np.random.default_rng(seed)
    n_stores = 3
    slat, slng = 40.75 + rng.normal(0, 0.03, n_stores), -73.98 + rng.normal(0, 0.03, n_stores)
    n = 300
    store = rng.integers(0, n_stores, n)
    lat, lng = slat[store] + rng.normal(0, 0.02, n), slng[store] + rng.normal(0, 0.02, n)
    cells = trade.inputs.customer_cells(lat, lng, res)
    frame = trade.trade_area_cells(store, cells, slat, slng, shares=[share])
    col = f"in_{share * 100:g}"
    for j in range(n_stores):
        rows = frame[frame["store"] == j]
        mine = store == j
        if not mine.any():
            assert rows.empty
            continue
        area = rows[rows[col]]
        total = int(mine.sum())
        held = int(area["customers"].sum())
        assert held >= share * total - 1e-9                                   # at least X %
        assert held - int(area["customers"].iloc[-1]) < share * total - 1e-9  # the farthest cell is needed
        assert area.index.tolist() == rows.index[:len(area)].tolist()         # a prefix in distance order
        assert np.all(np.diff(rows["distance_m"].to_numpy()) >= 0)
        want, counts = _oracle(slat[j], slng[j], lat[mine], lng[mine], res, share)
        assert [h3.int_to_str(int(c)) for c in area["cell"]] == want
        assert area["customers"].tolist() == [counts[c] for c in want]


def _engine(eng, n=2000, seed=2):
    rng = np.random.default_rng(seed)
    stores = pd.DataFrame({"store_id": ["A1", "A2", "A3", "B1"], "lat": [40.75, 40.72, 40.78, 40.74],
                           "lng": [-73.99, -73.95, -73.96, -73.97], "brand": ["a", "a", "a", "b"]})
    lat, lng = 40.75 + rng.normal(0, 0.025, n), -73.97 + rng.normal(0, 0.03, n)
    cust = pd.DataFrame({"customer_id": [f"c{i:05d}" for i in range(n)], "lat": lat, "lng": lng,
                         "home": rng.choice(["A1", "A2", "A3", "nowhere"], n)})
    eng.ingest_stores(stores)
    eng.ingest_customers(cust)
    hoods = pd.DataFrame({"hood": ["west", "east"], "population": [60_000.0, 40_000.0],
                          "geometry": [shapely.box(-74.1, 40.6, -73.97, 40.9), shapely.box(-73.97, 40.6, -73.8, 40.9)]})
    import geopandas as gpd

    eng.ingest_regions(gpd.GeoDataFrame(hoods, geometry="geometry", crs=4326), layer="hoods", id_col="hood")
    return stores, cust


def test_trade_areas_from_the_engine(eng, tmp_path):
    stores, cust = _engine(eng)
    ta = trade.trade_areas(eng, share=(0.5, 0.7, 0.9), res=8, brand_col="brand", brand="a", region_layer="hoods",
                           population_col="population")
    assert set(ta.stores["store_id"]) == {"A1", "A2", "A3"}
    # customers belong to their nearest store of the brand; every cell is h3-py's standard cell
    own = stores[stores["brand"] == "a"].reset_index(drop=True)
    near = [int(np.argmin([_geodesic(a, b, s.lat, s.lng) for s in own.itertuples()]))
            for a, b in zip(cust["lat"], cust["lng"])]
    cust = cust.assign(store=own["store_id"].to_numpy()[near],
                       h3=[h3.latlng_to_cell(a, b, 8) for a, b in zip(cust["lat"], cust["lng"])])
    want = cust.groupby(["store", "h3"]).size()
    got = ta.cells.set_index(["store_id", "h3"])["customers"]
    pd.testing.assert_series_equal(got.sort_index(), want.sort_index(), check_names=False, check_dtype=False)
    areas = ta.areas
    assert len(areas) == 9
    for r in areas.itertuples():
        assert r.customers >= r.share * r.store_customers
        cells = ta.area_cells(r.store_id, r.share)
        # the polygon is the union of the cells: its geodesic area is the cells' summed area
        cell_km2 = sum(h3.cell_area(h3.int_to_str(int(c)), unit="km^2") for c in cells)
        geod_km2 = abs(GEOD.geometry_area_perimeter(r.geometry)[0]) / 1e6
        assert r.area_km2 == pytest.approx(cell_km2, rel=2e-3)
        assert geod_km2 == pytest.approx(cell_km2, rel=2e-3)
        assert r.penetration == pytest.approx(r.customers / r.population)
    wider = areas.pivot(index="store_id", columns="share", values="cells")
    assert (wider[0.5] <= wider[0.7]).all() and (wider[0.7] <= wider[0.9]).all()
    path = ta.save(tmp_path / "areas.geojson")
    assert path.read_text().count('"Feature"') == 9 and "c00001" not in path.read_text()
    import geopandas as gpd

    back = gpd.read_parquet(ta.save(tmp_path / "areas.parquet"))
    assert len(back) == 9 and back.crs.to_epsg() == 4326
    html = ta.to_map(tiles=None).get_root().render()
    assert "gt-tradearea" in html and "c00001" not in html
    assert ta.to_png(tmp_path / "ta.png").stat().st_size > 1000


def test_trade_areas_by_home_store_column_and_smoothing(eng):
    _, cust = _engine(eng)
    ta = trade.trade_areas(eng, "A2", share=0.7, res=8, home_store_col="home", smooth=True)
    assert ta.stores["store_id"].tolist() == ["A2"]
    assert ta.cells["store_customers"].iloc[0] == int((cust["home"] == "A2").sum())
    area = ta.areas.iloc[0]
    raw = shapely.union_all(cells_to_polygons(ta.area_cells("A2", 0.7)))
    # smoothing only fills: it keeps every cell of the area
    assert area.geometry.buffer(1e-6).covers(raw)
    assert area.geometry.area >= raw.area
    holes = int(shapely.get_num_interior_rings(shapely.get_parts(area.geometry)).sum())
    assert holes <= int(shapely.get_num_interior_rings(shapely.get_parts(raw)).sum())


def test_trade_area_errors_name_the_value(eng):
    _engine(eng)
    with pytest.raises(InvalidInputError, match="share must be in"):
        trade.trade_areas(eng, share=70)
    with pytest.raises(NotFoundError, match="'ZZ'"):
        trade.trade_areas(eng, "ZZ")
    with pytest.raises(InvalidInputError, match="res must be"):
        trade.trade_areas(eng, res=15)


def test_exports_and_maps_keep_the_floor(eng, tmp_path):
    eng.ingest_stores(pd.DataFrame({"store_id": ["BIG", "TINY"], "lat": [40.75, 40.60], "lng": [-73.99, -73.80]}))
    rng = np.random.default_rng(0)
    lat = np.r_[40.75 + rng.normal(0, 0.01, 50), 40.60 + rng.normal(0, 0.001, 3)]
    lng = np.r_[-73.99 + rng.normal(0, 0.01, 50), -73.80 + rng.normal(0, 0.001, 3)]
    eng.ingest_customers(pd.DataFrame({"customer_id": [f"k{i}" for i in range(53)], "lat": lat, "lng": lng}))
    ta = trade.trade_areas(eng, share=0.7)
    assert ta.areas["store_id"].tolist() == ["BIG", "TINY"]
    text = ta.save(tmp_path / "a.geojson").read_text()
    assert '"BIG"' in text and '"TINY"' not in text
    html = ta.to_map(tiles=None).get_root().render()
    assert '"store_id": "BIG"' in html and '"store_id": "TINY"' not in html and " nan" not in html
    assert len(ta.shown_areas(2)) == 2
