"""The customer index persisted beside the database: used only when it matches the file it was read from."""

import numpy as np
import pandas as pd

import geotarget
from geotarget.audience.index import INDEX_FILE, build_index, load_index, save_index

POINT = (40.7580, -73.9855)


def _customers(n=2000, seed=5, prefix="c"):
    rng = np.random.default_rng(seed)
    return pd.DataFrame({"customer_id": [f"{prefix}{i}" for i in range(n)],
                         "lat": POINT[0] + rng.normal(0, 0.02, n), "lng": POINT[1] + rng.normal(0, 0.02, n)})


def _fill(path, customers):
    with geotarget.open(path) as eng:
        eng.ingest_stores(pd.DataFrame({"store_id": ["S1"], "lat": [POINT[0]], "lng": [POINT[1]]}))
        eng.ingest_customers(customers)


def _ids(eng):
    return sorted(eng.audience(stores=["S1"], radius="2mi").to_pandas()["customer_id"])


def test_a_new_process_maps_the_index_instead_of_rebuilding(tmp_path):
    path = tmp_path / "g.duckdb"
    _fill(path, _customers())
    with geotarget.open(path) as eng:
        first = _ids(eng)
        sidecar = eng.store.derived_path(INDEX_FILE)
        assert sidecar.exists()
    with geotarget.open(path, read_only=True) as eng:
        loaded = load_index(eng.store, eng.store.data_version)
        assert loaded is not None
        built = build_index(eng.store)
        assert loaded.version == built.version
        np.testing.assert_array_equal(loaded.cells, built.cells)
        np.testing.assert_array_equal(loaded.lat, built.lat)
        assert loaded.ids.equals(built.ids)
        assert _ids(eng) == first


def test_a_write_deletes_the_index_and_the_next_answer_is_fresh(tmp_path):
    path = tmp_path / "g.duckdb"
    _fill(path, _customers())
    with geotarget.open(path) as eng:
        before = _ids(eng)
        sidecar = eng.store.derived_path(INDEX_FILE)
        assert sidecar.exists()
        eng.ingest_suppressions(before[:3])
        assert not sidecar.exists()  # suppressed customers do not linger on disk
    with geotarget.open(path) as eng:
        assert _ids(eng) == before[3:]


def test_an_index_from_another_database_at_the_same_path_is_not_used(tmp_path):
    path = tmp_path / "g.duckdb"
    _fill(path, _customers(prefix="old"))
    with geotarget.open(path) as eng:
        _ids(eng)
        sidecar = eng.store.derived_path(INDEX_FILE)
    tag = sidecar.with_name(sidecar.name + ".tag")
    kept, kept_tag = sidecar.read_bytes(), tag.read_bytes()
    path.unlink()
    _fill(path, _customers(prefix="new"))  # same data version, another file
    sidecar.write_bytes(kept)
    tag.write_bytes(kept_tag)
    with geotarget.open(path) as eng:
        assert load_index(eng.store, eng.store.data_version) is None
        assert all(i.startswith("new") for i in _ids(eng))


def test_extra_columns_round_trip(tmp_path):
    path = tmp_path / "g.duckdb"
    _fill(path, _customers(200))
    with geotarget.open(path) as eng:
        index = build_index(eng.store)
        extra = np.arange(len(index), dtype=np.uint64) * 7
        index.columns["cell_res8"] = extra
        assert save_index(eng.store, index) is not None
        loaded = load_index(eng.store, index.version)
        np.testing.assert_array_equal(loaded.columns["cell_res8"], extra)
        assert load_index(eng.store, index.version + 1) is None


def test_a_replica_reads_the_index_but_never_writes_it(tmp_path):
    path = tmp_path / "g.duckdb"
    _fill(path, _customers())
    replica = geotarget.open(path, snapshot=True)
    try:
        store = replica.current().store
        assert store.derived_path(INDEX_FILE, for_writing=True) is None
        expected = _ids(replica.current())
        assert not store.derived_path(INDEX_FILE).exists()
    finally:
        replica.close()
    with geotarget.open(path) as eng:
        assert _ids(eng) == expected
    replica = geotarget.open(path, snapshot=True)
    try:
        assert load_index(replica.current().store, replica.data_version) is not None
    finally:
        replica.close()


def test_a_campaign_write_keeps_the_index_in_use(tmp_path):
    path = tmp_path / "g.duckdb"
    _fill(path, _customers())
    with geotarget.open(path) as eng:
        before = _ids(eng)
        sidecar = eng.store.derived_path(INDEX_FILE)
        eng.create_campaign("near", stores=["S1"], radius="1km")
        assert sidecar.exists()
        assert load_index(eng.store, eng.store.data_version) is not None  # tag moved on to the new version
        assert _ids(eng) == before
        eng.ingest_suppressions(before[:1])  # a customer write: the file goes
        assert not sidecar.exists()
        assert _ids(eng) == before[1:]


def test_a_table_and_a_tag_from_different_writes_do_not_pair(tmp_path):
    path = tmp_path / "g.duckdb"
    _fill(path, _customers())
    with geotarget.open(path) as eng:
        index = build_index(eng.store)
        sidecar = save_index(eng.store, index)
        tag = sidecar.with_name(sidecar.name + ".tag").read_bytes()
        save_index(eng.store, index)  # another write of the table: a new nonce
        sidecar.with_name(sidecar.name + ".tag").write_bytes(tag)
        assert load_index(eng.store, index.version) is None
