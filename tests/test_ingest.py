"""Validation, accounting, upsert, atomicity and scale behaviour of the ingest."""

import json
import os
import signal
import subprocess
import sys
import textwrap

import pandas as pd
import pytest
from hypothesis import given
from hypothesis import strategies as st

import geotarget
from geotarget.store import ingest as ig
from geotarget.errors import ColumnNotFoundError, SourceError, SwappedCoordinatesError


def _count(eng, table="customers"):
    return eng.store.con.execute(f"SELECT count(*) FROM {table}").fetchall()[0][0]


def test_every_reason_is_recorded(eng):
    df = pd.DataFrame({
        "customer_id": ["ok", None, "nonnum", "nan", "inf", "lat", "lng", "zero", "missing", "ok2", "ok"],
        "lat": ["40.7", "40.7", "abc", "nan", "inf", "95", "40.7", "0", None, "-33.9", "40.71"],
        "lng": ["-74", "-74", "-74", "-74", "-74", "-74", "-200", "0", "-74", "151.2", "-74.01"],
    })
    rep = eng.ingest_customers(df)
    reasons = eng.rejects().set_index("row_number")["reason"].to_dict()
    assert reasons == {
        1: ig.REASON_DUPLICATE,
        2: ig.REASON_MISSING_ID,
        3: ig.REASON_NON_NUMERIC,
        4: ig.REASON_NON_FINITE,
        5: ig.REASON_NON_FINITE,
        6: ig.REASON_LAT_RANGE,
        7: ig.REASON_LNG_RANGE,
        8: ig.REASON_NULL_ISLAND,
        9: ig.REASON_MISSING_COORDS,
    }
    assert (rep.read, rep.loaded, rep.rejected) == (11, 2, 9)
    kept = eng.store.con.execute("SELECT customer_id, lat, lng FROM customers ORDER BY 1").fetchall()
    assert kept == [("ok", 40.71, -74.01), ("ok2", -33.9, 151.2)]  # the later 'ok' row won


def test_rejects_keep_the_raw_row(eng):
    eng.ingest_customers(pd.DataFrame({"customer_id": ["a", "b", "c"], "lat": [123.4, 40.7, 40.8],
                                       "lng": [10.0, -74.0, -74.0], "tier": ["gold", "gold", "silver"]}))
    raw = json.loads(eng.rejects()["raw"][0])
    assert raw == {"customer_id": "a", "lat": 123.4, "lng": 10.0, "tier": "gold"}


@given(st.lists(st.tuples(
    st.one_of(st.none(), st.text(min_size=0, max_size=3)),
    st.one_of(st.none(), st.floats(allow_nan=True, allow_infinity=True), st.text(max_size=4)),
    st.one_of(st.none(), st.floats(allow_nan=True, allow_infinity=True), st.text(max_size=4)),
), min_size=1, max_size=40))
def test_accounting_holds_for_any_rows(rows):
    eng = geotarget.open(":memory:")
    df = pd.DataFrame(rows, columns=["customer_id", "lat", "lng"]).astype(object)
    try:
        rep = eng.ingest_customers(df)
    except SwappedCoordinatesError:
        assert _count(eng) == 0
        return
    assert rep.read == len(df) == rep.loaded + rep.rejected
    assert _count(eng) == rep.loaded
    assert _count(eng, "rejects") == rep.rejected
    ids = eng.store.con.execute("SELECT customer_id FROM customers").fetchall()
    assert len(ids) == len(set(ids))
    bad = eng.store.con.execute("SELECT count(*) FROM customers WHERE abs(lat) > 90 OR abs(lng) > 180 "
                                "OR isnan(lat) OR isnan(lng) OR (lat = 0 AND lng = 0)").fetchall()[0][0]
    assert bad == 0
    eng.close()


def test_file_full_of_bad_rows(tmp_path, eng):
    path = tmp_path / "bad.csv"
    lines = ["customer_id,lat,lng"] + [f"b{i},{'x' if i % 3 else 999},{-74}" for i in range(500)] + ["good,40.7,-74.0"]
    path.write_text("\n".join(lines) + "\n")
    rep = eng.ingest_customers(path)
    assert rep.read == 501 and rep.loaded == 1 and rep.rejected == 500
    assert sum(rep.reasons.values()) == 500
    assert set(eng.rejects()["source"]) == {str(path)}


