"""Work budgets: how much one query may cost before it is refused.

A service answering many users at once cannot let one request scan a
continent: ``1,000 points x 100 km`` would hold a core for minutes. A budget
bounds a query in these ways, each checked as early as it can be:

- ``max_area_km2``: the area of the geography asked for (the disks of a radius
  query summed, before any covering is computed);
- ``max_candidates``: the customers the covering yields before the exact test
  (radius, polygon, ring), counted from the index before any of them is refined;
- ``max_scanned``: for aggregates (heatmaps, trade areas, the Huff model),
  customers read times the passes made over them (one per resolution or
  region layer indexed), counted before each pass;
- ``max_cells``: the cells or regions one aggregate computes before its
  k-anonymity floor (a fine resolution over a large area, or a layer of many
  regions), counted before any geometry is drawn or apportioned;
- ``timeout_s``: wall-clock time, checked between centres, polygons, passes
  and steps.

A query over budget raises :class:`~geotarget.errors.ResourceLimitError`
naming the limit. Budgets are set for a block of code with
:func:`work_budget`; outside one, queries are unbounded (the library and the
command line trust their caller).

Examples
--------
>>> with work_budget(max_area_km2=10.0):
...     charge_area(3, 1000.0)   # three 1 km disks: about 9.4 km2
>>> with work_budget(max_area_km2=10.0):
...     charge_area(4, 1000.0)
Traceback (most recent call last):
...
geotarget.errors.ResourceLimitError: the query covers about 12.6 km2 (4 centre(s) x 1,000 m), over this server's limit of 10 km2; use fewer points or a smaller radius
"""

from __future__ import annotations

import contextlib
import contextvars
import math
import time
from dataclasses import dataclass

from geotarget.errors import ResourceLimitError

__all__ = ["WorkBudget", "charge_area", "charge_candidates", "charge_cells", "charge_scan", "check_time",
           "work_budget"]


@dataclass
class WorkBudget:
    """Limits of one query (None: unbounded) and what it has used so far."""

    max_candidates: int | None = None
    max_area_km2: float | None = None
    timeout_s: float | None = None
    started: float = 0.0
    candidates: int = 0
    max_scanned: int | None = None
    max_cells: int | None = None
    scanned: int = 0


_CURRENT: contextvars.ContextVar[WorkBudget | None] = contextvars.ContextVar("geotarget_work_budget", default=None)


@contextlib.contextmanager
def work_budget(*, max_candidates: int | None = None, max_area_km2: float | None = None,
                timeout_s: float | None = None, max_scanned: int | None = None, max_cells: int | None = None):
    """Bound every query run inside the block (in this thread or task).

    Examples
    --------
    >>> with work_budget(max_candidates=1_000, timeout_s=5.0) as budget:
    ...     charge_candidates(400)
    >>> budget.candidates
    400
    """
    budget = WorkBudget(max_candidates, max_area_km2, timeout_s, started=time.monotonic(),
                        max_scanned=max_scanned, max_cells=max_cells)
    token = _CURRENT.set(budget)
    try:
        yield budget
    finally:
        _CURRENT.reset(token)


def active() -> WorkBudget | None:
    """The budget in force, if any."""
    return _CURRENT.get()


def charge_area(n_centers: int, radius_m: float) -> None:
    """Refuse a radius query whose disks add up to more than the budget's area."""
    budget = _CURRENT.get()
    if budget is None or budget.max_area_km2 is None:
        return
    area = n_centers * math.pi * (radius_m / 1000.0) ** 2
    if area > budget.max_area_km2:
        raise ResourceLimitError(
            f"the query covers about {area:,.1f} km2 ({n_centers:,} centre(s) x {radius_m:,.0f} m), over this "
            f"server's limit of {budget.max_area_km2:,.0f} km2; use fewer points or a smaller radius")


def charge_candidates(n: int) -> None:
    """Count ``n`` more candidate customers; refuse once the budget's total is passed."""
    budget = _CURRENT.get()
    if budget is None:
        return
    budget.candidates += int(n)
    if budget.max_candidates is not None and budget.candidates > budget.max_candidates:
        raise ResourceLimitError(
            f"the query would examine over {budget.max_candidates:,} customers, this server's limit; "
            "narrow the geography (fewer stores or points, a smaller radius or region)")
    check_time()


def check_time() -> None:
    """Refuse to go on once the budget's time is spent."""
    budget = _CURRENT.get()
    if budget is None or budget.timeout_s is None:
        return
    spent = time.monotonic() - budget.started
    if spent > budget.timeout_s:
        raise ResourceLimitError(
            f"the query ran for {spent:.1f} s, over this server's limit of {budget.timeout_s:g} s (request_timeout_s); "
            "narrow the geography or the filters, or ask for a coarser res")


def charge_scan(customers: int, passes: int = 1, *, what: str = "the aggregate",
                hint: str = "ask for a coarser res or fewer customers") -> None:
    """Count a pass (or ``passes``) over ``customers`` customers; refuse once the budget's total is passed.

    Examples
    --------
    >>> with work_budget(max_scanned=1_000_000):
    ...     charge_scan(400_000, 3, what="the heatmap at res 11")
    Traceback (most recent call last):
    ...
    geotarget.errors.ResourceLimitError: the heatmap at res 11 would read 1,200,000 customer rows (400,000 customers x 3 pass(es)), over this server's limit of 1,000,000 (max_scanned); ask for a coarser res or fewer customers
    """
    budget = _CURRENT.get()
    if budget is None:
        return
    check_time()
    work = int(customers) * int(passes)
    if budget.max_scanned is not None and budget.scanned + work > budget.max_scanned:
        raise ResourceLimitError(
            f"{what} would read {budget.scanned + work:,} customer rows ({int(customers):,} customers x "
            f"{int(passes)} pass(es)), over this server's limit of {budget.max_scanned:,} (max_scanned); {hint}")
    budget.scanned += work


def charge_cells(n: int, *, what: str, field: str, hint: str) -> None:
    """Refuse an aggregate that computes more than the budget's cells (or regions).

    ``what`` says what they are (``"the heatmap at res 11"``), ``field`` names
    the request's field that chose them and ``hint`` what to ask instead.

    Examples
    --------
    >>> with work_budget(max_cells=1_000):
    ...     charge_cells(5_000, what="the heatmap at res 11", field="res", hint="ask for a coarser res")
    Traceback (most recent call last):
    ...
    geotarget.errors.ResourceLimitError: res: the heatmap at res 11 has 5,000 cells or regions before its floor, over this server's limit of 1,000 (max_cells); ask for a coarser res
    """
    budget = _CURRENT.get()
    if budget is None:
        return
    check_time()
    if budget.max_cells is not None and int(n) > budget.max_cells:
        raise ResourceLimitError(
            f"{field}: {what} has {int(n):,} cells or regions before its floor, over this server's limit of "
            f"{budget.max_cells:,} (max_cells); {hint}")
