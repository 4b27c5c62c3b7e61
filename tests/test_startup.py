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
