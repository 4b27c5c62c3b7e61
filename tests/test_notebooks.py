"""The notebooks run from top to bottom, warn about nothing, and are committed without outputs.

Each notebook runs in a kernel of the test's own Python (its kernelspec is
installed into this environment first; see ``scripts/notebooks.py``), with
``notebooks/`` as the working directory. A notebook that needs the shared
real datasets stops in its first cell with a FileNotFoundError naming the
missing files and ``GEOTARGET_REAL_DATA``; the test then skips with that
message.
"""

from __future__ import annotations

import importlib.util
import re
import time
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
_spec = importlib.util.spec_from_file_location("gt_notebooks", ROOT / "scripts" / "notebooks.py")
nbtools = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(nbtools)

NOTEBOOKS = nbtools.notebook_paths()
EXPECTED = ["01_quickstart", "02_neighborhood_heatmap", "03_backend", "04_campaign_lift", "05_trade_areas"]

# what a kernel may print on stderr without it being a problem in the notebook
_HARMLESS_STDERR = re.compile(r"Kernel is running over TCP without encryption")
# colours of the kernel's tracebacks, dropped from failure messages
_ANSI = re.compile(r"\x1b\[[0-9;]*m")


def test_the_tour_is_all_there():
    assert [p.stem for p in NOTEBOOKS] == EXPECTED


@pytest.mark.parametrize("path", NOTEBOOKS, ids=[p.stem for p in NOTEBOOKS])
def test_committed_without_outputs(path):
    import nbformat

    nb = nbformat.read(path, as_version=4)
    nbformat.validate(nb)
    assert nbtools.has_outputs(nb) == [], f"{path.name} holds outputs; run: python scripts/notebooks.py strip"
    assert nb.metadata["kernelspec"]["name"] == nbtools.KERNEL


@pytest.mark.parametrize("path", NOTEBOOKS, ids=[p.stem for p in NOTEBOOKS])
def test_real_data_is_named_at_the_top(path):
    """A notebook reading the shared datasets says so, and where from, before anything else."""
    import nbformat

    nb = nbformat.read(path, as_version=4)
    source = "\n".join(c.source for c in nb.cells)
    if "GEOTARGET_REAL_DATA" not in source:
        assert "shared/data" not in source
        return
    first = nb.cells[0]
    assert first.cell_type == "markdown" and "GEOTARGET_REAL_DATA" in first.source
    assert "FileNotFoundError" in nb.cells[1].source


@pytest.fixture(scope="module")
def kernel():
    nbtools.ensure_kernel()


@pytest.mark.parametrize("path", NOTEBOOKS, ids=[p.stem for p in NOTEBOOKS])
def test_notebook_runs(path, kernel):
    from nbclient.exceptions import CellExecutionError

    start = time.perf_counter()
    try:
        nb = nbtools.execute(path)
    except CellExecutionError as exc:
        if exc.ename == "FileNotFoundError" and "GEOTARGET_REAL_DATA" in exc.evalue:
            pytest.skip(f"{path.name}: {exc.evalue}")
        pytest.fail(f"{path.name} failed:\n{_ANSI.sub('', str(exc))}", pytrace=False)
    elapsed = time.perf_counter() - start
    print(f"{path.name} ran in {elapsed:.1f} s")
    # warnings are errors here as in the rest of the suite: the kernel prints them on stderr
    noise = []
    for i, cell in enumerate(nb.cells):
        for out in cell.get("outputs", []):
            if out.output_type == "stream" and out.name == "stderr" and not _HARMLESS_STDERR.search(out.text):
                noise.append(f"cell {i}: {out.text.strip()[:500]}")
    assert noise == [], "\n".join(noise)
    # the last cell of a notebook with a map shows it inline
    if "to_map()" in nb.cells[-1].source or "choropleth_map(" in nb.cells[-1].source:
        data = nb.cells[-1].outputs[-1]["data"]
        assert "text/html" in data and "leaflet" in data["text/html"].lower()
