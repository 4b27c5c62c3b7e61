"""geotarget: exact hyperlocal audiences, heatmaps and promotions from an embedded DuckDB store."""

from __future__ import annotations

from importlib.metadata import PackageNotFoundError, version

from . import maps
from .campaigns import Campaign
from .coverage import Coverage
from .engine import Engine, open
from .errors import (
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
from .heatmap import HeatmapResult, Metric, parse_metric
from .ingest import GeotargetWarning, IngestReport
from .replica import Replica
from .units import parse_distance, parse_radius

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
