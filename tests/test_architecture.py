"""The layers of ARCHITECTURE.md hold: import-linter's contracts from pyproject.toml are kept."""

import shutil
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def test_layers_and_no_cycles():
    exe = shutil.which("lint-imports", path=str(Path(sys.executable).parent))
    assert exe, "import-linter is not installed; it is in the test extra (make install-test)"
    out = subprocess.run([exe, "--no-cache"], cwd=ROOT, capture_output=True, text=True)
    assert out.returncode == 0, out.stdout[-3000:] + out.stderr[-2000:]
    assert "0 broken" in out.stdout


def test_every_subpackage_is_in_a_layer():
    """A new subpackage must be placed in the layer contract, or nothing checks its imports."""
    import tomllib

    config = tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["importlinter"]
    layers = next(c for c in config["contracts"] if c["type"] == "layers")["layers"]
    named = {part.strip().strip("()") for layer in layers for part in layer.split("|")}
    packages = {p.parent.name for p in (ROOT / "geotarget").glob("*/__init__.py")}
    modules = {p.stem for p in (ROOT / "geotarget").glob("*.py")} - {"__init__", "__main__", "sample"}
    assert packages - named == set(), f"subpackages missing from the layer contract: {packages - named}"
    assert modules - named == set(), f"top-level modules missing from the layer contract: {modules - named}"
