"""Words and numbers on maps, for people: titles, legend captions, distances in the user's units.

A marketer reads "Customers per hexagon (about 1 km across)" and "within 2 mi",
not "customers per H3 cell (res 8); k ≥ 10" or "3,219 m". Counts print as
whole numbers ("10", never "10.0").
"""

from __future__ import annotations

import math
import re

from geotarget.units import UNITS_M

__all__ = [
    "area_word",
    "caption",
    "distance_text",
    "hidden_text",
    "number_text",
    "unit_of",
]

_UNIT_NAMES = {1.0: "m", 1000.0: "km", 1609.344: "mi", 0.3048: "ft", 0.9144: "yd"}


def unit_of(text) -> str | None:
    """The unit a user wrote in a distance such as ``"2mi"`` or ``"3 km"`` (None for a bare number).

    Examples
    --------
    >>> unit_of("2mi"), unit_of("3.5 kilometres"), unit_of(3218.688)
    ('mi', 'km', None)
    """
    if not isinstance(text, str):
        return None
    m = re.search(r"([A-Za-z]+)\s*$", text)
    factor = UNITS_M.get(m.group(1).lower()) if m else None
    return _UNIT_NAMES.get(factor) if factor else None


def number_text(value, *, digits: int = 3) -> str:
    """A number for people: whole numbers without decimals, others to ``digits`` significant digits.

    Examples
    --------
    >>> number_text(10.0), number_text(12345), number_text(0.12345), number_text(1234.5678)
    ('10', '12,345', '0.123', '1,235')
    """
    v = float(value)
    if not math.isfinite(v):
        return "–"
    if v == round(v) and abs(v) < 1e15:
        return f"{int(round(v)):,}"
    if abs(v) >= 10 ** (digits - 1):
        return f"{v:,.0f}"
    decimals = max(0, digits - 1 - int(math.floor(math.log10(abs(v)))))
    return f"{v:,.{decimals}f}".rstrip("0").rstrip(".")


def distance_text(metres: float, unit: str | None = None) -> str:
    """A distance in ``unit`` (``mi``, ``km``, ``m``, ``ft``, ``yd``), or in m / km when none is given.

    Examples
    --------
    >>> distance_text(3218.688, "mi"), distance_text(3218.688), distance_text(500.0), distance_text(1500, "km")
    ('2 mi', '3.22 km', '500 m', '1.5 km')
    """
    if unit is None:
        unit = "km" if metres >= 1000 else "m"
    factor = next((f for f, name in _UNIT_NAMES.items() if name == unit), 1.0)
    return f"{number_text(metres / factor)} {unit}"


def area_word(result) -> str:
    """What one row of a result is, e.g. ``'hexagon (about 1 km across)'`` or ``'area of hoods'``."""
    if result.level == "region":
        return f"area of {result.layer}"
    import h3  # here, not at the top: the CLI's help imports this module for unit_of

    across_m = 2 * h3.average_hexagon_edge_length(int(result.res), unit="m")
    return f"hexagon (about {distance_text(float(f'{across_m:.1g}'))} across)"


def caption(result) -> str:
    """A legend caption in plain words with the unit of the value.

    Examples
    --------
    >>> from types import SimpleNamespace
    >>> from geotarget.maps.metric import parse_metric
    >>> caption(SimpleNamespace(level="cell", res=8, metric=parse_metric("count")))
    'Customers per hexagon (about 1 km across)'
    >>> caption(SimpleNamespace(level="region", layer="hoods", metric=parse_metric("share")))
    'Segment share of customers per area of hoods, % of customers'
    """
    units = result.metric.units
    text = f"{result.metric.title} per {area_word(result)}"
    return text if not units or units.lower() in text.lower() else f"{text}, {units}"


def hidden_text(k_min: int, what: str = "customers") -> str:
    """The label of areas the k floor hides, e.g. ``'fewer than 10 customers (hidden)'``."""
    return f"fewer than {int(k_min)} {what} (hidden)"
