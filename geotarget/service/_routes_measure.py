"""The lift readout of a launched campaign over HTTP.

Access: keys with the ``analyst`` scope (403 for any other key).

Only aggregates leave the server: each group, and each breakdown cell, needs
at least ``k_min`` customers (never fewer than 10 here), or there is no
readout for it (403 for the whole campaign; a suppressed cell in a
breakdown carries no figures).
"""

from __future__ import annotations

from typing import Annotated, Literal

from fastapi import APIRouter, Depends, Path, Query
from pydantic import BaseModel, Field

from . import _deps
from ._scopes import require_scope

router = APIRouter(tags=["measurement"], dependencies=[require_scope("analyst")])

#: The scope a key needs for this route.
REQUIRED_SCOPE = "analyst"


class LiftReadout(BaseModel):
    """A campaign's lift readout, intent-to-treat; ``*_adj`` are CUPED-adjusted (null without a pre-period)."""

    treatment_n: int
    control_n: int
    treatment_rate: float | None
    control_rate: float | None
    abs_lift: float | None
    rel_lift: float | None
    ci_low: float | None
    ci_high: float | None
    p_value: float | None
    treatment_rate_adj: float | None
    control_rate_adj: float | None
    abs_lift_adj: float | None
    rel_lift_adj: float | None
    ci_low_adj: float | None
    ci_high_adj: float | None
    p_value_adj: float | None
    details: dict = Field(description="Window, test, CUPED theta and variance reduction, and the breakdown.")


@router.get("/campaigns/{campaign}/lift", response_model=LiftReadout, summary="A campaign's lift readout")
def campaign_lift(
    campaign: Annotated[str, Path(min_length=1, max_length=200, description="Campaign name or id.")],
    metric: Annotated[Literal["conversion", "revenue"], Query(description="conversion or revenue.")] = "conversion",
    by: Annotated[str | None, Query(min_length=1, max_length=100,
                                    description="Breakdown: store, h3_RES, a layer or a customer column.")] = None,
    start: Annotated[str | None, Query(max_length=64, description="Window start, ISO 8601 with an offset.")] = None,
    end: Annotated[str | None, Query(max_length=64, description="Window end (exclusive), ISO 8601, offset.")] = None,
    kind: Annotated[str | None, Query(max_length=100, description="Only outcomes of this kind.")] = None,
    k_min: Annotated[int, Query(ge=10, le=1_000_000, description="Smallest group or cell with a readout.")] = 10,
    eng=Depends(_deps.engine),
    limits=Depends(_deps.settings),
) -> LiftReadout:
    """Treatment against the frozen holdout: rates, lift, 95% interval, p-value, CUPED, and a breakdown.

    Needs the ``analyst`` scope (see the module notes). 404 when the campaign
    does not exist or was never launched; 403 when a group is under ``k_min``.
    """
    with limits.budget():
        return eng.lift(campaign, metric=metric, by=by, start=start, end=end, kind=kind, k_min=k_min).to_dict()
