"""Aggregation per cell and region, the k-anonymity floor, and the exports."""

import json

import h3
import numpy as np
import pandas as pd
import pytest
import shapely
from _mapdata import sample_engine
from conftest import real_file
from hypothesis import given
from hypothesis import strategies as st

import geotarget
from geotarget.errors import ColumnNotFoundError, InvalidInputError, NotFoundError, PrivacyError
from geotarget.maps.heatmap import check_k_min, parse_metric


@pytest.fixture(scope="module")
def city():
    eng = sample_engine()
    yield eng
    eng.close()


def _truth(eng, res: int, col: str | None = None) -> pd.DataFrame:
    """Eligible customers with the cell containing each at ``res``, by h3-py's latlng_to_cell, one row at a time."""
    df = eng.store.frame("SELECT customer_id, cell, opted_out, * EXCLUDE (customer_id, cell, opted_out) FROM customers")
    df = df[~df["opted_out"]]
    df["cell_r"] = [h3.latlng_to_cell(a, b, res) for a, b in zip(df["lat"], df["lng"])]
    return df


@pytest.mark.parametrize("res", [0, 5, 8, 11, 15])
def test_counts_equal_h3_latlng_to_cell(city, res):
    got = city.heatmap(res, k_min=0, allow_no_floor=True).cells
    truth = _truth(city, res)["cell_r"].value_counts()
    assert dict(zip(got["h3"], got["customers"])) == truth.to_dict()


@pytest.mark.parametrize("kind", ["sum", "mean", "median"])
def test_value_metrics_equal_pandas_groupby(city, kind):
    got = city.heatmap(8, f"{kind}:spend_12m", k_min=5, allow_no_floor=True).cells.set_index("h3")
    truth = _truth(city, 8).groupby("cell_r")["spend_12m"].agg(["size", kind])
    truth = truth[truth["size"] >= 5]
    assert set(got.index) == set(truth.index)
    np.testing.assert_allclose(got["value"].to_numpy(), truth.loc[got.index, kind].to_numpy(), rtol=1e-9)


def test_the_ancestor_of_the_fine_cell_is_not_what_counts(city):
    # H3 children overhang their parent: some points' res-8 ancestor is the
    # hexagon next to the one around them; the heatmap follows latlng_to_cell.
    pts = city.store.frame("SELECT lat, lng, cell FROM customers WHERE NOT opted_out")
    ancestor = [h3.cell_to_parent(h3.int_to_str(int(c)), 8) for c in pts["cell"]]
    containing = [h3.latlng_to_cell(a, b, 8) for a, b in zip(pts["lat"], pts["lng"])]
    differ = [(a, c) for a, c in zip(ancestor, containing) if a != c]
    assert 0 < len(differ) < 0.1 * len(pts)
    assert all(h3.are_neighbor_cells(a, c) for a, c in differ)
    got = city.heatmap(8, k_min=0, allow_no_floor=True).cells
    assert dict(zip(got["h3"], got["customers"])) == pd.Series(containing).value_counts().to_dict()


def test_floor_hides_every_small_cell_and_reports_it(city):
    everything = city.heatmap(9, k_min=0, allow_no_floor=True).cells
    hm = city.heatmap(9, k_min=10)
    assert (hm.cells["customers"] >= 10).all()
    small = everything[everything["customers"] < 10]
    assert hm.suppressed_cells == len(small) and hm.suppressed_customers == small["customers"].sum()
    assert len(hm.cells) + hm.suppressed_cells == len(everything)
    assert hm.total_customers == everything["customers"].sum() == hm.cells["customers"].sum() + hm.suppressed_customers


def test_floor_counts_values_too():
    eng = geotarget.open(":memory:")
    eng.ingest_customers(pd.DataFrame({"customer_id": [f"c{i}" for i in range(12)], "lat": [40.758] * 12,
                                       "lng": [-73.9855] * 12, "spend": [5.0] * 3 + [None] * 9}))
    assert len(eng.heatmap(8, "count").cells) == 1
    hm = eng.heatmap(8, "mean:spend")  # 12 customers but only 3 values: one person's spend would show
    assert hm.cells.empty and hm.suppressed_cells == 1 and hm.suppressed_customers == 12


@pytest.mark.parametrize("k_min", [0, 1, None])
def test_turning_the_floor_off_needs_the_flag(city, k_min):
    with pytest.raises(PrivacyError, match="allow_no_floor"):
        city.heatmap(8, k_min=k_min)
    assert city.heatmap(8, k_min=k_min, allow_no_floor=True).k_min == 1


def test_check_k_min_rejects_nonsense():
    for bad in (-1, 2.5, True, "10"):
        with pytest.raises(InvalidInputError):
            check_k_min(bad)


