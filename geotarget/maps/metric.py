"""What a heatmap measures (:class:`Metric`) and the k-anonymity floor it keeps.

Shared by the heatmaps, coverage maps and the HTTP service. ``share`` and
``index`` compare a segment (an audience) with all customers, cell by cell:
the segment's share of the customers in each area, and that share relative to
the segment's share overall (100 = as everywhere; 150 = the segment
over-indexes by half).
"""

from __future__ import annotations

import numbers
from dataclasses import dataclass

from geotarget.errors import InvalidInputError, PrivacyError

__all__ = ["DEFAULT_K_MIN", "RES_RANGE", "SHARE_KINDS", "Metric", "check_k_min", "parse_metric"]

#: Smallest number of customers a cell or region must hold to be shown.
DEFAULT_K_MIN = 10

#: The resolutions a heatmap may be drawn at: all of H3's.
RES_RANGE = (0, 15)

#: Metrics comparing a segment with all customers; they need an audience.
SHARE_KINDS = ("share", "index")


@dataclass(frozen=True)
class Metric:
    """What a heatmap measures: ``count``, ``sum``/``mean``/``median`` of a column, or ``penetration``.

    Examples
    --------
    >>> parse_metric("mean:price").label
    'mean price'
    >>> parse_metric("penetration:tracts:poptot")
    Metric(kind='penetration', column='poptot', layer='tracts')
    """

    kind: str
    column: str | None = None
    layer: str | None = None

    @property
    def label(self) -> str:
        """Short name, e.g. ``'customers'`` or ``'median spend_12m'``."""
        if self.kind == "count":
            return "customers"
        if self.kind == "penetration":
            return f"penetration ({self.column})"
        if self.kind == "share":
            return "segment share"
        if self.kind == "index":
            return "segment index"
        return f"{self.kind} {self.column}"

    @property
    def units(self) -> str:
        """What the value is measured in, for legends (empty when the label says it)."""
        if self.kind == "count":
            return "customers"
        if self.kind == "penetration":
            return "customers per person"
        if self.kind == "share":
            return "% of customers"
        if self.kind == "index":
            return "100 = overall share"
        return ""

    @property
    def title(self) -> str:
        """The metric in plain words, for a map title, e.g. ``'Median spend_12m'``."""
        words = {"count": "Customers", "penetration": f"Customers per person ({self.column})",
                 "share": "Segment share of customers", "index": "Where the segment over-indexes"}
        text = words.get(self.kind) or f"{self.kind.capitalize()} {self.column}"
        return text

    def __str__(self) -> str:
        return ":".join(p for p in (self.kind, self.layer, self.column) if p)


def parse_metric(spec: str | Metric) -> Metric:
    """Read ``count``, ``sum:COL``, ``mean:COL``, ``median:COL`` or ``penetration:LAYER:COL``.

    Examples
    --------
    >>> parse_metric("sum:spend_12m")
    Metric(kind='sum', column='spend_12m', layer=None)
    >>> parse_metric("avg:price")  # doctest: +ELLIPSIS
    Traceback (most recent call last):
    ...
    geotarget.errors.InvalidInputError: unknown metric 'avg:price'; use count, sum:COL, ...
    """
    if isinstance(spec, Metric):
        return spec
    text = str(spec).strip()
    kind, _, rest = text.partition(":")
    kind = kind.lower()
    hint = "use count, sum:COL, mean:COL, median:COL, penetration:LAYER:COL, share or index"
    if kind in ("count", *SHARE_KINDS) and not rest:
        return Metric(kind)
    if kind in ("sum", "mean", "median") and rest:
        return Metric(kind, rest)
    if kind == "penetration":
        layer, _, col = rest.partition(":")
        if layer and col:
            return Metric("penetration", col, layer)
    raise InvalidInputError(f"unknown metric {text!r}; {hint}")


def check_k_min(k_min: int | None, allow_no_floor: bool = False) -> int:
    """Validate the k-anonymity floor; below 2 it needs ``allow_no_floor=True``.

    Examples
    --------
    >>> check_k_min(10)
    10
    >>> check_k_min(0, allow_no_floor=True)
    1
    >>> check_k_min(0)  # doctest: +ELLIPSIS
    Traceback (most recent call last):
    ...
    geotarget.errors.PrivacyError: k_min=0 turns the k-anonymity floor off; pass allow_no_floor=True ...
    """
    if k_min is None:
        k_min = 0
    if isinstance(k_min, bool) or not isinstance(k_min, numbers.Integral) or k_min < 0:
        raise InvalidInputError(f"k_min must be a whole number >= 0, got {k_min!r}")
    if k_min < 2 and not allow_no_floor:
        raise PrivacyError(
            f"k_min={k_min} turns the k-anonymity floor off; pass allow_no_floor=True "
            "(CLI --no-privacy-floor) if you mean it, or use k_min >= 2"
        )
    return max(int(k_min), 1)
