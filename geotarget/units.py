"""Distances with units.

Users type ``"2mi"``, ``"3.5 km"`` or ``"500m"``; inside geotarget every
distance is a float number of metres.
"""

from __future__ import annotations

import math
import re

from geotarget.errors import InvalidRadiusError

__all__ = [
    "EARTH_RADIUS_M",
    "MAX_RADIUS_M",
    "UNITS_M",
    "parse_distance",
    "parse_radius",
]

#: Mean Earth radius (IUGG), used by the spherical haversine prefilter.
EARTH_RADIUS_M = 6_371_008.8

#: Radii above this are refused unless the caller passes ``allow_large=True``.
MAX_RADIUS_M = 100_000.0

#: Metres per unit, keyed by every spelling accepted.
UNITS_M: dict[str, float] = {
    "m": 1.0,
    "meter": 1.0,
    "meters": 1.0,
    "metre": 1.0,
    "metres": 1.0,
    "km": 1000.0,
    "kilometer": 1000.0,
    "kilometers": 1000.0,
    "kilometre": 1000.0,
    "kilometres": 1000.0,
    "mi": 1609.344,
    "mile": 1609.344,
    "miles": 1609.344,
    "ft": 0.3048,
    "feet": 0.3048,
    "foot": 0.3048,
    "yd": 0.9144,
    "yard": 0.9144,
    "yards": 0.9144,
}

_DISTANCE_RE = re.compile(r"^\s*([-+]?(?:\d+\.?\d*|\.\d+)(?:[eE][-+]?\d+)?)\s*([A-Za-z]+)\s*$")


def parse_distance(value: str | float | int) -> float:
    """Return a distance in metres.

    Parameters
    ----------
    value : str or float
        A string with a unit (``"2mi"``, ``"3.5 km"``, ``"500m"``, ``"800ft"``)
        or a number, taken as metres.

    Returns
    -------
    float
        The distance in metres (not checked for sign; see :func:`parse_radius`).

    Examples
    --------
    >>> parse_distance("2mi")
    3218.688
    >>> parse_distance("3.5 km")
    3500.0
    """
    if isinstance(value, bool):
        raise InvalidRadiusError(f"distance must be a number of metres or a string like '2mi', got {value!r}")
    if isinstance(value, (int, float)):
        return float(value)
    if not isinstance(value, str):
        raise InvalidRadiusError(
            f"distance must be a number of metres or a string like '2mi', got {type(value).__name__}"
        )
    match = _DISTANCE_RE.match(value)
    if match is None:
        raise InvalidRadiusError(
            f"cannot read distance {value!r}: give a number and a unit, e.g. '2mi', '3.5km' or '500m'"
        )
    number, unit = match.groups()
    factor = UNITS_M.get(unit.lower())
    if factor is None:
        known = ", ".join(sorted({"m", "km", "mi", "ft", "yd"}))
        raise InvalidRadiusError(f"unknown distance unit {unit!r} in {value!r}; use one of {known}")
    return float(number) * factor


def parse_radius(
    radius: str | float | int | None = None,
    *,
    radius_m: float | None = None,
    allow_large: bool = False,
) -> float:
    """Return a validated search radius in metres.

    Exactly one of ``radius`` (a string with a unit) or ``radius_m`` (metres)
    must be given. A bare number passed as ``radius`` is refused because its
    unit is ambiguous.

    Parameters
    ----------
    radius : str, optional
        A distance with a unit, such as ``"2mi"``.
    radius_m : float, optional
        The radius in metres.
    allow_large : bool, default False
        Accept radii above :data:`MAX_RADIUS_M` (100 km).

    Returns
    -------
    float
        The radius in metres, finite and positive.

    Examples
    --------
    >>> parse_radius("2mi")
    3218.688
    >>> parse_radius(radius_m=500)
    500.0
    """
    if (radius is None) == (radius_m is None):
        raise InvalidRadiusError("give exactly one of radius (e.g. '2mi') or radius_m (metres)")
    if radius is not None:
        if isinstance(radius, (int, float)) and not isinstance(radius, bool):
            raise InvalidRadiusError(
                f"radius {radius!r} has no unit; write e.g. '{radius}m' or '{radius}mi', or pass radius_m="
            )
        metres = parse_distance(radius)
        shown = repr(radius)
    else:
        try:
            metres = float(radius_m)  # type: ignore[arg-type]
        except (TypeError, ValueError):
            raise InvalidRadiusError(f"radius_m must be a number of metres, got {radius_m!r}") from None
        shown = f"{radius_m!r} m"
    if not math.isfinite(metres):
        raise InvalidRadiusError(f"radius must be a finite number, got {shown}")
    if metres <= 0:
        raise InvalidRadiusError(f"radius must be positive, got {shown}")
    if metres > MAX_RADIUS_M and not allow_large:
        raise InvalidRadiusError(
            f"radius {shown} is over {MAX_RADIUS_M / 1000:g} km; pass allow_large=True "
            "(CLI: --allow-large-radius) if you really mean it"
        )
    return metres
