"""Every third-party module geotarget imports is installed by its own declared dependencies.

A module that only the test or benchmark extras happen to bring in would
pass the suite and then fail for a user who ran ``pip install geotarget``.
"""

import ast
import re
import sys
from importlib.metadata import distribution, packages_distributions
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parents[1] / "geotarget"


def _name(requirement: str) -> str:
    return re.split(r"[\s\[<>=!~;(]", requirement, maxsplit=1)[0].lower().replace("_", "-")


def _closure(extras: tuple[str, ...]) -> set[str]:
    """Distributions installed by geotarget with these extras, transitively."""
    wanted = []
    for req in distribution("geotarget").requires or []:
        marker = re.search(r"extra\s*==\s*['\"]([^'\"]+)['\"]", req)
        if marker is None or marker.group(1) in extras:
            wanted.append(_name(req))
    seen: set[str] = set()
    while wanted:
        name = wanted.pop()
        if name in seen:
            continue
        seen.add(name)
        try:
            requires = distribution(name).requires or []
        except Exception:  # an optional dependency of a dependency that is not installed
            continue
        wanted += [_name(r) for r in requires if "extra ==" not in r]
    return seen


def _guarded(tree) -> set[int]:
    """Nodes inside ``try: ... except ImportError:`` (optional imports with a fallback)."""
    out = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Try) and any(
            isinstance(h.type, ast.Name) and h.type.id in ("ImportError", "ModuleNotFoundError")
            for h in node.handlers
        ):
            for part in node.body + [n for h in node.handlers for n in h.body]:
                out |= {id(n) for n in ast.walk(part)}
    return out


def _imports(path: Path) -> set[str]:
    found = set()
    tree = ast.parse(path.read_text(encoding="utf-8"))
    guarded = _guarded(tree)
    for node in ast.walk(tree):
        if id(node) in guarded:
            continue
        if isinstance(node, ast.Import):
            found |= {a.name.split(".")[0] for a in node.names}
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            found.add(node.module.split(".")[0])
    return found - set(sys.stdlib_module_names) - {"geotarget", "__future__"}


_EXTRA_PARTS = {"service": ("server",), "spark": ("spark",)}


def _part(path: Path) -> str:
    return next((p for p in _EXTRA_PARTS if p in path.relative_to(PACKAGE).parts[:-1]), "core")


@pytest.mark.parametrize("part", ["core", "service", "spark"])
def test_imports_are_declared(part):
    extras = _EXTRA_PARTS.get(part, ())
    files = [p for p in PACKAGE.rglob("*.py") if _part(p) == part]
    declared = _closure(extras)
    owners = packages_distributions()
    missing = {}
    for path in files:
        for module in _imports(path):
            dists = {d.lower().replace("_", "-") for d in owners.get(module, [module])}
            if not dists & declared:
                missing.setdefault(module, []).append(path.relative_to(PACKAGE.parent).as_posix())
    assert not missing, f"imported but not installed by geotarget{'[' + ','.join(extras) + ']' if extras else ''}: {missing}"
