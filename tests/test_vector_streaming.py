"""Vector files (GeoJSON region layers, store files) are read a batch of features at a time.

The streamed ingest must give exactly what reading the whole file with geopandas gives, keep every
check (projected coordinates without a CRS, zero-area rings, an empty layer, duplicate ids across
batches) and leave the database as it was when the file is refused; and its memory must follow the
batch, not the file.
"""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap

import numpy as np
import pytest
import shapely

import geotarget
from geotarget.store import readers

BAD_FEATURES = {  # feature number -> what is wrong with it
    7: "zero area", 300: "not a polygon", 301: "missing geometry", 302: "bow tie", 650: "missing id",
}


def _feature(i: int, *, region_id: str | None = None) -> dict:
    rng = np.random.default_rng(i)
    lng, lat, d = -74.0 + rng.random() * 0.5, 40.5 + rng.random() * 0.4, 0.002 + rng.random() * 0.002
    ring = [[lng, lat], [lng + d, lat], [lng + d, lat + d], [lng, lat + d], [lng, lat]]
    geometry: dict | None = {"type": "Polygon", "coordinates": [ring]}
    what = BAD_FEATURES.get(i)
    if what == "zero area":
        geometry["coordinates"] = [[[lng, lat], [lng + d, lat + d], [lng + 2 * d, lat + 2 * d], [lng, lat]]]
    elif what == "not a polygon":
        geometry = {"type": "Point", "coordinates": [lng, lat]}
    elif what == "missing geometry":
        geometry = None
    elif what == "bow tie":
        geometry["coordinates"] = [[[lng, lat], [lng + d, lat + d], [lng + d, lat], [lng, lat + d], [lng, lat]]]
    props = {"region_id": region_id or f"r{i}", "name": f"region {i}", "population": int(rng.integers(0, 5000)),
             "note": None if i % 5 else "corner"}
    if what == "missing id":
        props["region_id"] = None
    return {"type": "Feature", "properties": props, "geometry": geometry}


def _write(path, features, *, one_line: bool = True) -> None:
    sep = "," if one_line else ",\n"
    with open(path, "w", encoding="utf-8") as fh:
        fh.write('{"type": "FeatureCollection", "features": [')
        fh.write(sep.join(json.dumps(f, separators=(",", ":")) for f in features))
        fh.write("]}")


@pytest.fixture
def small_batches(monkeypatch):
    monkeypatch.setattr(readers, "VECTOR_BATCH_ROWS", 128)


def _layer(eng, layer):
    return eng.store.frame("SELECT region_id, name, geometry, xmin, ymin, xmax, ymax, properties FROM regions "
                           "WHERE layer = $l ORDER BY region_id", {"l": layer})


def _rejects(eng):
    return eng.store.frame("SELECT row_number, reason, raw FROM rejects WHERE kind = 'regions' ORDER BY row_number")


@pytest.mark.filterwarnings("ignore:.*repaired with shapely.make_valid")
def test_a_streamed_layer_equals_the_whole_file_read(tmp_path, small_batches):
    import geopandas as gpd

    features = [_feature(i) for i in range(900)]
    features[500] = _feature(500, region_id="r3")  # a duplicate id two batches later: it wins
    features[801] = _feature(801, region_id="r800")  # and one inside a batch
    path = tmp_path / "layer.geojson"
    _write(path, features)
    streamed, whole = geotarget.open(":memory:"), geotarget.open(":memory:")
    got = streamed.ingest_regions(path, layer="l")
    want = whole.ingest_regions(gpd.read_file(path), layer="l")
    assert (got.read, got.loaded, got.rejected, got.reasons) == (want.read, want.loaded, want.rejected, want.reasons)
    assert got.reasons == {"polygon has zero area (its ring is a line or a point)": 1, "geometry is not a polygon": 1,
                           "missing geometry": 1, "missing id": 1,
                           "duplicate id: superseded by a later row of the same file": 2}
    a, b = _layer(streamed, "l"), _layer(whole, "l")
    assert a.drop(columns="geometry").equals(b.drop(columns="geometry"))
    assert all(shapely.from_wkb(x).equals_exact(shapely.from_wkb(y), 0) for x, y in zip(a["geometry"], b["geometry"]))
    assert _rejects(streamed).equals(_rejects(whole))
    r3 = a.loc[a["region_id"] == "r3"].iloc[0]
    assert json.loads(r3["properties"])["name"] == "region 500"  # the later row won
    bow = shapely.from_wkb(a.loc[a["region_id"] == "r302", "geometry"].iloc[0])
    assert bow.is_valid and bow.area > 0  # repaired, as the whole-file ingest does


def test_a_column_keeps_its_type_in_every_batch(tmp_path, small_batches):
    """An integer property with a null in one batch only is still written as integers in every batch."""
    features = [_feature(i) for i in range(300)]
    features[200]["properties"]["population"] = None
    path = tmp_path / "layer.geojson"
    _write(path, features)
    eng = geotarget.open(":memory:")
    eng.ingest_regions(path, layer="l")
    values = [json.loads(p)["population"] for p in _layer(eng, "l")["properties"]]
    assert values.count(None) == 1 and all(isinstance(v, int) for v in values if v is not None)


