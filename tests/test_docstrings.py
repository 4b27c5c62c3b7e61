"""The API reference: every public name has a docstring, public functions show a running example.

Public modules are those of ``geotarget`` whose dotted path has no part
starting with ``_``. Their ``__all__`` is the public surface; the examples
(``>>>``) in the docstrings run under pytest's doctest collection
(``--doctest-modules`` on ``geotarget/``).

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
    "geotarget.audience.build_audience",
    "geotarget.cells.cell_ranges", "geotarget.cells.cells_to_str", "geotarget.cells.covering_res",
    "geotarget.cells.str_to_cells",
    "geotarget.cli._app.run",
    "geotarget.export.format_for_path", "geotarget.export.write_audience", "geotarget.export.write_customer_match",
    "geotarget.geodesy.fast_distance_m", "geotarget.geodesy.local_error_bound_m",
    "geotarget.ingest.ingest_points", "geotarget.ingest.ingest_regions",
    "geotarget.lookup.build_snapshot", "geotarget.lookup.grid_level",
    "geotarget.maps.choropleth_map", "geotarget.maps.coverage_map", "geotarget.maps.save_html",
    "geotarget.maps.save_png",
    "geotarget.privacy.check_min_size", "geotarget.privacy.email_column", "geotarget.privacy.hash_value",
    "geotarget.privacy.phone_column",
    "geotarget.sample.sample_neighborhoods", "geotarget.sample.sample_stores", "geotarget.sample.write_sample",
    "geotarget.service.create_app", "geotarget.service.serve",
    "geotarget.store.default_db_path",
    "Engine.campaign", "Engine.campaign_audience", "Engine.campaigns", "Engine.close", "Engine.coverage",
    "Engine.delete_campaign", "Engine.heatmap", "Engine.info", "Engine.ingest_customers", "Engine.ingest_regions",
    "Engine.ingest_stores", "Engine.ingest_suppressions", "Engine.layers", "Engine.path", "Engine.pause_campaign",
    "Engine.regions", "Engine.rejects", "Engine.resume_campaign", "Engine.stores",
}

#: Result classes whose public methods and properties are part of the API.
RESULT_CLASSES = ("Audience", "HeatmapResult", "Coverage", "Campaign", "IngestReport")

_SECTIONS = ("Parameters", "Returns", "Yields", "Raises", "Warns", "See Also", "Notes", "References", "Examples",
             "Attributes", "Methods", "Other Parameters")


def _public_modules() -> list[str]:
    names = ["geotarget"]
    for info in pkgutil.walk_packages(geotarget.__path__, "geotarget."):
        if not any(part.startswith("_") for part in info.name.split(".")[1:]):
            names.append(info.name)
    return sorted(names)


MODULES = _public_modules()


def _public_objects():
    """(qualified name, object) for every function and class in a public module's __all__."""
    seen = set()
    for name in MODULES:
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
    assert hasattr(mod, "__all__"), f"{name} is public but has no __all__; add one, or make it private (_name)"
    for attr in mod.__all__:
        assert hasattr(mod, attr), f"{name}.__all__ names {attr!r}, which does not exist"


def test_every_public_name_has_a_docstring():
    missing = [q for q, obj in _public_objects() if not _doc(obj).strip()]
    missing += [q for q, obj in _engine_members() if not _doc(obj).strip()]
    for cls_name in RESULT_CLASSES:
        cls = getattr(geotarget, cls_name, None) or getattr(importlib.import_module("geotarget.audience"), cls_name)
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
