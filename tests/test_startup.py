"""Start-up: `import geotarget` and `geotarget --help` load none of the heavy libraries.

Times are benchmarks (benchmarks/startup.py); these tests check the cause of a slow
start instead: which modules a fresh interpreter has imported.
"""

import subprocess
import sys

import pytest

HEAVY = ("pandas", "numpy", "duckdb", "pyarrow", "folium", "branca", "pyproj", "shapely", "geopandas",
         "matplotlib", "scipy", "sklearn", "h3", "fastapi", "uvicorn")


def _loaded(code: str) -> list[str]:
    probe = code + f"; import sys; print(','.join(m for m in {HEAVY!r} if m in sys.modules))"
    out = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, check=True, timeout=60)
    return [m for m in out.stdout.strip().splitlines()[-1].split(",") if m] if out.stdout.strip() else []


def test_import_geotarget_pulls_no_heavy_module():
    assert _loaded("import geotarget") == []


def test_public_names_load_on_first_use():
    code = "import geotarget; geotarget.Engine; geotarget.open; geotarget.maps.Coverage"
    assert "duckdb" in _loaded(code)


@pytest.mark.parametrize("argv", [["--help"], ["ingest", "--help"], ["audience", "--help"], ["campaign", "--help"]])
def test_cli_help_pulls_no_heavy_module(argv):
    code = (f"import sys, contextlib, io; sys.argv = ['geotarget', *{argv!r}]\n"
            "from geotarget.cli import run\n"
            "with contextlib.redirect_stdout(io.StringIO()), contextlib.suppress(SystemExit): run()")
    assert _loaded(code) == []


def test_cli_registers_only_the_command_it_runs():
    code = ("import sys, contextlib, io; sys.argv = ['geotarget', '--db', 'x.duckdb', '--wait', '3', 'audience', "
            "'--help']\n"
            "from geotarget.cli import run\n"
            "with contextlib.redirect_stdout(io.StringIO()), contextlib.suppress(SystemExit): run()\n"
            "print([m for m in ('geotarget.cli.ingest', 'geotarget.cli.maps', 'geotarget.cli.campaign') if m in sys.modules])")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True, timeout=60)
    assert out.stdout.strip() == "[]"


def test_the_app_has_every_command():
    from typer.main import get_command

    from geotarget.cli import app

    names = set(get_command(app).commands)
    assert {"audience", "suppress", "campaign", "ingest", "info", "rejects", "sample", "heatmap", "map",
            "serve"} <= names


def test_one_shot_cli_audience_pulls_no_pandas(tmp_path):
    """`geotarget audience --store S --radius 2mi -o x.csv` reads the mapped index and writes CSV without pandas."""
    import numpy as np
    import pandas as pd

    import geotarget

    db = tmp_path / "g.duckdb"
    rng = np.random.default_rng(7)
    with geotarget.open(db) as eng:
        eng.ingest_stores(pd.DataFrame({"store_id": ["S1", "S2"], "lat": [40.758, 40.70], "lng": [-73.9855, -73.95]}))
        eng.ingest_customers(pd.DataFrame({"customer_id": [f"c{i}" for i in range(3000)],
                                           "lat": 40.758 + rng.normal(0, 0.02, 3000),
                                           "lng": -73.9855 + rng.normal(0, 0.02, 3000)}))
        expected = eng.audience(stores=["S1"], radius="2mi").to_pandas()
    out = tmp_path / "x.csv"
    argv = ["--db", str(db), "audience", "--store", "S1", "--radius", "2mi", "-o", str(out)]
    code = (f"import sys; sys.argv = ['geotarget', *{argv!r}]\n"
            "from geotarget.cli import _app, _load_commands\n"
            "_load_commands(sys.argv[1:]); assert _app.main() == 0")
    for run in ("first run", "second run"):
        loaded = _loaded(code)
        assert "duckdb" in loaded, run  # the query did run
        assert not {"pandas", "pyproj", "shapely", "folium", "geopandas", "scipy"} & set(loaded), (run, loaded)
    written = pd.read_csv(out)
    assert written["customer_id"].tolist() == expected["customer_id"].tolist()
    assert len(written) > 100
