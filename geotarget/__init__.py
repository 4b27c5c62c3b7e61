"""geotarget: exact hyperlocal audiences, heatmaps and promotions from an embedded DuckDB store."""

from __future__ import annotations

from importlib.metadata import PackageNotFoundError, version

from geotarget import maps
from geotarget.campaigns import Campaign
from geotarget.connect import open
from geotarget.engine import Engine
from geotarget.errors import (
    AudienceTooSmallError,
    ColumnNotFoundError,
    GeotargetError,
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
from geotarget.maps import Coverage, HeatmapResult, Metric, parse_metric
from geotarget.replica import Replica
from geotarget.store.ingest import GeotargetWarning, IngestReport
from geotarget.units import parse_distance, parse_radius

try:
    __version__ = version("geotarget")
except PackageNotFoundError:  # pragma: no cover - running from a source tree
    __version__ = "0.0.0"

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