def test_reingest_is_idempotent_and_upserts(tmp_path, eng, tiny_customers):
    path = tmp_path / "c.csv"
    tiny_customers.to_csv(path, index=False)
    first = eng.ingest_customers(path)
    second = eng.ingest_customers(path)
    assert (first.inserted, second.inserted, second.updated) == (4, 0, 4)
    assert _count(eng) == 4
    changed = tiny_customers.copy()
    changed.loc[0, "tier"] = "platinum"
    changed.loc[0, "lat"] = 40.8
    changed.to_csv(path, index=False)
    eng.ingest_customers(path)
    row = eng.store.con.execute("SELECT tier, lat, cell FROM customers WHERE customer_id = 'c1'").fetchall()[0]
    assert row[:2] == ("platinum", 40.8)
    assert row[2] == int(geotarget.geo.cells.latlng_to_cells([40.8], [-73.9855])[0])
    assert _count(eng) == 4


@pytest.mark.parametrize("fmt", ["csv", "parquet", "frame"])
def test_fresh_and_merged_loads_agree_with_duplicates_across_batches(tmp_path, fmt):
    """A load into an empty table (written directly) and one merged into a non-empty table
    keep the same rows and record the same superseded duplicates, even across batches."""
    n = 1_000
    df = pd.DataFrame({"customer_id": [f"c{i % 700}" for i in range(n)],
                       "lat": [40.5 + i * 1e-4 for i in range(n)], "lng": [-74.0 + i * 1e-4 for i in range(n)],
                       "spend": [float(i) for i in range(n)]})
    if fmt == "frame":
        source = df
    else:
        source = tmp_path / f"c.{fmt}"
        getattr(df, f"to_{fmt}")(source, index=False)
    fresh = geotarget.open(":memory:")
    rep = ig.ingest_points(fresh.store, source, "customers", batch_rows=128)
    merged = geotarget.open(":memory:")
    merged.ingest_customers(pd.DataFrame({"customer_id": ["other"], "lat": [1.0], "lng": [1.0]}))
    rep2 = ig.ingest_points(merged.store, source, "customers", batch_rows=128)
    assert (rep.read, rep.loaded, rep.rejected) == (n, 700, 300) == (rep2.read, rep2.loaded, rep2.rejected)
    q = "SELECT customer_id, lat, spend FROM customers WHERE customer_id <> 'other' ORDER BY customer_id"
    a, b = fresh.store.frame(q), merged.store.frame(q)
    pd.testing.assert_frame_equal(a, b)
    last = df.drop_duplicates("customer_id", keep="last").sort_values("customer_id").reset_index(drop=True)
    assert a["spend"].tolist() == last.set_index("customer_id").loc[a["customer_id"], "spend"].tolist()
    rej = fresh.rejects()
    assert sorted(rej["row_number"]) == list(range(1, 301))  # rows 1..300 are superseded by rows 701..1000
    assert set(rej["reason"]) == {ig.REASON_DUPLICATE}


def test_cells_are_stored_for_every_row(eng, tiny_customers):
    eng.ingest_customers(tiny_customers)
    got = eng.store.frame("SELECT lat, lng, cell FROM customers")
    expected = geotarget.geo.cells.latlng_to_cells(got["lat"], got["lng"], eng.store.res)
    assert (got["cell"].to_numpy(dtype="uint64") == expected).all()


def test_extra_columns_keep_their_types(eng, tiny_customers):
    eng.ingest_customers(tiny_customers.assign(visits=[1, 2, 3, 4], joined=pd.to_datetime(["2024-01-01"] * 4)))
    cols = eng.store.columns("customers")
    assert cols["spend"] == "DOUBLE" and cols["visits"] == "BIGINT" and cols["tier"] == "VARCHAR"
    assert cols["joined"].startswith("TIMESTAMP")


def test_column_detection_and_overrides(eng):
    df = pd.DataFrame({"ID": ["a"], "Latitude": [40.7], "LONGITUDE": [-74.0]})
    assert eng.ingest_customers(df).loaded == 1
    df2 = pd.DataFrame({"who": ["b"], "north": [40.7], "east": [-74.0]})
    with pytest.raises(ColumnNotFoundError, match="--id-col"):
        eng.ingest_customers(df2)
    assert eng.ingest_customers(df2, id_col="who", lat_col="north", lng_col="east").loaded == 1
    with pytest.raises(ColumnNotFoundError, match="available columns"):
        eng.ingest_customers(df2, id_col="nope")


def test_swapped_coordinates_stop_the_ingest(eng):
    df = pd.DataFrame({"customer_id": list("abcdef"), "lat": [-122.4] * 6, "lng": [37.7] * 6})
    with pytest.raises(SwappedCoordinatesError, match="--lat-col lng --lng-col lat"):
        eng.ingest_customers(df)
    assert _count(eng) == 0 and _count(eng, "rejects") == 0


