"""The command line as a marketer meets it: help for every command, points, outputs, listings, errors."""

from __future__ import annotations

import io
import signal
import subprocess
import sys
import time

import pandas as pd
import pytest

from geotarget.cli._app import command, load_commands, main


def _commands(cmd, path=()):
    yield path, cmd
    for name, sub in sorted(getattr(cmd, "commands", {}).items()):
        yield from _commands(sub, (*path, name))


load_commands()  # every command: they register lazily, and the list must not depend on what was imported before
ALL = list(_commands(command()))


@pytest.mark.parametrize("path", [p for p, _ in ALL], ids=[" ".join(p) or "geotarget" for p, _ in ALL])
def test_every_help_reads_as_a_cli_user_expects(path, capsys):
    assert main([*path, "--help"]) == 0
    text = capsys.readouterr().out
    assert text.startswith("Usage: geotarget"), text[:200]
    for bad in ("<str>", "<list[str]>", "<int>", "<float>", "<bool>", "{", "…"):
        assert bad not in text, f"{' '.join(path)} --help shows {bad!r}"
    cmd = dict(ALL)[path]
    for param in cmd.params:
        if param.param_type_name == "option" and param.name != "help":
            assert (param.help or "").strip(), f"{' '.join(path)}: {param.opts[0]} has no help"
            assert param.opts[-1] in text, f"{' '.join(path)}: {param.opts[-1]} missing from help"


@pytest.fixture(scope="module")
def db(tmp_path_factory):
    import geotarget
    from geotarget.sample import sample_customers, sample_neighborhoods, sample_stores

    path = tmp_path_factory.mktemp("cli") / "c.duckdb"
    with geotarget.open(path) as eng:
        eng.ingest_customers(sample_customers(4000, seed=3))
        eng.ingest_stores(sample_stores(6, seed=3))
        eng.ingest_regions(sample_neighborhoods(20, seed=3), layer="hoods", id_col="hood_id")
        eng.ingest_customers(pd.DataFrame({"customer_id": ["bad", "ok"], "lat": [999.0, 40.7], "lng": [-73.9, -73.9]}))
    return path


def cli(db, *args):
    return main(["--db", str(db), *args])


def test_repeated_points_all_count_and_pairs_are_checked(db, capsys):
    import geotarget

    assert cli(db, "audience", "--lat", "40.75", "--lng", "-73.98", "--lat", "40.80", "--lng", "-73.95",
               "--radius", "1mi") == 0
    out = capsys.readouterr().out
    with geotarget.open(db, read_only=True) as eng:
        n = len(eng.audience(points=[(40.75, -73.98), (40.80, -73.95)], radius="1mi"))
    assert f"audience: {n:,} customers" in out and "P1" in out and "P2" in out
    assert cli(db, "audience", "--lat", "40.75", "--lat", "40.8", "--lng", "-73.9", "--radius", "1mi") == 2
    assert "in pairs" in capsys.readouterr().err


def test_points_file_and_stdout_and_count_only(db, tmp_path, capfdbinary):
    pts = tmp_path / "p.csv"
    pd.DataFrame({"point_id": ["home", "work"], "latitude": [40.75, 40.7], "longitude": [-73.98, -74.0]}).to_csv(
        pts, index=False)
    assert cli(db, "audience", "--points", str(pts), "--radius", "2km", "--no-min-size") == 0
    out = capfdbinary.readouterr().out.decode()
    assert "home" in out and "work" in out and "wrote" not in out
    assert cli(db, "audience", "--points", str(pts), "--radius", "2km", "--no-min-size", "-o", "-") == 0
    captured = capfdbinary.readouterr()
    frame = pd.read_csv(io.BytesIO(captured.out))
    assert list(frame.columns[:3]) == ["customer_id", "lat", "lng"] and set(frame["point_id"]) <= {"home", "work"}


