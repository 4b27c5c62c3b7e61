"""A customer write brings the persisted customer index up to date in its own transaction.

After an upsert the snapshot held in memory and the file beside the database
equal a full rebuild (same customers, same order), so the next query, in this
process or a new one, needs no rebuild; a writer killed before its COMMIT
leaves files that no database state vouches for.
"""

import signal
import subprocess
import sys
import textwrap

import numpy as np
import pandas as pd
import pytest

import geotarget
from geotarget.audience.index import INDEX_FILE, build_index, load_index

POINT = (40.7580, -73.9855)


def _customers(ids, rng, spread=0.02):
    n = len(ids)
    return pd.DataFrame({"customer_id": list(ids), "lat": POINT[0] + rng.normal(0, spread, n),
                         "lng": POINT[1] + rng.normal(0, spread, n)})


def _same(a, b):
    assert a.version == b.version
    np.testing.assert_array_equal(a.cells, b.cells)
    np.testing.assert_array_equal(a.lat, b.lat)
    np.testing.assert_array_equal(a.lng, b.lng)
    assert a.ids.to_pylist() == b.ids.to_pylist()


def _audience(eng):
    return eng.audience(stores=["S1"], radius="1mi").to_pandas()[["customer_id", "distance_m"]]


@pytest.mark.parametrize("seed", [1, 2])
def test_upserts_equal_a_fresh_rebuild(tmp_path, seed):
    rng = np.random.default_rng(seed)
    path = tmp_path / "g.duckdb"
    with geotarget.open(path) as eng:
        eng.ingest_stores(pd.DataFrame({"store_id": ["S1"], "lat": [POINT[0]], "lng": [POINT[1]]}))
        eng.ingest_customers(_customers([f"c{i}" for i in range(3000)], rng))
        _audience(eng)  # the first query builds the snapshot; every later write updates it
        sidecar = eng.store.derived_path(INDEX_FILE)
        next_id = 3000
        for step in range(6):
            moved = [f"c{i}" for i in rng.choice(next_id, 150, replace=False)]
            new = [f"c{i}" for i in range(next_id, next_id + 100)]
            next_id += 100
            batch = _customers(moved + new, rng)
            # a few customers share one fine cell with another, so ties are ordered by id
            batch.loc[:4, ["lat", "lng"]] = eng.store.con.execute(
                "SELECT lat, lng FROM customers ORDER BY customer_id LIMIT 5").fetchall()
            if step % 2:
                batch["opted_out"] = np.where(rng.random(len(batch)) < 0.2, "yes", "no")
            eng.ingest_customers(batch)
            held = eng._index_cache._index
            assert held is not None and held.version == eng.store.data_version  # updated, not dropped
            assert sidecar.exists()
            _same(held, build_index(eng.store))
            if step == 2:  # an erasure and a suppression drop the snapshot; the next upsert starts anew
                eng.erase(ids=[moved[0]])
                eng.ingest_suppressions([moved[1]])
                _audience(eng)
        expected = _audience(eng)
    with geotarget.open(path, read_only=True) as fresh:
        mapped = load_index(fresh.store, fresh.store.data_version)
        assert mapped is not None  # the new process maps the file written by the last upsert
        _same(mapped, build_index(fresh.store))
        pd.testing.assert_frame_equal(_audience(fresh), expected)


def test_a_write_without_a_snapshot_leaves_the_build_to_the_first_query(tmp_path):
    rng = np.random.default_rng(3)
    path = tmp_path / "g.duckdb"
    with geotarget.open(path) as eng:
        eng.ingest_customers(_customers([f"c{i}" for i in range(500)], rng))
        assert eng._index_cache._index is None
        assert not eng.store.derived_path(INDEX_FILE).exists()


def test_writer_killed_before_commit_leaves_no_usable_index(tmp_path):
    rng = np.random.default_rng(4)
    path = tmp_path / "g.duckdb"
    with geotarget.open(path) as eng:
        eng.ingest_stores(pd.DataFrame({"store_id": ["S1"], "lat": [POINT[0]], "lng": [POINT[1]]}))
        eng.ingest_customers(_customers([f"c{i}" for i in range(2000)], rng))
        before = _audience(eng)
        version = eng.store.data_version
    script = textwrap.dedent(f"""
        import os, signal, pandas as pd, geotarget
        from geotarget.audience.index import IndexCache
        kept = IndexCache._customers_written
        def then_die(self, *args):
            out = kept(self, *args)  # the new index files are written; COMMIT has not run
            os.kill(os.getpid(), signal.SIGKILL)
        IndexCache._customers_written = then_die
        eng = geotarget.open({str(path)!r})
        eng.audience(stores=["S1"], radius="1mi")
        eng.ingest_customers(pd.DataFrame({{"customer_id": ["far"], "lat": [{POINT[0]}], "lng": [{POINT[1]}]}}))
    """)
    proc = subprocess.run([sys.executable, "-c", script], capture_output=True, timeout=120)
    assert proc.returncode == -signal.SIGKILL, proc.stderr.decode()[-2000:]
    with geotarget.open(path) as eng:
        assert eng.store.data_version == version
        assert eng.store.derived_path(INDEX_FILE).exists()  # the orphaned file is there ...
        assert load_index(eng.store, version + 1) is None  # ... and vouched for by no database state
        eng.create_campaign("c", stores=["S1"], radius="1mi")  # a write that keeps customers: version + 1
        assert eng.store.data_version == version + 1
        assert load_index(eng.store, version + 1) is None
        after = _audience(eng)
    pd.testing.assert_frame_equal(after, before)
    assert "far" not in set(after["customer_id"])


def test_a_first_load_after_a_query_writes_the_whole_snapshot(tmp_path):
    rng = np.random.default_rng(5)
    with geotarget.open(tmp_path / "g.duckdb") as eng:
        assert len(eng.audience(points=[POINT], radius="1mi")) == 0  # an empty snapshot, then a load into it
        eng.ingest_customers(_customers([f"c{i}" for i in range(800)], rng))
        held = eng._index_cache._index
        assert held is not None and len(held) == 800
        _same(held, build_index(eng.store))
