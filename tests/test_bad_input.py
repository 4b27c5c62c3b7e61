"""Bad input gets a reject or a one-line error naming what to do, never a traceback or a silent load."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from shapely.geometry import Polygon, box

import geotarget


def test_a_bad_value_deep_in_a_csv_is_one_reject(eng, tmp_path):
    n = 25_000
    frame = pd.DataFrame({"customer_id": [f"c{i}" for i in range(n)], "lat": np.full(n, 40.7).astype(object),
                          "lng": -74.0})
    frame.loc[21_000, "lat"] = "40,7"
    path = tmp_path / "deep.csv"
    frame.to_csv(path, index=False)
    rep = eng.ingest_customers(path)
    assert (rep.loaded, rep.rejected) == (n - 1, 1) and rep.reasons == {"non-numeric coordinates": 1}
    assert eng.rejects()["row_number"].tolist() == [21_001]


def test_swapped_new_york_is_refused_unless_overridden(eng):
    rng = np.random.default_rng(1)
    swapped = pd.DataFrame({"customer_id": [f"c{i}" for i in range(200)], "lat": rng.uniform(-74.2, -73.7, 200),
                            "lng": rng.uniform(40.5, 40.9, 200)})
    with pytest.raises(geotarget.SwappedCoordinatesError, match="--no-swap-check"):
        eng.ingest_customers(swapped)
    assert eng.store.scalar("SELECT count(*) FROM customers") == 0
    assert eng.ingest_customers(swapped, swap_check=False).loaded == 200


def test_unknown_crs_and_duplicate_columns_are_one_line_errors(eng):
    frame = pd.DataFrame({"customer_id": ["a"], "x": [1.0], "y": [2.0]})
    with pytest.raises(geotarget.GeotargetError, match="unknown CRS 'EPSG:99999'"):
        eng.ingest_customers(frame, lat_col="y", lng_col="x", crs="EPSG:99999")
    twice = pd.DataFrame([["a", 40.7, -74.0, 1]], columns=["customer_id", "lat", "lng", "lat"])
    with pytest.raises(geotarget.GeotargetError, match="more than one column named 'lat'"):
        eng.ingest_customers(twice)


def test_regions_projected_zero_area_empty_and_in_use(eng, tmp_path):
    import geopandas as gpd

    path = tmp_path / "projected.geojson"  # UTM 18N metres, written without a crs member
    path.write_text('{"type": "FeatureCollection", "features": [{"type": "Feature", "properties": {"name": "a"}, '
                    '"geometry": {"type": "Polygon", "coordinates": [[[583000, 4506000], [584000, 4506000], '
                    '[584000, 4507000], [583000, 4506000]]]}}]}', encoding="utf-8")
    with pytest.raises(geotarget.GeotargetError, match="looks projected"):
        eng.ingest_regions(path, layer="p")
    flat = Polygon([(-74.0, 40.7), (-73.9, 40.8), (-73.8, 40.9), (-74.0, 40.7)])
    good = box(-74.0, 40.7, -73.9, 40.8)
    rep = eng.ingest_regions(gpd.GeoDataFrame({"name": ["flat", "sq"]}, geometry=[flat, good], crs=4326), layer="l")
    assert rep.loaded == 1 and rep.reasons == {"polygon has zero area (its ring is a line or a point)": 1}
    assert eng.regions("l")["name"].tolist() == ["sq"]
    eng.create_campaign("midtown", region_layer="l", regions=["sq"])
    empty = gpd.GeoDataFrame({"name": []}, geometry=[], crs=4326)
    with pytest.raises(geotarget.GeotargetError, match="--confirm"):
        eng.ingest_regions(empty, layer="l")
    other = gpd.GeoDataFrame({"name": ["other"]}, geometry=[good], crs=4326)
    with pytest.raises(geotarget.GeotargetError, match="campaigns use: 'midtown'"):
        eng.ingest_regions(other, layer="l", id_col=None)
    assert eng.regions("l")["name"].tolist() == ["sq"]
    assert eng.ingest_regions(other, layer="l", confirm=True).loaded == 1


def test_swapped_points_that_land_where_the_stores_are_only_when_swapped(eng):
    """Points in range both ways (lat 10..20, lng 30..40) but the stores are at lat 30..40, lng 10..20."""
    rng = np.random.default_rng(2)
    eng.ingest_stores(pd.DataFrame({"store_id": ["S1", "S2"], "lat": [31.0, 39.0], "lng": [11.0, 19.0]}))
    lat, lng = rng.uniform(30, 40, 300), rng.uniform(10, 20, 300)
    swapped = pd.DataFrame({"customer_id": [f"c{i}" for i in range(300)], "lat": lng, "lng": lat})
    with pytest.raises(geotarget.SwappedCoordinatesError, match="where the stored stores and regions are"):
        eng.ingest_customers(swapped)
    assert eng.ingest_customers(swapped.rename(columns={"lat": "lng", "lng": "lat"})).loaded == 300
    assert eng.ingest_customers(swapped.assign(customer_id=lambda f: "x" + f["customer_id"]),
                                swap_check=False).loaded == 300


def test_ctrl_c_mid_ingest_leaves_the_database_as_it_was(eng):
    eng.ingest_customers(pd.DataFrame({"customer_id": ["a"], "lat": [40.7], "lng": [-74.0], "tier": ["gold"]}))

    def interrupt(done, total):
        raise KeyboardInterrupt

    big = pd.DataFrame({"customer_id": ["a", "b"], "lat": [40.7, 40.8], "lng": [-74.0, -74.0], "tier": ["x", "y"]})
    with pytest.raises(KeyboardInterrupt):
        eng.ingest_customers(big, progress=interrupt)
    assert eng.store.con.execute("SELECT customer_id, tier FROM customers").fetchall() == [("a", "gold")]
    assert eng.ingest_customers(big).loaded == 2  # and the database still takes writes


def test_cli_ctrl_c_is_one_line(tmp_path):
    import subprocess
    import sys
    import textwrap

    script = textwrap.dedent(f"""
        import sys, geotarget.store.ingest as ingest
        def stop(*a, **k):
            raise KeyboardInterrupt
        ingest._load = stop
        sys.argv = ["geotarget", "--db", {str(tmp_path / "c.duckdb")!r}, "ingest", "customers", {str(tmp_path / "c.csv")!r}]
        from geotarget.cli import run
        run()
    """)
    (tmp_path / "c.csv").write_text("customer_id,lat,lng\na,40.7,-74.0\n", encoding="utf-8")
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=120)
    assert done.returncode == 130 and "Traceback" not in done.stderr
    assert done.stderr.strip().count("\n") == 0 and "interrupted" in done.stderr


def test_a_huge_single_line_file_is_refused_without_reading_it_whole(eng, tmp_path):
    import tracemalloc

    path = tmp_path / "one_line.csv"
    with open(path, "w", encoding="utf-8") as fh:
        for _ in range(40):
            fh.write("x," * 250_000)  # 20 MB, no newline
    tracemalloc.start()
    with pytest.raises(geotarget.GeotargetError, match="longer than 1,048,576 characters"):
        eng.ingest_customers(path)
    peak = tracemalloc.get_traced_memory()[1]
    tracemalloc.stop()
    assert peak < 16 * 2**20  # well under the file's 20 MB