def test_region_export_names_the_region_and_combines_with_a_radius(db, tmp_path, capsys):
    out = tmp_path / "r.csv"
    assert cli(db, "audience", "--region-layer", "hoods", "-o", str(out), "--no-min-size") == 0
    frame = pd.read_csv(out)
    assert {"region_id", "region"} <= set(frame.columns) and frame["region"].notna().all()
    assert cli(db, "audience", "--store", "S001", "--radius", "3mi", "--region-layer", "hoods",
               "--region", str(frame["region_id"].iloc[0])) == 0
    assert "and in 1 region(s)" in capsys.readouterr().out


def test_listings(db, capsys):
    assert cli(db, "stores", "list") == 0
    assert capsys.readouterr().out.splitlines()[0].split() == ["store_id", "name", "lat", "lng"]
    assert cli(db, "stores", "near", "--lat", "40.75", "--lng", "-73.98", "--radius", "50km", "--csv") == 0
    near = pd.read_csv(io.StringIO(capsys.readouterr().out))
    assert list(near["distance_m"]) == sorted(near["distance_m"]) and len(near) > 0
    assert cli(db, "regions", "list") == 0 and "hoods" in capsys.readouterr().out
    assert cli(db, "regions", "list", "hoods", "--csv") == 0
    assert len(pd.read_csv(io.StringIO(capsys.readouterr().out))) == 20
    assert cli(db, "columns") == 0 and "tier" in capsys.readouterr().out


def test_rejects_print_as_a_clean_table(db, capsys):
    assert cli(db, "rejects") == 0
    lines = capsys.readouterr().out.splitlines()
    assert lines[0].split() == ["kind", "source", "row", "reason", "raw"]
    assert "latitude out of range" in lines[1] and "\\" not in lines[1]


def test_citywide_segment_heatmap(db, tmp_path, capsys):
    assert cli(db, "heatmap", "--where", "tier=gold", "--tiles", "none", "--res", "6", "-o",
               str(tmp_path / "h.html")) == 0
    assert "tier == 'gold', everywhere" in capsys.readouterr().out


def test_errors_name_cli_options_and_stay_on_one_line(db, capsys):
    assert cli(db, "audience", "--where", "age>abc") == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "age" in err
    assert cli(db, "audience", "--store", "S001", "--lat", "40.7", "--lng", "-73.9", "--radius", "1mi") == 2
    err = capsys.readouterr().err
    assert "--store" in err and "stores=" not in err


def test_warnings_are_one_clean_line(capsys):
    import warnings

    from geotarget.cli._app import _one_line_warnings

    saved = warnings.showwarning
    try:
        _one_line_warnings()
        warnings.showwarning("a region was repaired\n  twice", UserWarning, "/some/where.py", 3)
    finally:
        warnings.showwarning = saved
    err = capsys.readouterr().err
    assert err == "warning: a region was repaired twice\n"


def test_info_opens_the_database_read_only(db, capsys):
    import duckdb

    hold = duckdb.connect(str(db), read_only=True)  # a reader elsewhere: a writer could not open the file
    try:
        assert cli(db, "info", "--json") == 0
    finally:
        hold.close()
    import json

    assert json.loads(capsys.readouterr().out)["counts"]["customers"] == 4001


def test_ctrl_c_is_one_line(tmp_path):
    from geotarget.sample import sample_customers

    big = tmp_path / "big.csv"
    sample_customers(200_000, seed=1).to_csv(big, index=False)
    proc = subprocess.Popen([sys.executable, "-m", "geotarget", "--db", str(tmp_path / "i.duckdb"), "ingest",
                             "customers", str(big)], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    deadline = time.monotonic() + 60
    while not (tmp_path / "i.duckdb").exists() and time.monotonic() < deadline:  # past the imports
        time.sleep(0.05)
    time.sleep(0.5)
    proc.send_signal(signal.SIGINT)
    out, err = proc.communicate(timeout=120)
    if proc.returncode == 0:
        pytest.skip("the ingest finished before the interrupt")
    assert "Traceback" not in err and proc.returncode == 130, err
    assert [line for line in err.splitlines() if line.strip()] == [
        "interrupted: nothing was written by the interrupted step"]
