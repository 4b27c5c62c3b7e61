"""Start-up: `import geotarget` and `geotarget --help` load none of the heavy libraries.

Times are benchmarks (benchmarks/startup.py); these tests check the cause of a slow
start instead: which modules a fresh interpreter has imported.
"""

import subprocess
import sys

import pytest

HEAVY = ("pandas", "numpy", "duckdb", "pyarrow", "folium", "branca", "pyproj", "shapely", "geopandas",
         "matplotlib", "scipy", "sklearn", "h3", "fastapi", "uvicorn")


#: Not heavy, but not needed by a one-shot command either: rich draws tables and progress bars only, and
#: pydantic is what typer 0.29 builds a validator per option with, at every start (about 0.1 s).
FRAMEWORK = ("rich", "pydantic")


def _loaded(code: str, names: tuple[str, ...] = HEAVY) -> list[str]:
    probe = code + f"\nimport sys; print('loaded:' + ','.join(m for m in {names!r} if m in sys.modules))"
    out = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, check=True, timeout=60)
    last = out.stdout.strip().splitlines()[-1] if out.stdout.strip() else ""
    assert last.startswith("loaded:"), f"the probe did not run to its end: {out.stdout!r} {out.stderr!r}"
    return [m for m in last.removeprefix("loaded:").split(",") if m]


def _cli(argv: list[str]) -> str:
    """Code running the CLI on ``argv`` in-process (``main``: ``run`` would end the process), output hidden."""
    return (f"import sys, contextlib, io; sys.argv = ['geotarget', *{argv!r}]\n"
            "from geotarget.cli import _app\n"
            "with contextlib.redirect_stdout(io.StringIO()): assert _app.main() == 0")


def test_import_geotarget_pulls_no_heavy_module():
    assert _loaded("import geotarget") == []


def test_public_names_load_on_first_use():
    code = "import geotarget; geotarget.Engine; geotarget.open; geotarget.maps.Coverage"
    assert "duckdb" in _loaded(code)


@pytest.mark.parametrize("argv", [["--help"], ["ingest", "--help"], ["audience", "--help"], ["campaign", "--help"]])
def test_cli_help_pulls_no_heavy_module(argv):
    assert _loaded(_cli(argv)) == []


def test_cli_registers_only_the_command_it_runs():
    code = (_cli(["--db", "x.duckdb", "--wait", "3", "audience", "--help"]) + "\n"
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
    code = _cli(argv)
    for run in ("first run", "second run"):
        loaded = _loaded(code, HEAVY + FRAMEWORK)
        assert "duckdb" in loaded, run  # the query did run
        assert not {"pandas", "pyproj", "shapely", "folium", "geopandas", "scipy", *FRAMEWORK} & set(loaded), \
            (run, loaded)
    written = pd.read_csv(out)
    assert written["customer_id"].tolist() == expected["customer_id"].tolist()
    assert len(written) > 100
