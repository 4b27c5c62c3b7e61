"""Shared fixtures: tiny frames, a fresh engine, and the real-data folder."""

from __future__ import annotations

import os
from pathlib import Path

import pandas as pd
import pytest
from hypothesis import HealthCheck, settings

import geotarget

settings.register_profile(
    "ci", max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow], derandomize=True
)
settings.register_profile("dev", max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
settings.load_profile("ci" if os.environ.get("CI") else "dev")

# Tests never fetch map tiles from the internet: PNGs fall back to region outlines (the basemap test serves
# its own tiles on 127.0.0.1 and lifts this).
os.environ.setdefault("GEOTARGET_OFFLINE", "1")

REAL_DATA = Path(os.environ.get("GEOTARGET_REAL_DATA", Path(__file__).resolve().parents[1] / ".." / "shared" / "data"))


def real_file(relative: str) -> Path:
    """A file of the shared real datasets, or skip the test saying which is missing."""
    path = REAL_DATA / relative
    if not path.exists():
        pytest.skip(f"real dataset {relative} not found under {REAL_DATA} (set GEOTARGET_REAL_DATA)")
    return path


@pytest.fixture
def eng():
    engine = geotarget.open(":memory:")
    yield engine
    engine.close()


@pytest.fixture
def db_path(tmp_path) -> Path:
    return tmp_path / "t.duckdb"


@pytest.fixture
def tiny_customers() -> pd.DataFrame:
    return pd.DataFrame({
        "customer_id": ["c1", "c2", "c3", "c4"],
        "lat": [40.758, 40.7128, 40.6782, 40.7282],
        "lng": [-73.9855, -74.0060, -73.9442, -73.7949],
        "tier": ["gold", "silver", "gold", "bronze"],
        "spend": [120.5, 33.0, 990.0, 5.0],
    })


@pytest.fixture(scope="session")
def spark(tmp_path_factory):
    """One local[2] SparkSession for every Spark test (a JVM start costs seconds); stopped at the end."""
    pytest.importorskip("pyspark", reason="pyspark is not installed: pip install 'geotarget[spark]'")
    import geotarget.spark as gs

    if gs.java_version() is None:
        pytest.skip("no Java runtime: scripts/ensure-java.sh could not install openjdk-17-jre-headless")
    session = gs.session("local[2]", tmp_dir=str(tmp_path_factory.mktemp("spark")),
                         conf={"spark.sql.shuffle.partitions": "2"})
    yield session
    gs.stop(session)
