"""geotarget: exact hyperlocal audiences, heatmaps and promotions from an embedded DuckDB store.

The public names are loaded on first use (PEP 562), so ``import geotarget``
and the ``geotarget`` command start at once: pandas, DuckDB, pyproj, shapely,
folium and matplotlib are imported only by the parts that need them.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING

from geotarget.errors import (
    AudienceTooSmallError,
    ColumnNotFoundError,
    GeotargetError,
    GeotargetWarning,
    InvalidFilterError,
    InvalidInputError,
    InvalidLocationError,
    InvalidRadiusError,
    MissingDependencyError,
    NotFoundError,
    PrivacyError,
    SchemaVersionError,
    SourceError,
    SwappedCoordinatesError,
)
from geotarget.units import parse_distance, parse_radius

if TYPE_CHECKING:  # pragma: no cover - for type checkers and IDEs only
    from geotarget import maps  # noqa: F401
    from geotarget.campaigns import Campaign
    from geotarget.connect import open
    from geotarget.engine import Engine
    from geotarget.maps import Coverage, HeatmapResult, Metric, parse_metric
    from geotarget.replica import Replica
    from geotarget.store.ingest import IngestReport

# public name -> (module, attribute); loaded by __getattr__ on first access
_LAZY = {
    "Campaign": ("geotarget.campaigns.campaign", "Campaign"),
    "Coverage": ("geotarget.maps.coverage", "Coverage"),
    "Engine": ("geotarget.engine", "Engine"),
    "HeatmapResult": ("geotarget.maps.result", "HeatmapResult"),
    "IngestReport": ("geotarget.store.ingest", "IngestReport"),
    "Metric": ("geotarget.maps.metric", "Metric"),
    "Replica": ("geotarget.replica", "Replica"),
    "maps": ("geotarget.maps", None),
    "open": ("geotarget.connect", "open"),
    "parse_metric": ("geotarget.maps.metric", "parse_metric"),
}


def __getattr__(name: str):
    if name == "__version__":
        from importlib.metadata import PackageNotFoundError, version

        try:
            value = version("geotarget")
        except PackageNotFoundError:  # pragma: no cover - running from a source tree
            value = "0.0.0"
    elif name in _LAZY:
        module, attribute = _LAZY[name]
        value = importlib.import_module(module)
        if attribute is not None:
            value = getattr(value, attribute)
    else:
        raise AttributeError(f"module 'geotarget' has no attribute {name!r}")
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(__all__))


__all__ = [
    "AudienceTooSmallError",
    "Campaign",
    "ColumnNotFoundError",
    "Coverage",
    "Engine",
    "GeotargetError",
    "GeotargetWarning",
    "HeatmapResult",
    "IngestReport",
    "InvalidFilterError",
    "InvalidInputError",
    "InvalidLocationError",
    "InvalidRadiusError",
    "Metric",
    "MissingDependencyError",
    "NotFoundError",
    "PrivacyError",
    "Replica",
    "SchemaVersionError",
    "SourceError",
    "SwappedCoordinatesError",
    "__version__",
    "open",
    "parse_distance",
    "parse_metric",
    "parse_radius",
]
