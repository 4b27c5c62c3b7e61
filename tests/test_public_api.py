"""The public surface: explicit __all__, docstrings everywhere, no optional imports."""

import subprocess
import sys

import geotarget

EXPECTED = {
    "AudienceTooSmallError", "ColumnNotFoundError", "Engine", "GeotargetError", "GeotargetWarning",
    "IngestReport", "InvalidFilterError", "InvalidInputError", "InvalidLocationError", "InvalidRadiusError",
    "MissingDependencyError", "NotFoundError", "PrivacyError", "SchemaVersionError", "SourceError",
    "SwappedCoordinatesError", "__version__", "open", "parse_distance", "parse_radius",
}


def test_all_is_the_intended_surface():
    assert EXPECTED <= set(geotarget.__all__)
    for name in geotarget.__all__:
        assert hasattr(geotarget, name), name


def test_every_public_name_has_a_docstring():
    missing = [n for n in geotarget.__all__ if n != "__version__" and not (getattr(geotarget, n).__doc__ or "").strip()]
    assert missing == []


def test_engine_public_methods_have_docstrings():
    missing = [n for n in dir(geotarget.Engine) if not n.startswith("_") and not (getattr(geotarget.Engine, n).__doc__ or "").strip()]
    assert missing == []


def test_import_pulls_no_optional_dependency():
    code = "import sys, geotarget; print(','.join(m for m in ('fastapi', 'uvicorn', 'playwright', 'folium', 'sklearn', 'psycopg2', 'pyspark', 'py4j') if m in sys.modules))"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == ""
