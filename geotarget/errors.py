"""Exceptions raised by geotarget.

Every error the library raises on purpose derives from :class:`GeotargetError`,
and most also derive from the builtin that fits, so callers may catch either::

    GeotargetError(Exception)
    ├── InvalidInputError(GeotargetError, ValueError)
    │   ├── InvalidLocationError        a latitude/longitude out of range
    │   ├── InvalidRadiusError          "2 miles" without a unit, negative, too big
    │   ├── SwappedCoordinatesError     most rows look like (lng, lat)
    │   ├── ColumnNotFoundError         detection or an option named a missing column
    │   ├── InvalidFilterError          a segment filter that cannot be applied
    │   └── ResourceLimitError          a query over its work budget (area, customers, time)
    ├── SourceError(GeotargetError, OSError)
    │   │                               a file that cannot be read or parsed
    │   └── DatabaseLockedError         another process holds the database file
    ├── NotFoundError(GeotargetError, KeyError)
    │                                   a store, region, layer or campaign id
    ├── SchemaVersionError(GeotargetError, RuntimeError)
    │                                   database written by a newer geotarget
    ├── PrivacyError(GeotargetError, PermissionError)
    │   └── AudienceTooSmallError       below the minimum audience size
    └── MissingDependencyError(GeotargetError, ImportError)
                                        an optional extra is not installed

Messages name the bad value and say what to do about it.
"""

from __future__ import annotations

__all__ = [
    "AudienceTooSmallError",
    "ColumnNotFoundError",
    "GeotargetError",
    "GeotargetWarning",
    "InvalidFilterError",
    "InvalidInputError",
    "InvalidLocationError",
    "InvalidRadiusError",
    "MissingDependencyError",
    "NotFoundError",
    "PrivacyError",
    "ResourceLimitError",
    "SchemaVersionError",
    "DatabaseLockedError",
    "SourceError",
    "SwappedCoordinatesError",
]


class GeotargetError(Exception):
    """Root of every error geotarget raises on purpose."""


class InvalidInputError(GeotargetError, ValueError):
    """A value given by the caller cannot be used."""


class InvalidLocationError(InvalidInputError):
    """A latitude or longitude is missing, not finite or out of range."""


class InvalidRadiusError(InvalidInputError):
    """A radius is malformed, not positive, or larger than allowed."""


class SwappedCoordinatesError(InvalidInputError):
    """Most rows are valid only with latitude and longitude swapped."""


class ColumnNotFoundError(InvalidInputError):
    """A column named by an option, or needed by detection, is missing."""


class InvalidFilterError(InvalidInputError):
    """A segment filter names an unknown column or operator."""


class ResourceLimitError(InvalidInputError):
    """A query would examine more customers, cover more area or run longer than its budget allows."""


class SourceError(GeotargetError, OSError):
    """A source file cannot be read or parsed."""


class DatabaseLockedError(SourceError):
    """Another process holds the database file (DuckDB lets one writer or many readers in)."""


class NotFoundError(GeotargetError, KeyError):
    """A store, region, layer or campaign does not exist."""

    def __str__(self) -> str:  # KeyError quotes its message; keep it readable
        return str(self.args[0]) if self.args else ""


class SchemaVersionError(GeotargetError, RuntimeError):
    """The database was written by a newer, incompatible geotarget."""


class PrivacyError(GeotargetError, PermissionError):
    """An operation would break a privacy rule."""


class AudienceTooSmallError(PrivacyError):
    """An export is smaller than the minimum audience size."""


class MissingDependencyError(GeotargetError, ImportError):
    """An optional dependency is needed for this feature."""


class GeotargetWarning(UserWarning):
    """Something was repaired or skipped; the data still loaded."""
