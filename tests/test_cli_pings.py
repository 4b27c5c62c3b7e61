"""`geotarget ingest pings`, `visits`, `footfall` and `pings ...`: thin, one-line errors."""

from __future__ import annotations

import subprocess
import sys

import numpy as np
import pandas as pd


def run(*args, cwd, db):
    return subprocess.run([sys.executable, "-m", "geotarget", "--db", str(db), *args],
                          capture_output=True, text=True, cwd=cwd, timeout=300)


def test_pings_cli(tmp_path):
    rng = np.random.default_rng(5)
    n = 2000
    t0 = pd.Timestamp("2026-03-02T00:00:00Z")
    frame = pd.DataFrame({
        "device_id": [f"d{i}" for i in rng.integers(0, 200, n)],
        "timestamp": (t0 + pd.to_timedelta(rng.integers(0, 2 * 1440, n), unit="min")).strftime("%Y-%m-%dT%H:%M:%SZ"),
        "lat": 40.758 + rng.normal(0, 0.004, n), "lng": -73.9855 + rng.normal(0, 0.004, n),
        "accuracy_m": np.where(np.arange(n) < 10, 500.0, 5.0)})
    frame.to_csv(tmp_path / "p.csv", index=False)
    pd.DataFrame({"store_id": ["S1"], "lat": [40.758], "lng": [-73.9855]}).to_csv(tmp_path / "s.csv", index=False)
    db = tmp_path / "p.duckdb"
    out = run("ingest", "pings", "p.csv", "--max-accuracy", "50", cwd=tmp_path, db=db)
    assert out.returncode == 0, out.stderr
    assert "read 2,000, loaded 1,990" in out.stdout and "rejected 10: accuracy worse than 50 m" in out.stdout
    assert run("ingest", "stores", "s.csv", cwd=tmp_path, db=db).returncode == 0
    out = run("visits", "--store", "S1", "--radius", "300m", "--hours", "0-23", "-o", "v.csv", cwd=tmp_path, db=db)
    assert out.returncode == 0, out.stderr
    visitors = pd.read_csv(tmp_path / "v.csv")
    assert len(visitors) >= 100 and "ping files" in out.stdout
    out = run("pings", "erase", "d0", "d1", cwd=tmp_path, db=db)
    assert out.returncode == 0 and "erased" in out.stdout
    out = run("visits", "--store", "S1", "--radius", "300m", "-o", "v2.csv", cwd=tmp_path, db=db)
    assert not {"d0", "d1"} & set(pd.read_csv(tmp_path / "v2.csv")["device_id"])
    out = run("footfall", "--res", "9", "--k-min", "5", "-o", "f.csv", cwd=tmp_path, db=db)
    assert out.returncode == 0 and (pd.read_csv(tmp_path / "f.csv")["devices"] >= 5).all()
    for bad in (["visits", "--store", "S1", "--radius", "300m", "--start", "2026-03-02", "-o", "x.csv"],
                ["visits", "--store", "S1", "--radius", "300m", "--hours", "25", "-o", "x.csv"],
                ["pings", "sensitive", "no-such-layer"]):
        out = run(*bad, cwd=tmp_path, db=db)
        assert out.returncode == 2 and "Traceback" not in out.stderr and out.stderr.count("error:") == 1, out.stderr
