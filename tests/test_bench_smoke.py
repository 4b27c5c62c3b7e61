"""The benchmark's quick run as a correctness test: every peer agrees with the geodesic truth.

Never a timing assertion (benchmarks are not tests). PostGIS is installed and
started exactly as ``make bench`` does; when it cannot be, the test skips and
says why.
"""

from __future__ import annotations

from pathlib import Path

import pytest

pytest.importorskip("psycopg2", reason="the bench extra is not installed (pip install -e '.[bench]')")
pytest.importorskip("sklearn", reason="the bench extra is not installed (pip install -e '.[bench]')")

from benchmarks.__main__ import parse_args, run  # noqa: E402
from benchmarks.postgis import PostgisUnavailable, ensure_installed  # noqa: E402

REPO = Path(__file__).resolve().parents[1]

# How far from the boundary an approximate peer may go wrong: the sphere and
# the WGS84 ellipsoid differ by < 0.6 % of a distance; EPSG:2263's scale error
# over New York City is far below 0.1 %.
TOLERANCE_M = {"duckdb": 0.006 * 3218.688, "balltree": 0.006 * 3218.688, "geopandas": 0.001 * 3218.688}


@pytest.fixture(scope="module")
def quick_run(tmp_path_factory):
    try:
        ensure_installed()
    except PostgisUnavailable as exc:
        pytest.skip(f"PostGIS cannot be installed here: {exc}")
    out = tmp_path_factory.mktemp("bench") / "RESULTS.md"
    args = parse_args(["--quick", "--work", str(REPO / "benchmarks" / "work" / "smoke"), "--out", str(out)])
    result = run(args, log=lambda *a: None)
    if result["postgis_error"]:
        pytest.skip(f"PostGIS cannot be started here: {result['postgis_error']}")
    return result, out


def _records(result, workload):
    return [r for r in result["records"] if r.get("workload") == workload and "unavailable" not in r]


def test_every_variant_ran(quick_run):
    result, _ = quick_run
    failed = [(r["workload"], r["variant"], r["error"]) for r in result["records"] if "error" in r]
    assert failed == []
    peers = {r["peer"] for r in _records(result, "single")}
    assert {"postgis", "duckdb", "geopandas", "balltree"} <= peers


@pytest.mark.parametrize("workload", ["single", "many", "regions"])
def test_answers_agree_with_the_geodesic_truth(quick_run, workload):
    result, _ = quick_run
    records = _records(result, workload)
    if workload == "regions" and not records:
        pytest.skip("NYC NTA polygons absent from ../shared/data (set GEOTARGET_REAL_DATA)")
    assert records
    for rec in records:
        agreement = rec["agreement"]
        where = f"{rec['dataset']} {rec['variant']}"
        if rec["peer"] in ("geotarget", "postgis") or workload == "regions":
            assert agreement["exact"], f"{where}: {agreement}"
            if "max_distance_error_m" in agreement:
                assert agreement["max_distance_error_m"] < 0.01, where
        else:  # approximations may only err in the band their model allows
            assert agreement["worst_miss_m"] <= TOLERANCE_M[rec["peer"]], f"{where}: {agreement}"
        assert abs(rec["count"] - agreement["truth"]) <= agreement["missing"] + agreement["extra"], where
        if workload == "many" and rec["peer"] in ("geotarget", "postgis"):
            assert agreement["nearest_ok"] == agreement["checked"], f"{where}: {agreement}"


def test_heatmap_peers_count_the_same_cells(quick_run):
    result, _ = quick_run
    for rec in _records(result, "heatmap"):
        if rec["peer"] == "duckdb":
            assert rec["agreement"]["exact"], rec["agreement"]


def test_report_is_written(quick_run):
    result, out = quick_run
    text = out.read_text()
    assert "## Targets" in text and "## Machine" in text
    assert f"{result['facts']['cores']} cores" in text
