"""The API reference: every public name has a docstring, public functions show a running example.

Every module has a docstring and an ``__all__`` (what other modules may use;
see ARCHITECTURE.md). The public surface is ``geotarget.__all__`` and the
``__all__`` of each subpackage (``geotarget.geo``, ``geotarget.store``, ...),
which re-exports names from its modules; the examples (``>>>``) in the
docstrings run under pytest's doctest collection (``--doctest-modules`` on
``geotarget/``).

The example requirement started after much of the library was written, so
the names below that still lack one are listed as known debt. The list may
only shrink: a name missing from it fails the test, and a listed name that
gains an example is simply no longer reported (delete it from the list).
"""

from __future__ import annotations

import importlib
import inspect
import pkgutil
import re
import tomllib
from pathlib import Path

import pytest

import geotarget

ROOT = Path(__file__).resolve().parents[1]

#: Command modules of the CLI (geotarget.cli.*) register typer commands and export nothing.
COMMAND_PACKAGE = "geotarget.cli."

#: Public functions and Engine methods without an example yet (see the module docstring).
KNOWN_WITHOUT_EXAMPLE = {
    "geotarget.audience.audience.build_audience",
    "geotarget.geo.cells.cell_ranges", "geotarget.geo.cells.cells_to_str", "geotarget.geo.cells.covering_res",
    "geotarget.geo.cells.str_to_cells",
    "geotarget.cli._app.run",
    "geotarget.audience.export.format_for_path", "geotarget.audience.export.write_audience", "geotarget.audience.export.write_customer_match",
    "geotarget.geo.geodesy.fast_distance_m", "geotarget.geo.geodesy.local_error_bound_m",
    "geotarget.store.ingest.ingest_points", "geotarget.store.ingest.ingest_regions",
    "geotarget.campaigns.lookup.build_snapshot", "geotarget.campaigns.lookup.grid_level",
    "geotarget.maps.choropleth.choropleth_map", "geotarget.maps.folium.coverage_map",
    "geotarget.maps.folium.save_html", "geotarget.maps.png.save_png",
    "geotarget.audience.privacy.check_min_size", "geotarget.audience.privacy.email_column", "geotarget.audience.privacy.hash_value",
    "geotarget.audience.privacy.phone_column",
    "geotarget.sample.sample_neighborhoods", "geotarget.sample.sample_stores", "geotarget.sample.write_sample",
    "geotarget.service.create_app", "geotarget.service.serve",
    "geotarget.store.database.default_db_path",
    "Engine.campaign", "Engine.campaign_audience", "Engine.campaigns", "Engine.close", "Engine.coverage",
    "Engine.delete_campaign", "Engine.heatmap", "Engine.info", "Engine.ingest_customers", "Engine.ingest_regions",
    "Engine.ingest_stores", "Engine.ingest_suppressions", "Engine.layers", "Engine.path", "Engine.pause_campaign",
    "Engine.regions", "Engine.rejects", "Engine.resume_campaign", "Engine.stores",
}

#: Result classes whose public methods and properties are part of the API.
RESULT_CLASSES = ("Audience", "HeatmapResult", "Coverage", "Campaign", "IngestReport")

_SECTIONS = ("Parameters", "Returns", "Yields", "Raises", "Warns", "See Also", "Notes", "References", "Examples",
             "Attributes", "Methods", "Other Parameters")


def _modules() -> list[str]:
    names = ["geotarget"]
    for info in pkgutil.walk_packages(geotarget.__path__, "geotarget."):
        if not any(part.startswith("_") for part in info.name.split(".")[1:]):
            names.append(info.name)
    return sorted(names)


MODULES = _modules()

#: The public surface: the package and its subpackages (their __init__ re-exports what is public).
PUBLIC_PACKAGES = ["geotarget", *(n for n in MODULES if n.count(".") == 1
                                 and hasattr(importlib.import_module(n), "__path__"))]


def _public_objects():
    """(qualified name, object) for every function and class in a public package's __all__."""
    seen = set()
    for name in PUBLIC_PACKAGES:
        mod = importlib.import_module(name)
        for attr in getattr(mod, "__all__", []):
            obj = getattr(mod, attr)
            if not (inspect.isfunction(obj) or inspect.isclass(obj)) or id(obj) in seen:
                continue
            seen.add(id(obj))
            yield f"{obj.__module__}.{obj.__qualname__}", obj


def _engine_members():
    for name, member in inspect.getmembers(geotarget.Engine):
        if not name.startswith("_"):
            yield f"Engine.{name}", member.fget if isinstance(member, property) else member


def _doc(obj) -> str:
    return inspect.getdoc(obj) or ""


def test_doctests_are_collected():
    config = tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["pytest"]["ini_options"]
    assert "--doctest-modules" in config["addopts"]
    assert "geotarget" in config["testpaths"]


@pytest.mark.parametrize("name", MODULES)
def test_public_module_is_documented(name):
    mod = importlib.import_module(name)
    assert _doc(mod).strip(), f"{name} has no module docstring"
    if name.startswith(COMMAND_PACKAGE):
        return
    assert hasattr(mod, "__all__"), f"{name} has no __all__; list what other modules may use"
    for attr in mod.__all__:
        assert hasattr(mod, attr), f"{name}.__all__ names {attr!r}, which does not exist"


def test_every_public_name_has_a_docstring():
    missing = [q for q, obj in _public_objects() if not _doc(obj).strip()]
    missing += [q for q, obj in _engine_members() if not _doc(obj).strip()]
    for cls_name in RESULT_CLASSES:
        cls = getattr(geotarget, cls_name, None) or getattr(importlib.import_module("geotarget.audience.audience"), cls_name)
        for attr, member in vars(cls).items():
            if attr.startswith("_") or not (inspect.isfunction(member) or isinstance(member, property)):
                continue
            target = member.fget if isinstance(member, property) else member
            if not _doc(target).strip():
                missing.append(f"{cls_name}.{attr}")
    assert missing == []


def test_public_functions_have_examples():
    without = {q for q, obj in _public_objects() if inspect.isfunction(obj) and ">>>" not in _doc(obj)}
    without |= {q for q, obj in _engine_members() if ">>>" not in _doc(obj)}
    new = sorted(without - KNOWN_WITHOUT_EXAMPLE)
    assert new == [], f"add an Examples section (numpydoc, with >>>) to: {new}"


def test_numpydoc_section_headings_are_underlined():
    """A numpydoc section heading is followed by a line of dashes as long as the heading."""
    bad = []
    for qualname, obj in [*_public_objects(), *_engine_members()]:
        lines = _doc(obj).splitlines()
        for i, line in enumerate(lines[:-1]):
            if line.strip() in _SECTIONS and re.fullmatch(r"\s*-{3,}\s*", lines[i + 1]):
                if len(lines[i + 1].strip()) != len(line.strip()):
                    bad.append(f"{qualname}: {line.strip()!r}")
            elif line.strip() in _SECTIONS and i + 1 < len(lines) and lines[i + 1].strip() == "" and \
                    i + 2 < len(lines) and re.fullmatch(r"\s*-{3,}\s*", lines[i + 2]):
                bad.append(f"{qualname}: blank line under {line.strip()!r}")
    assert bad == []
