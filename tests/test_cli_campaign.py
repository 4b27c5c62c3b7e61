"""`geotarget campaign ...`: a thin layer over the campaign methods; user errors are one line."""

import json
import subprocess
import sys

import pandas as pd
import pytest

import geotarget


def run(*args, db, cwd):
    return subprocess.run([sys.executable, "-m", "geotarget", "--db", str(db), "campaign", *args],
                          capture_output=True, text=True, cwd=cwd, timeout=300)


@pytest.fixture
def db(tmp_path):
    path = tmp_path / "c.duckdb"
    rng = pd.Series(range(300))
    with geotarget.open(path) as eng:
        eng.ingest_stores(pd.DataFrame({"store_id": ["S001"], "lat": [40.758], "lng": [-73.9855]}))
        eng.ingest_customers(pd.DataFrame({"customer_id": "c" + rng.astype(str), "lat": 40.758 + (rng % 30) * 1e-4,
                                           "lng": -73.9855 + (rng // 30) * 1e-4,
                                           "tier": ["gold", "silver", "bronze"] * 100}))
    return path


def test_campaign_lifecycle(db, tmp_path):
    out = run("create", "spring", "--store", "S001", "--radius", "2mi", "--where", "tier=gold",
              "--start", "2026-01-01T00:00:00Z", "--holdout", "0.1", "--meta", "offer=10% off", "--meta", "pct=10",
              db=db, cwd=tmp_path)
    assert out.returncode == 0, out.stderr
    created = json.loads(out.stdout)
    assert created["metadata"] == {"offer": "10% off", "pct": 10} and created["geofence"]["radius_m"] == 3218.688
    listed = run("list", db=db, cwd=tmp_path)
    assert listed.stdout.startswith("spring\t" + created["id"] + "\tactive")
    assert json.loads(run("show", created["id"], db=db, cwd=tmp_path).stdout)["name"] == "spring"
    updated = json.loads(run("update", "spring", "--radius", "1km", "--no-where", "--end", "2027-01-01T00:00Z",
                             db=db, cwd=tmp_path).stdout)
    assert updated["geofence"] == {"kind": "radius", "stores": ["S001"], "radius_m": 1000.0}
    assert updated["where"] == [] and updated["end"] == "2027-01-01T00:00:00+00:00"
    assert "paused spring" in run("pause", "spring", db=db, cwd=tmp_path).stdout
    assert run("list", "--status", "active", db=db, cwd=tmp_path).stdout.strip() == "no campaigns"
    assert "resumed spring" in run("resume", "spring", db=db, cwd=tmp_path).stdout
    here = run("at", "--lat", "40.759", "--lng", "-73.985", "--at", "2026-06-01T00:00Z", db=db, cwd=tmp_path)
    assert here.stdout.startswith("spring\t")
    aud = run("audience", "spring", "-o", str(tmp_path / "a.csv"), db=db, cwd=tmp_path)
    assert aud.returncode == 0, aud.stderr
    assert "treatment" in aud.stdout
    frame = pd.read_csv(tmp_path / "a.csv")
    assert len(frame) == 300 and set(frame["group"]) == {"treatment", "control"}
    assert "deleted spring" in run("delete", "spring", db=db, cwd=tmp_path).stdout
    assert run("list", db=db, cwd=tmp_path).stdout.strip() == "no campaigns"


@pytest.mark.parametrize("args", [
    ["create", "x"],  # no geofence
    ["create", "x", "--store", "S001", "--radius", "2"],  # no unit
    ["create", "x", "--cell", "872a1072bffffff", "--start", "2026-01-01T00:00"],  # naive
    ["create", "x", "--cell", "872a1072bffffff", "--meta", "novalue"],
    ["show", "nope"],
    ["update", "nope", "--radius", "1mi"],
    ["audience", "nope", "-o", "a.csv"],
    ["at", "--lat", "123", "--lng", "-74"],
])
def test_user_errors_are_one_line(db, tmp_path, args):
    out = run(*args, db=db, cwd=tmp_path)
    assert out.returncode == 2, out.stdout
    lines = [line for line in out.stderr.strip().splitlines() if line.strip()]
    assert "Traceback" not in out.stderr and len(lines) == 1 and lines[0].startswith("error:"), out.stderr