def test_stores_from_a_streamed_geojson_equal_the_whole_file_read(tmp_path, small_batches):
    import geopandas as gpd

    rng = np.random.default_rng(3)
    points = [{"type": "Feature", "properties": {"store_id": f"S{i}", "name": f"store {i}"},
               "geometry": {"type": "Point", "coordinates": [-74 + rng.random(), 40.5 + rng.random()]}}
              for i in range(500)]
    path = tmp_path / "stores.geojson"
    _write(path, points, one_line=False)
    streamed, whole = geotarget.open(":memory:"), geotarget.open(":memory:")
    assert streamed.ingest_stores(path).loaded == whole.ingest_stores(gpd.read_file(path)).loaded == 500
    columns = ["store_id", "name", "lat", "lng", "cell"]
    assert streamed.stores()[columns].equals(whole.stores()[columns])


def test_checks_hold_in_any_batch_and_a_refused_file_changes_nothing(tmp_path, small_batches):
    eng = geotarget.open(":memory:")
    good = tmp_path / "good.geojson"
    _write(good, [_feature(i) for i in range(20, 40)])
    assert eng.ingest_regions(good, layer="l").loaded == 20
    before = _layer(eng, "l")
    projected = [_feature(i) for i in range(400)]  # the fourth batch is in metres and names no CRS
    projected[390]["geometry"]["coordinates"] = [[[583000, 4506000], [584000, 4506000], [584000, 4507000],
                                                 [583000, 4506000]]]
    path = tmp_path / "projected.geojson"
    _write(path, projected)
    with pytest.raises(geotarget.GeotargetError, match="looks projected"):
        eng.ingest_regions(path, layer="l")
    empty = tmp_path / "empty.geojson"
    _write(empty, [])
    with pytest.raises(geotarget.GeotargetError, match="--confirm"):
        eng.ingest_regions(empty, layer="l")
    assert _layer(eng, "l").equals(before)
    assert eng.store.scalar("SELECT count(*) FROM rejects") == 0
    wide = tmp_path / "wide.geojson"  # wider than 180 degrees of longitude: kept as it is
    _write(wide, [{"type": "Feature", "properties": {"region_id": "north"},
                   "geometry": {"type": "Polygon", "coordinates": [[[-179, 0], [179, 0], [179, 80], [-179, 80],
                                                                    [-179, 0]]]}}])
    eng.ingest_regions(wide, layer="w")
    assert shapely.from_wkb(_layer(eng, "w")["geometry"].iloc[0]).bounds == (-179.0, 0.0, 179.0, 80.0)
    assert eng.ingest_regions(empty, layer="l", confirm=True).loaded == 0


_MEMORY_PROBE = textwrap.dedent("""
    import sys

    def peak_mib():
        with open("/proc/self/status") as status:
            return next(int(line.split()[1]) for line in status if line.startswith("VmHWM:")) / 1024

    import geopandas, pyogrio, pyarrow, shapely, duckdb  # noqa: F401  (imports are not the reading)
    from geotarget.store import readers
    readers.VECTOR_BATCH_ROWS = 512
    path, how = sys.argv[1], sys.argv[2]
    before = peak_mib()
    if how == "stream":
        rows = sum(len(batch) for batch in readers.open_source(path).batches)
    else:
        rows = len(geopandas.read_file(path))
    print(rows, peak_mib() - before)
""")

_SQUARE = ('{{"type":"Feature","properties":{{"region_id":"r{i}","name":"region {i}","population":{p}}},'
           '"geometry":{{"type":"Polygon","coordinates":[[[{x},{y}],[{x2},{y}],[{x2},{y2}],[{x},{y2}],[{x},{y}]]]}}}}')


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="reads the peak memory from /proc (Linux)")
def test_reading_a_one_line_geojson_is_bounded_in_memory(tmp_path):
    """A ~36 MB FeatureCollection on one line: streaming grows memory by a batch and GDAL's buffers (~20 MB
    measured), reading the whole file by about 3.5 times the file (~125 MB measured)."""
    n = 150_000
    path = tmp_path / "big.geojson"
    with open(path, "w", encoding="utf-8") as fh:
        fh.write('{"type":"FeatureCollection","features":[')
        fh.write(",".join(_SQUARE.format(i=i, p=i % 977, x=-74 + (i % 1000) * 1e-3, y=40.5 + (i // 1000) * 1e-3,
                                         x2=-74 + (i % 1000) * 1e-3 + 5e-4, y2=40.5 + (i // 1000) * 1e-3 + 5e-4)
                          for i in range(n)))
        fh.write("]}")
    size_mib = path.stat().st_size / 2**20

    def probe(how):
        out = subprocess.run([sys.executable, "-c", _MEMORY_PROBE, str(path), how], capture_output=True, text=True,
                             check=True, timeout=300).stdout.split()
        return int(out[0]), float(out[1])

    rows, streamed = probe("stream")
    whole_rows, whole = probe("whole")
    assert rows == whole_rows == n
    assert streamed < 0.75 * size_mib, (streamed, size_mib)
    assert whole > 2.5 * streamed, (whole, streamed)