def test_opted_out_and_suppressed_customers_never_count():
    eng = geotarget.open(":memory:")
    base = pd.DataFrame({"customer_id": [f"c{i}" for i in range(14)], "lat": [40.758] * 14, "lng": [-73.9855] * 14,
                         "opted_out": [False] * 12 + [True] * 2})
    eng.ingest_customers(base)
    assert eng.heatmap(8).cells["customers"].tolist() == [12]
    eng.ingest_suppressions(["c0", "c1", "c2"])
    hm = eng.heatmap(8)
    assert hm.cells.empty and hm.suppressed_customers == 9


def test_metric_parsing_and_column_errors(city):
    assert parse_metric("count").kind == "count"
    assert str(parse_metric("penetration:hoods:population")) == "penetration:hoods:population"
    for bad in ("avg:x", "sum", "penetration:hoods", "count:x", ""):
        with pytest.raises(InvalidInputError, match="unknown metric"):
            parse_metric(bad)
    with pytest.raises(ColumnNotFoundError, match="numeric columns: age, lat, lng, spend_12m"):
        city.heatmap(8, "mean:nope")
    with pytest.raises(InvalidInputError, match="'tier' is VARCHAR, not numeric"):
        city.heatmap(8, "sum:tier")
    with pytest.raises(ColumnNotFoundError, match="has no column 'pop'"):
        city.heatmap(8, "penetration:hoods:pop")
    with pytest.raises(NotFoundError, match="layer 'nope' not found"):
        city.heatmap(8, "count", region_layer="nope")
    for res in (-1, 16, 8.0, True):
        with pytest.raises(InvalidInputError, match=r"in \[0, 15\]"):
            city.heatmap(res)


def test_odd_column_names_are_quoted_not_injected():
    eng = geotarget.open(":memory:")
    col = 'spend "x"; DROP TABLE customers; --'
    eng.ingest_customers(pd.DataFrame({"customer_id": [f"c{i}" for i in range(10)], "lat": [40.7] * 10,
                                       "lng": [-74.0] * 10, col: np.arange(10.0)}))
    assert eng.heatmap(8, f"sum:{col}").cells["value"].tolist() == [45.0]


def test_heatmap_over_an_audience(city):
    ids = city.store.frame("SELECT customer_id FROM customers WHERE NOT opted_out ORDER BY customer_id LIMIT 3000")
    hm = city.heatmap(7, audience=ids, k_min=2, allow_no_floor=True)
    assert hm.total_customers == 3000
    assert city.heatmap(7, audience=list(ids["customer_id"]), k_min=2, allow_no_floor=True).cells.equals(hm.cells)
    aud = city.audience(stores="all", radius="2mi")
    assert city.heatmap(8, audience=aud, k_min=2, allow_no_floor=True).total_customers == len(aud)


def test_per_region_equals_a_spatial_join(city):
    import geopandas as gpd

    got = city.heatmap(metric="median:spend_12m", region_layer="hoods", k_min=20)
    regions = city.regions("hoods")
    pts = city.store.frame("SELECT lat, lng, spend_12m FROM customers WHERE NOT opted_out")
    joined = gpd.sjoin(gpd.GeoDataFrame(pts, geometry=gpd.points_from_xy(pts.lng, pts.lat), crs="EPSG:4326"),
                       regions[["region_id", "geometry"]], predicate="intersects")
    truth = joined.groupby("region_id")["spend_12m"].agg(["size", "median"])
    truth = truth[truth["size"] >= 20]
    assert got.regions["region_id"].tolist() == sorted(truth.index)
    np.testing.assert_allclose(got.regions["value"], truth.loc[got.regions["region_id"], "median"], rtol=1e-9)
    assert got.unassigned_customers == len(pts) - len(joined)


def test_penetration_per_region_and_per_cell(city):
    per_region = city.heatmap(metric="penetration:hoods:population", region_layer="hoods", k_min=10)
    regions = city.regions("hoods")
    pop = {r: json.loads(p)["population"] for r, p in zip(regions["region_id"], regions["properties"])}
    r = per_region.regions
    np.testing.assert_allclose(r["value"], r["customers"] / r["region_id"].map(pop))
    cells = city.heatmap(8, metric="penetration:hoods:population", k_min=0, allow_no_floor=True).cells
    np.testing.assert_allclose(cells["value"], cells["customers"] / cells["population"], rtol=1e-3)
    assert (cells["population"] > 0).all()


def test_apportioned_population_adds_up():
    from geotarget.maps.geometry import apportion, cells_to_polygons

    square = shapely.box(-74.0, 40.70, -73.95, 40.75)
    cells = h3.h3shape_to_cells_experimental(h3.geo_to_h3shape(square.buffer(0.02)), 8, contain="overlap")
    polys = cells_to_polygons([h3.str_to_int(c) for c in cells])
    assert apportion([square], [10_000.0], polys).sum() == pytest.approx(10_000.0, rel=1e-3)