def test_projected_input_is_reprojected(eng):
    import geopandas as gpd
    from shapely.geometry import Point

    g = gpd.GeoDataFrame({"customer_id": ["p"]}, geometry=[Point(-73.9855, 40.758)], crs=4326).to_crs(2263)
    eng.ingest_customers(g)
    lat, lng = eng.store.con.execute("SELECT lat, lng FROM customers").fetchall()[0]
    assert lat == pytest.approx(40.758, abs=1e-7) and lng == pytest.approx(-73.9855, abs=1e-7)
    # plain x/y columns with a CRS option
    xy = pd.DataFrame({"customer_id": ["q"], "x": [g.geometry.x[0]], "y": [g.geometry.y[0]]})
    eng.ingest_customers(xy, crs="EPSG:2263")
    lat, lng = eng.store.con.execute("SELECT lat, lng FROM customers WHERE customer_id = 'q'").fetchall()[0]
    assert lat == pytest.approx(40.758, abs=1e-7) and lng == pytest.approx(-73.9855, abs=1e-7)


def test_geometry_sources_reject_non_points(eng, tmp_path):
    import geopandas as gpd
    from shapely.geometry import LineString, Point

    g = gpd.GeoDataFrame({"id": ["a", "b", "c"]},
                         geometry=[Point(-74, 40.7), LineString([(0, 1), (1, 2)]), None], crs=4326)
    path = tmp_path / "pts.geojson"
    g.to_file(path)
    rep = eng.ingest_customers(path)
    assert (rep.loaded, rep.rejected) == (1, 2)
    assert set(eng.rejects()["reason"]) == {ig.REASON_NOT_POINT, ig.REASON_MISSING_COORDS}


@pytest.mark.parametrize("fmt", ["parquet", "geoparquet", "gpkg"])
def test_other_formats(eng, tmp_path, tiny_customers, fmt):
    import geopandas as gpd

    if fmt == "parquet":
        path = tmp_path / "c.parquet"
        tiny_customers.to_parquet(path)
    else:
        g = gpd.GeoDataFrame(tiny_customers.drop(columns=["lat", "lng"]),
                             geometry=gpd.points_from_xy(tiny_customers.lng, tiny_customers.lat), crs=4326)
        path = tmp_path / ("c.parquet" if fmt == "geoparquet" else "c.gpkg")
        g.to_parquet(path) if fmt == "geoparquet" else g.to_file(path)
    assert eng.ingest_customers(path).loaded == 4
    got = eng.store.con.execute("SELECT lat FROM customers WHERE customer_id = 'c3'").fetchall()[0][0]
    assert got == pytest.approx(40.6782)


def test_malformed_file_leaves_database_unchanged(db_path, tmp_path, tiny_customers):
    with geotarget.open(db_path) as eng:
        eng.ingest_customers(tiny_customers)
        before = eng.store.con.execute("SELECT * FROM customers ORDER BY 1").fetchall()
        bad = tmp_path / "broken.parquet"
        tiny_customers.to_parquet(bad)
        bad.write_bytes(bad.read_bytes()[:-40])  # truncated
        with pytest.raises(SourceError):
            eng.ingest_customers(bad)
        unterminated = tmp_path / "broken.csv"
        unterminated.write_text('customer_id,lat,lng\nz,40.7,-74\n"y,40.8,-74\n')
        with pytest.raises(SourceError):
            eng.ingest_customers(unterminated)
        assert eng.store.con.execute("SELECT * FROM customers ORDER BY 1").fetchall() == before
        assert _count(eng, "rejects") == 0


def test_exception_mid_ingest_rolls_back(db_path, tiny_customers, monkeypatch):
    with geotarget.open(db_path) as eng:
        eng.ingest_customers(tiny_customers)
        version = eng.store.data_version
        calls = {"n": 0}

        def interrupt(done, total):
            calls["n"] += 1
            if calls["n"] == 2:
                raise KeyboardInterrupt

        big = pd.DataFrame({"customer_id": [f"n{i}" for i in range(50)], "lat": 40.7, "lng": -74.0})
        monkeypatch.setattr(ig, "open_source", _small_batches(ig.open_source))
        with pytest.raises(KeyboardInterrupt):
            eng.ingest_customers(big, progress=interrupt)
        assert _count(eng) == 4
        assert eng.store.data_version == version


def _small_batches(real):
    def opener(source, **kw):
        kw["batch_rows"] = 10
        return real(source, **kw)
    return opener


