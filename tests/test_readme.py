"""Every code block of the README runs, and its other claims match the repository.

- ```python blocks run in order, in one namespace, in a fresh working folder
  (the first block writes the sample there), with warnings as errors.
- ```bash blocks run in order with ``bash -euo pipefail`` in another fresh
  folder, with ``GEOTARGET_DB`` naming a temporary database and this
  environment's ``geotarget`` first on PATH. A block of ``make`` commands is
  the only kind skipped. Port 8000 is replaced by a free port, and the
  block's process group is stopped afterwards, so a server started by a
  block never outlives it.
"""

from __future__ import annotations

import importlib.util
import os
import re
import signal
import socket
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
README = ROOT / "README.md"
TEXT = README.read_text(encoding="utf-8")
BLOCKS = re.findall(r"^```(\w*)\n(.*?)^```", TEXT, re.M | re.S)

_spec = importlib.util.spec_from_file_location("gt_readme_bench", ROOT / "scripts" / "readme_bench.py")
readme_bench = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(readme_bench)


def _commands(code: str) -> list[str]:
    """The block's commands: continuation lines joined, comments and blank lines dropped."""
    joined = re.sub(r"\\\n\s*", " ", code)
    return [line.strip() for line in joined.splitlines() if line.strip() and not line.strip().startswith("#")]


def _is_make(code: str) -> bool:
    return all(cmd.startswith("make ") for cmd in _commands(code))


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_blocks_are_python_or_bash():
    assert BLOCKS, "the README has no code block"
    assert {lang for lang, _ in BLOCKS} <= {"python", "bash"}, "label every block ```python or ```bash"


def test_the_two_commands_come_first():
    lang, code = BLOCKS[0]
    assert lang == "bash" and [c.split("#")[0].strip() for c in _commands(code)] == ["make demo", "make test"]
    makefile = (ROOT / "Makefile").read_text()
    for target in ("demo", "test", "notebooks", "screenshots", "bench"):
        assert re.search(rf"^{target}:", makefile, re.M), f"the README names `make {target}`; the Makefile has none"
    # what the README says `make demo` writes is what the Makefile writes
    for output in re.findall(r"`(out/[^`]+)`", TEXT.split("## A five-minute tour")[0]):
        if output.startswith("out/notebooks"):
            continue
        assert output.replace("out/", "$(OUT)/") in makefile, output


def test_pictures_exist_and_are_small():
    pictures = re.findall(r"!\[[^\]]*\]\(([^)]+)\)", TEXT)
    assert pictures
    for rel in pictures:
        path = ROOT / rel
        assert path.is_file(), f"{rel} is missing; run `make screenshots`"
        assert path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
        assert path.stat().st_size < 300_000, f"{rel} is over 300 KB"


def test_python_blocks_run(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("GEOTARGET_DB", raising=False)
    namespace: dict = {"__name__": "__readme__"}
    ran = 0
    for i, (lang, code) in enumerate(BLOCKS):
        if lang != "python":
            continue
        exec(compile(code, f"README.md python block {i}", "exec"), namespace)  # noqa: S102
        ran += 1
    assert ran >= 5
    for written in ("audience_S001.csv", "spring_google.csv", "heatmap.html", "coverage.html", "coverage.png"):
        assert (tmp_path / written).stat().st_size > 0, written


def test_bash_blocks_run(tmp_path):
    env = {**os.environ, "GEOTARGET_DB": str(tmp_path / "readme.duckdb"),
           "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ.get('PATH', '')}"}
    env.pop("GEOTARGET_API_KEYS", None)
    ran = 0
    for i, (lang, code) in enumerate(BLOCKS):
        if lang != "bash" or _is_make(code):
            continue
        script = code.replace("8000", str(_free_port()))
        proc = subprocess.Popen(["bash", "-euo", "pipefail", "-c", script], cwd=tmp_path, env=env,
                                stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, start_new_session=True)
        try:
            out, err = proc.communicate(timeout=300)
        finally:
            try:
                os.killpg(proc.pid, signal.SIGKILL)  # whatever the block left running in its group
            except ProcessLookupError:
                pass
        assert proc.returncode == 0, f"README.md bash block {i} failed ({proc.returncode}):\n{script}\n{out}\n{err}"
        if "/v1/promotions" in script:
            assert '"midtown free delivery"' in out and '"midtown 15% off"' in out, out
        ran += 1
    assert ran >= 3
    for written in ("audience_S001.csv", "spring_google.csv", "heatmap.html", "heatmap.png", "hoods.html",
                    "coverage.html", "coverage.png", "midtown.csv"):
        assert (tmp_path / written).stat().st_size > 0, written


def test_benchmark_section_matches_results():
    """The README's table is benchmarks/RESULTS.md's (or says it has not been generated)."""
    assert readme_bench.current_section(TEXT) == readme_bench.expected_section(), (
        "the README's benchmark section differs from benchmarks/RESULTS.md; run: python scripts/readme_bench.py")


def test_benchmark_excerpt_reads_the_report_layout():
    """The excerpt understands what benchmarks/report.py writes."""
    from benchmarks.report import render

    facts = {"date": "2026-01-02 03:04 UTC", "cpu": "a CPU", "cores": 2, "memory_gib": 24.0, "os": "Linux",
             "python": "3.11"}
    record = {"workload": "single", "peer": "geotarget", "variant": "geotarget", "size": 1_000_000,
              "distribution": "uniform", "count": 3,
              "timing": {"median": 0.002, "min": 0.002, "max": 0.003, "runs": [0.002], "warmup": 0.01},
              "agreement": {"exact": True, "missing": 0, "extra": 0}}
    peer = record | {"peer": "postgis", "variant": "PostGIS ST_DWithin geography + GiST",
                     "timing": record["timing"] | {"median": 0.02}}
    text = readme_bench.excerpt(render([record, peer], facts, "make bench", {}))
    assert "2026-01-02 03:04 UTC" in text and "`make bench`" in text and "2 cores (a CPU)" in text
    assert "| target | dataset | measured | verdict |" in text
    assert "| single: identical to the truth | 1M uniform | 0 missing, 0 extra | met |" in text
    assert "| single store: >= 10x faster than PostGIS | 1M uniform | 10.0x | met |" in text


def test_data_section_lists_every_shared_dataset():
    """Each file of the shared data folder's manifest is in the README's data table."""
    from conftest import REAL_DATA

    manifest = REAL_DATA / "MANIFEST.md"
    if not manifest.exists():
        pytest.skip(f"MANIFEST.md not found under {REAL_DATA} (set GEOTARGET_REAL_DATA)")
    files = re.findall(r"^FILE: (\S+)", manifest.read_text(), re.M)
    assert files
    data = TEXT.split("## Data", 1)[1]
    missing = [f for f in files if f"`{f}`" not in data]
    assert missing == [], f"add these datasets to the README's data section: {missing}"
    assert "GEOTARGET_REAL_DATA" in data
