"""Run, strip and check the notebooks in notebooks/.

    python scripts/notebooks.py run [--out out/notebooks] [NAME ...]   execute; keep executed copies in --out
    python scripts/notebooks.py strip [NAME ...]                      clear outputs in place (before committing)
    python scripts/notebooks.py check [NAME ...]                      exit 1 if a notebook holds outputs

Notebooks run in a kernel of this Python (the one running the script): its
kernelspec is installed into this environment (``ipykernel install
--sys-prefix``) first, so a kernel found elsewhere on the machine is never
used. Each notebook runs with its own folder as the working directory.
``tests/test_notebooks.py`` uses the same functions.
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import time
from pathlib import Path

# jupyter_core warns about its coming platformdirs move unless told to use them now
os.environ.setdefault("JUPYTER_PLATFORM_DIRS", "1")
# an environment's own kernels before the user's
os.environ.setdefault("JUPYTER_PREFER_ENV_PATH", "1")

ROOT = Path(__file__).resolve().parents[1]
NOTEBOOKS = ROOT / "notebooks"
KERNEL = "python3"
#: Per-cell time limit, in seconds.
CELL_TIMEOUT = 300


def notebook_paths(names: list[str] | None = None) -> list[Path]:
    """The notebooks, all of them or those named (with or without .ipynb)."""
    found = sorted(NOTEBOOKS.glob("*.ipynb"))
    if not names:
        return found
    wanted = {n.removesuffix(".ipynb") for n in names}
    chosen = [p for p in found if p.stem in wanted]
    unknown = wanted - {p.stem for p in chosen}
    if unknown:
        raise SystemExit(f"no notebook named {', '.join(sorted(unknown))} in {NOTEBOOKS}")
    return chosen


def ensure_kernel() -> None:
    """Install this Python's kernelspec into this environment, and check that it is the one found."""
    subprocess.run([sys.executable, "-m", "ipykernel", "install", "--sys-prefix", "--name", KERNEL,
                    "--display-name", "Python 3 (ipykernel)"], check=True, capture_output=True)
    from jupyter_client.kernelspec import KernelSpecManager

    spec = KernelSpecManager().get_kernel_spec(KERNEL)
    exe = spec.argv[0]
    if exe not in ("python", "python3") and Path(exe).resolve() != Path(sys.executable).resolve():
        raise RuntimeError(f"kernel {KERNEL!r} runs {exe}, not {sys.executable}; remove the kernelspec in "
                           f"{spec.resource_dir} or set JUPYTER_PREFER_ENV_PATH=1")


def execute(path: Path, *, timeout: int = CELL_TIMEOUT):
    """Execute a notebook in its own folder and return it with outputs (raises CellExecutionError)."""
    import nbformat
    from nbclient import NotebookClient

    nb = nbformat.read(path, as_version=4)
    client = NotebookClient(nb, timeout=timeout, kernel_name=KERNEL, allow_errors=False,
                            resources={"metadata": {"path": str(path.parent)}})
    client.execute()
    return nb


def strip(nb) -> bool:
    """Clear outputs, execution counts and run-time metadata in place; True when something changed."""
    changed = False
    for cell in nb.cells:
        if cell.cell_type != "code":
            continue
        if cell.get("outputs"):
            cell.outputs = []
            changed = True
        if cell.get("execution_count") is not None:
            cell.execution_count = None
            changed = True
        for key in ("execution", "collapsed", "scrolled"):
            if key in cell.metadata:
                del cell.metadata[key]
                changed = True
    for key in ("widgets", "papermill"):
        if key in nb.metadata:
            del nb.metadata[key]
            changed = True
    return changed


def has_outputs(nb) -> list[int]:
    """Indexes of code cells that hold outputs or an execution count."""
    return [i for i, c in enumerate(nb.cells)
            if c.cell_type == "code" and (c.get("outputs") or c.get("execution_count") is not None)]


def _run(args) -> int:
    import nbformat

    ensure_kernel()
    out = Path(args.out) if args.out else None
    if out:
        out.mkdir(parents=True, exist_ok=True)
    for path in notebook_paths(args.names):
        start = time.perf_counter()
        nb = execute(path)
        print(f"{path.name}: ran in {time.perf_counter() - start:.1f} s", flush=True)
        if out:
            nbformat.write(nb, out / path.name)
            print(f"  executed copy: {out / path.name}")
    return 0


def _strip(args) -> int:
    import nbformat

    for path in notebook_paths(args.names):
        nb = nbformat.read(path, as_version=4)
        if strip(nb):
            nbformat.write(nb, path)
            print(f"stripped {path.relative_to(ROOT)}")
    return 0


def _check(args) -> int:
    import nbformat

    bad = [p for p in notebook_paths(args.names) if has_outputs(nbformat.read(p, as_version=4))]
    for p in bad:
        print(f"{p.relative_to(ROOT)} holds outputs; run: python scripts/notebooks.py strip {p.stem}")
    return 1 if bad else 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    sub = parser.add_subparsers(dest="command", required=True)
    run = sub.add_parser("run", help="execute notebooks")
    run.add_argument("--out", help="folder for the executed copies (never the notebooks themselves)")
    run.add_argument("names", nargs="*")
    for name in ("strip", "check"):
        sub.add_parser(name).add_argument("names", nargs="*")
    args = parser.parse_args(argv)
    return {"run": _run, "strip": _strip, "check": _check}[args.command](args)


if __name__ == "__main__":
    sys.exit(main())
