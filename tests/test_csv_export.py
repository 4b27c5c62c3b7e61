"""Audience CSV files: the fast writer gives the very bytes pandas' ``to_csv`` gives."""

import numpy as np
import pandas as pd
import pytest

import geotarget


@pytest.fixture(scope="module")
def eng():
    rng = np.random.default_rng(4)
    n = 600
    engine = geotarget.open(":memory:")
    engine.ingest_stores(pd.DataFrame({"store_id": ["A", "B,2"], "lat": [40.75, 40.76], "lng": [-73.98, -73.97]}))
    engine.ingest_customers(pd.DataFrame({
        "customer_id": [f'c"{i}' if i % 50 == 0 else f"c{i}" for i in range(n)],
        "lat": 40.75 + rng.normal(0, 0.01, n), "lng": -73.98 + rng.normal(0, 0.01, n),
        "tier": rng.choice(["gold", "silver, plus", "line\nbreak", ""], n),
        "age": pd.array(np.where(rng.random(n) < 0.1, None, rng.integers(18, 90, n)), dtype="Int64"),
        "spend": np.where(rng.random(n) < 0.1, np.nan, rng.gamma(2.0, 50.0, n)),
        "vip": rng.random(n) < 0.2,
    }))
    yield engine
    engine.close()


@pytest.mark.parametrize("columns", [None, ["tier"], ["age", "spend"], ["vip"], ["tier", "age", "spend", "vip"]])
@pytest.mark.parametrize("holdout", [None, 0.2])
def test_csv_bytes_equal_pandas(eng, tmp_path, columns, holdout):
    aud = eng.audience(stores="all", radius="1km", columns=columns, holdout=holdout, campaign="t")
    path = aud.to_csv(tmp_path / "a.csv", allow_small=True)
    aud.to_pandas(columns).to_csv(tmp_path / "b.csv", index=False)
    assert len(aud) > 100
    assert path.read_bytes() == (tmp_path / "b.csv").read_bytes()


def test_csv_of_points_bytes_equal_pandas(eng, tmp_path):
    aud = eng.audience(points=[(40.75, -73.98), (40.755, -73.975)], radius="800m")
    path = aud.to_csv(tmp_path / "a.csv", allow_small=True)
    aud.to_pandas().to_csv(tmp_path / "b.csv", index=False)
    assert aud.center_count == 2 and len(aud) > 50
    assert path.read_bytes() == (tmp_path / "b.csv").read_bytes()
