"""Heavy libraries bound to a module name but imported on first use.

``pd = lazy_module("pandas")`` at the top of a module keeps the familiar
``pd.DataFrame`` spelling everywhere in it (code, annotations, doctests),
while ``import`` of the module itself stays cheap: pandas is imported the
first time an attribute of ``pd`` is read. A one-shot command that never
touches a DataFrame (``geotarget audience ... -o x.csv``) then never pays
for pandas.
"""

from __future__ import annotations

import importlib

__all__ = ["lazy_module"]


class _LazyModule:
    """Stands in for a module until an attribute is read; then every read goes to the real module."""

    __slots__ = ("_name",)

    def __init__(self, name: str):
        object.__setattr__(self, "_name", name)

    def __getattr__(self, attr: str):
        # import_module is a dict lookup once the module is in sys.modules
        return getattr(importlib.import_module(self._name), attr)

    def __setattr__(self, attr: str, value) -> None:
        raise AttributeError(f"cannot set {attr!r} on the lazily imported module {self._name!r}")

    def __repr__(self) -> str:
        return f"<module {self._name!r}, imported on first use>"


def lazy_module(name: str):
    """A stand-in for module ``name`` that imports it on first attribute access.

    Examples
    --------
    >>> json = lazy_module("json")
    >>> json.dumps([1, 2])
    '[1, 2]'
    """
    return _LazyModule(name)
