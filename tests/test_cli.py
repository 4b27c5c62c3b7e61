"""The CLI is a thin layer: it reports, and user errors are one line, never a traceback."""

import json
import subprocess
import sys

import pytest


def run(*args, cwd, env_db):
    return subprocess.run(
        [sys.executable, "-m", "geotarget", "--db", str(env_db), *args],
        capture_output=True, text=True, cwd=cwd, timeout=300,
    )


def test_ingest_info_rejects(tmp_path, tiny_customers):
    csv = tmp_path / "c.csv"
    tiny_customers.assign(lat=[40.7, 999, 40.6, 40.5]).to_csv(csv, index=False)
    db = tmp_path / "cli.duckdb"
    out = run("ingest", "customers", str(csv), cwd=tmp_path, env_db=db)
    assert out.returncode == 0, out.stderr
    assert "read 4, loaded 3" in out.stdout and "rejected 1" in out.stdout
    info = run("info", "--json", cwd=tmp_path, env_db=db)
    assert json.loads(info.stdout)["rejects_by_reason"] == {"latitude out of range [-90, 90]": 1}
    assert "customers" in run("info", cwd=tmp_path, env_db=db).stdout
    assert "rejected 1: latitude out of range [-90, 90]" in out.stdout  # brackets survive
    rej = run("rejects", "-o", str(tmp_path / "r.csv"), cwd=tmp_path, env_db=db)
    assert rej.returncode == 0 and (tmp_path / "r.csv").read_text().count("\n") == 2


@pytest.mark.parametrize("args", [
    ["ingest", "customers", "does-not-exist.csv"],
    ["ingest", "customers", "c.csv", "--id-col", "nope"],
    ["ingest", "regions", "c.csv"],  # missing --layer: a usage error
    ["no-such-command"],
    ["audience", "--store", "S1", "--radius", "2", "-o", "a.csv"],  # radius without a unit
    ["audience", "--lat", "40.7", "--lng", "-74", "--radius", "1mi", "-o", "a.txt"],
    ["audience", "--lat", "40.7", "-o", "a.csv"],  # fail() inside a command
])
def test_user_errors_are_one_line(tmp_path, tiny_customers, args):
    tiny_customers.to_csv(tmp_path / "c.csv", index=False)
    out = run(*args, cwd=tmp_path, env_db=tmp_path / "e.duckdb")
    assert out.returncode == 2
    assert "Traceback" not in out.stderr
    lines = [line for line in out.stderr.strip().splitlines() if line.strip()]
    assert len(lines) == 1 and lines[0].startswith("error:")
