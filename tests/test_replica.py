"""Worker processes serve read-only copies while one writer writes (geotarget.open(path, snapshot=True))."""

import json
import subprocess
import sys
import textwrap
import time

import pandas as pd
import pytest

import geotarget
from geotarget.errors import GeotargetError, SchemaVersionError, SourceError
from geotarget.store.database import SCHEMA_VERSION

POINT = (40.758, -73.9855)


def _answer(eng):
    return [[s["store_id"] for s in eng.stores_near(*POINT, "1km")],
            [c.name for c in eng.promotions_at(*POINT, customer_id="c1")],
            len(eng.audience(points=[POINT], radius="1km"))]


def _seed(path):
    with geotarget.open(path) as eng:
        eng.ingest_stores(pd.DataFrame({"store_id": ["S1"], "lat": [40.758], "lng": [-73.9855]}))
        eng.ingest_customers(pd.DataFrame({"customer_id": ["c1", "c2"], "lat": [40.7581, 40.759],
                                           "lng": [-73.9855, -73.985], "tier": ["gold", "silver"]}))
        eng.create_campaign("first", stores=["S1"], radius="500m")
        return eng.store.data_version, _answer(eng)


def _write(path, step):
    with geotarget.open(path, lock_timeout=60) as eng:
        step(eng)
        return eng.store.data_version, _answer(eng)


STEPS = [
    lambda eng: eng.ingest_stores(pd.DataFrame({"store_id": ["S2"], "lat": [40.7585], "lng": [-73.986]})),
    lambda eng: eng.create_campaign("second", stores=["S2"], radius="1km", where=["tier=gold"]),
    lambda eng: eng.ingest_customers(pd.DataFrame({"customer_id": ["c3"], "lat": [40.7575], "lng": [-73.9855],
                                                   "tier": ["gold"]})),
]


def test_a_snapshot_serves_and_refreshes(db_path):
    v0, a0 = _seed(db_path)
    reader = geotarget.open(db_path, snapshot=True, refresh_interval=3600)
    assert reader.data_version == v0 and _answer(reader) == a0
    v1, a1 = _write(db_path, STEPS[0])  # the reader holds no lock: the writer opens at once
    assert _answer(reader) == a0  # not checked yet
    assert reader.refresh() and reader.data_version == v1 and _answer(reader) == a1
    assert not reader.refresh()  # unchanged
    pinned = reader.current()
    _write(db_path, STEPS[1])
    reader.refresh()
    assert _answer(pinned) == a1  # a pinned copy never moves
    with pytest.raises(GeotargetError, match="read-only copy"):
        reader.create_campaign("x", cells=["872a1072bffffff"])
    with geotarget.open(db_path):  # a writer holding the file: refresh fails, the last copy keeps serving
        with pytest.raises(SourceError, match="held by a writer"):
            reader.refresh()
        assert reader.stores_near(*POINT)
    reader.close()


def test_a_snapshot_refreshes_by_itself(db_path):
    _seed(db_path)
    reader = geotarget.open(db_path, snapshot=True, refresh_interval=0.0)
    v1, a1 = _write(db_path, STEPS[0])
    deadline = time.monotonic() + 60
    while reader.data_version != v1 and time.monotonic() < deadline:
        reader.stores_near(*POINT)
        time.sleep(0.01)
    assert reader.data_version == v1 and _answer(reader) == a1


def test_snapshot_refusals(tmp_path, db_path):
    with pytest.raises(SourceError, match="does not exist"):
        geotarget.open(tmp_path / "none.duckdb", snapshot=True)
    _seed(db_path)
    with geotarget.open(db_path) as eng:
        eng.store.con.execute("UPDATE meta SET value = $v WHERE key = 'schema_version'", {"v": str(SCHEMA_VERSION + 1)})
    with pytest.raises(SchemaVersionError):
        geotarget.open(db_path, snapshot=True)


READER = textwrap.dedent("""
    import json, os, sys, time
    import geotarget
    path, out, stop = sys.argv[1:4]
    point = (40.758, -73.9855)
    eng = geotarget.open(path, snapshot=True, refresh_interval=0.02, lock_timeout=120)
    with open(out, "w") as fh:
        while not os.path.exists(stop):
            e = eng.current()
            answer = [[s["store_id"] for s in e.stores_near(*point, "1km")],
                      [c.name for c in e.promotions_at(*point, customer_id="c1")],
                      len(e.audience(points=[point], radius="1km"))]
            fh.write(json.dumps({"v": e.store.data_version, "a": answer}) + "\\n")
            fh.flush()
            eng.stores_near(*point)  # the plain door refreshes too
            time.sleep(0.005)
""")


def _lines(path):
    try:
        return [json.loads(line) for line in path.read_text().splitlines() if line.endswith("}")]
    except FileNotFoundError:
        return []


def test_reader_processes_beside_a_writer(tmp_path, db_path):
    v0, a0 = _seed(db_path)
    expected = {v0: a0}
    script = tmp_path / "reader.py"
    script.write_text(READER)
    stop = tmp_path / "stop"
    outs = [tmp_path / f"reader{i}.jsonl" for i in range(3)]
    procs = [subprocess.Popen([sys.executable, str(script), str(db_path), str(o), str(stop)],
                              stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True) for o in outs]
    try:
        deadline = time.monotonic() + 180
        while not all(_lines(o) for o in outs) and time.monotonic() < deadline:
            assert all(p.poll() is None for p in procs), [p.communicate() for p in procs]
            time.sleep(0.05)
        for step in STEPS:  # each write opens the file while the readers keep copying it
            v, a = _write(db_path, step)
            expected[v] = a
            time.sleep(0.2)
        final = max(expected)
        while not all(_lines(o) and _lines(o)[-1]["v"] == final for o in outs) and time.monotonic() < deadline:
            assert all(p.poll() is None for p in procs), [p.communicate() for p in procs]
            time.sleep(0.05)
    finally:
        stop.touch()
        results = [p.communicate(timeout=120) for p in procs]
    assert [p.returncode for p in procs] == [0, 0, 0], results
    assert all(err.strip() == "" for _, err in results), results
    for out in outs:
        lines = _lines(out)
        assert lines[-1]["v"] == final
        assert all(line["a"] == expected[line["v"]] for line in lines)  # each answer is one whole state
    assert len(set(map(json.dumps, expected.values()))) == len(expected)
