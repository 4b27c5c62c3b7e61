import pytest

import geotarget
from geotarget.errors import SchemaVersionError, SourceError
from geotarget.store.database import SCHEMA_VERSION


def test_default_path_and_env(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    with geotarget.open() as eng:
        assert eng.path == "geotarget.duckdb"
    assert (tmp_path / "geotarget.duckdb").exists()
    monkeypatch.setenv("GEOTARGET_DB", str(tmp_path / "env.duckdb"))
    with geotarget.open() as eng:
        assert eng.path == str(tmp_path / "env.duckdb")


def test_newer_schema_is_refused(db_path):
    with geotarget.open(db_path) as eng:
        eng.store.con.execute("UPDATE meta SET value = $v WHERE key = 'schema_version'", {"v": str(SCHEMA_VERSION + 1)})
    with pytest.raises(SchemaVersionError, match="upgrade geotarget"):
        geotarget.open(db_path)


def test_not_a_database(tmp_path):
    junk = tmp_path / "junk.duckdb"
    junk.write_text("hello")
    with pytest.raises(SourceError):
        geotarget.open(junk)


def test_read_only_refuses_writes(db_path, tiny_customers):
    geotarget.open(db_path).close()
    with geotarget.open(db_path, read_only=True) as eng:
        with pytest.raises(geotarget.GeotargetError, match="read-only"):
            eng.ingest_customers(tiny_customers)


def test_data_version_bumps_on_write(eng, tiny_customers):
    v0 = eng.store.data_version
    eng.ingest_customers(tiny_customers)
    assert eng.store.data_version == v0 + 1