def test_exports_hold_only_shown_rows(city, tmp_path):
    hm = city.heatmap(8, "mean:spend_12m")
    hidden = set(city.heatmap(8, "mean:spend_12m", k_min=0, allow_no_floor=True).cells["h3"]) - set(hm.cells["h3"])
    assert hidden
    csv = pd.read_csv(hm.save(tmp_path / "c.csv"))
    parquet = pd.read_parquet(hm.save(tmp_path / "c.parquet"))
    gj = json.loads(hm.save(tmp_path / "c.geojson").read_text())
    for shown in (set(csv["h3"]), set(parquet["h3"]), {f["properties"]["h3"] for f in gj["features"]}):
        assert shown == set(hm.cells["h3"]) and not shown & hidden
    assert (parquet["cell"].to_numpy(dtype="uint64") == hm.cells["cell"].to_numpy()).all()
    text = (tmp_path / "c.geojson").read_text()
    assert not any(h in text for h in hidden)
    coords = np.asarray(gj["features"][0]["geometry"]["coordinates"][0])
    assert (np.round(coords, 6) == coords).all()
    with pytest.raises(InvalidInputError, match="cannot tell the format"):
        hm.save(tmp_path / "c.xlsx")


def test_region_geojson_export(city, tmp_path):
    hm = city.heatmap(metric="count", region_layer="hoods", k_min=10)
    gj = json.loads(hm.to_geojson(tmp_path / "r.geojson").read_text())
    assert [f["properties"]["region_id"] for f in gj["features"]] == hm.regions["region_id"].tolist()
    with pytest.raises(InvalidInputError, match="use .regions"):
        hm.cells  # noqa: B018


def test_nyc_airbnb_mean_price_per_cell_and_per_nta():
    import geopandas as gpd

    listings = real_file("nyc/nyc_airbnb_listings_2019.csv")
    nta = real_file("nyc/nyc_nta2020.geojson")
    eng = geotarget.open(":memory:")
    eng.ingest_customers(listings, id_col="id")
    eng.ingest_regions(nta, layer="nyc_nta", id_col="NTA2020", name_col="NTAName")
    raw = pd.read_csv(listings, usecols=["id", "latitude", "longitude", "price"]).drop_duplicates("id", keep="last")

    # a listing counts in the res-8 cell that contains it, as h3-py says
    raw["cell"] = [h3.latlng_to_cell(a, b, 8) for a, b in zip(raw["latitude"], raw["longitude"])]
    truth = raw.groupby("cell")["price"].agg(["size", "mean"])
    truth = truth[truth["size"] >= 10]
    got = eng.heatmap(8, "mean:price").cells.set_index("h3")
    assert len(got) > 400 and set(got.index) == set(truth.index)
    np.testing.assert_allclose(got["value"], truth.loc[got.index, "mean"], rtol=1e-9)

    areas = gpd.read_file(nta)[["NTA2020", "geometry"]].to_crs("EPSG:4326")
    pts = gpd.GeoDataFrame(raw, geometry=gpd.points_from_xy(raw["longitude"], raw["latitude"]), crs="EPSG:4326")
    joined = gpd.sjoin(pts, areas, predicate="intersects").drop_duplicates("id")
    by_nta = joined.groupby("NTA2020")["price"].agg(["size", "mean"])
    by_nta = by_nta[by_nta["size"] >= 10]
    per_nta = eng.heatmap(metric="mean:price", region_layer="nyc_nta").regions.set_index("region_id")
    assert len(per_nta) > 150 and set(per_nta.index) == set(by_nta.index)
    np.testing.assert_allclose(per_nta["value"], by_nta.loc[per_nta.index, "mean"], rtol=1e-9)


def test_count_from_the_snapshot_equals_the_sql_path():
    """The in-memory count path and the path over coordinates agree cell for cell, with and without an audience."""
    import numpy as np
    import pandas as pd

    import geotarget
    from geotarget.maps import heatmap as hm

    rng = np.random.default_rng(11)
    n = 20_000
    eng = geotarget.open(":memory:")
    eng.ingest_customers(pd.DataFrame({
        "customer_id": [f"q{i}" for i in range(n)], "lat": rng.normal(40.72, 0.05, n),
        "lng": rng.normal(-73.95, 0.06, n), "opted_out": rng.random(n) < 0.1}))
    eng.ingest_suppressions([f"q{i}" for i in range(0, n, 50)])
    aud = eng.audience(points=[(40.72, -73.95)], radius="3km")
    metric = hm.parse_metric("count")
    for res in (5, 8, 11):
        for audience, exclude in ((None, False), (aud, False), (aud, True)):
            fast = hm._counts_from_index(eng, res, audience, exclude)
            ids = None if audience is None else audience.to_pandas()[["customer_id"]]
            slow = hm._counts_from_points(eng, res, metric, None, ids, exclude)
            assert fast["cell"].astype("uint64").tolist() == slow["cell"].astype("uint64").tolist()
            assert fast["customers"].tolist() == slow["customers"].astype("int64").tolist()
    assert metric.kind == "count"