def test_kill_minus_9_mid_ingest_keeps_previous_state(tmp_path, tiny_customers):
    db = tmp_path / "k.duckdb"
    with geotarget.open(db) as eng:
        eng.ingest_customers(tiny_customers)
    marker = tmp_path / "started"
    script = textwrap.dedent(f"""
        import time, pathlib, pandas as pd, geotarget
        eng = geotarget.open({str(db)!r})
        big = pd.DataFrame({{"customer_id": [f"k{{i}}" for i in range(200_000)], "lat": 40.7, "lng": -74.0}})
        def slow(done, total):
            pathlib.Path({str(marker)!r}).touch()
            time.sleep(30)
        eng.ingest_customers(big, progress=slow)
    """)
    proc = subprocess.Popen([sys.executable, "-c", script])
    try:
        for _ in range(600):
            if marker.exists() or proc.poll() is not None:
                break
            import time
            time.sleep(0.05)
        assert marker.exists(), "the child never reached the middle of its ingest"
        os.kill(proc.pid, signal.SIGKILL)
        proc.wait(timeout=30)
    finally:
        if proc.poll() is None:
            proc.kill()
    with geotarget.open(db) as eng:
        rows = eng.store.con.execute("SELECT customer_id FROM customers ORDER BY 1").fetchall()
    assert [r[0] for r in rows] == ["c1", "c2", "c3", "c4"]


def test_stores_and_regions(eng, tmp_path):
    import geopandas as gpd
    from shapely.geometry import Polygon

    eng.ingest_stores(pd.DataFrame({"store_id": ["S1", "S2"], "name": ["A", "B"], "lat": [40.7, 40.8], "lng": [-74, -73.9]}))
    assert eng.stores()["name"].tolist() == ["A", "B"]
    bowtie = Polygon([(0, 0), (1, 1), (1, 0), (0, 1), (0, 0)])
    square = Polygon([(-74, 40.7), (-73.9, 40.7), (-73.9, 40.8), (-74, 40.8)])
    g = gpd.GeoDataFrame({"name": ["bow", "sq"]}, geometry=[bowtie, square], crs=4326)
    with pytest.warns(ig.GeotargetWarning, match="repaired"):
        rep = eng.ingest_regions(g, layer="test")
    assert rep.loaded == 2
    regions = eng.regions("test")
    assert regions.geometry.is_valid.all()
    assert regions.loc[regions["name"] == "bow"].geometry.iloc[0].area == pytest.approx(0.5)
    with pytest.raises(geotarget.NotFoundError, match="layers: test"):
        eng.regions("nope")


def test_batches_prepared_two_at_a_time_are_written_in_file_order(monkeypatch):
    """Workers finish out of order (a random delay per batch); rows, row numbers and duplicates follow the file."""
    import random
    import time

    real = ig._validate
    delays = random.Random(5)

    def slow_validate(*args, **kwargs):
        time.sleep(delays.choice([0.0, 0.01, 0.03]))
        return real(*args, **kwargs)

    monkeypatch.setattr(ig, "_validate", slow_validate)
    n = 1_200
    ids = [f"c{i % 1_000:04d}" for i in range(n)]  # rows 1001..1200 supersede rows 1..200
    df = pd.DataFrame({"customer_id": ids, "lat": [40.5 + i * 1e-4 for i in range(n)],
                       "lng": [-74.0 + i * 1e-4 for i in range(n)], "row": range(1, n + 1)})
    for into in ("empty", "non-empty"):
        eng = geotarget.open(":memory:")
        if into == "non-empty":
            eng.ingest_customers(pd.DataFrame({"customer_id": ["other"], "lat": [1.0], "lng": [1.0]}))
        rep = ig.ingest_points(eng.store, df, "customers", batch_rows=37)
        assert (rep.read, rep.loaded, rep.rejected) == (n, 1_000, 200), into
        kept = eng.store.frame("SELECT customer_id, \"row\" FROM customers WHERE customer_id <> 'other' "
                               "ORDER BY customer_id")
        assert kept["row"].tolist() == [i + 1 + (1_000 if i < 200 else 0) for i in range(1_000)], into
        assert sorted(eng.rejects()["row_number"]) == list(range(1, 201)), into
    unique = df.assign(customer_id=[f"u{i:05d}" for i in range(n)])
    eng = geotarget.open(":memory:")
    ig.ingest_points(eng.store, unique, "customers", batch_rows=37)
    # written straight into the empty table, batch after batch: the table keeps the file's order
    assert eng.store.frame("SELECT \"row\" FROM customers")["row"].tolist() == list(range(1, n + 1))
