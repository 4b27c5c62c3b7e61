"""Campaign CRUD, pause and resume, each a direct call to the engine."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends, Path, Query, Request, Response

from . import _deps
from ._routes_audiences import disclosed
from ._scopes import Principal, require_scope
from ._schemas import AudienceResult, Campaign, CampaignAudienceOptions, CampaignCreate, CampaignList, CampaignUpdate

router = APIRouter(tags=["campaigns"])
#: Campaigns are created, changed and deleted by admin keys only: a campaign's segment filter reads customer
#: attributes, and promotions for one customer would otherwise answer questions about them.
admin_only = [require_scope("admin")]

CampaignRef = Annotated[str, Path(min_length=1, max_length=200, description="Campaign name or id.")]


@router.get("/campaigns", response_model=CampaignList, summary="List campaigns",
            dependencies=admin_only)
def list_campaigns(
    status: Annotated[str | None, Query(max_length=40, description="Only campaigns with this status.")] = None,
    limit: Annotated[int, Query(ge=1, le=1000)] = 100,
    offset: Annotated[int, Query(ge=0, le=10_000_000)] = 0,
    eng=Depends(_deps.engine),
) -> CampaignList:
    """One page of campaigns, in the library's order."""
    found = eng.campaigns(status=status)
    page = found[offset: offset + limit]
    return CampaignList(count=len(found), limit=limit, offset=offset, campaigns=[c.to_dict() for c in page])


@router.post("/campaigns", response_model=Campaign, status_code=201, summary="Create a campaign",
             dependencies=admin_only)
def create_campaign(body: CampaignCreate, eng=Depends(_deps.engine)) -> Campaign:
    """Create a campaign: a name, one geofence, and optional segment, window, holdout and metadata."""
    fields = body.model_dump(exclude_unset=True)
    name = fields.pop("name")
    return eng.create_campaign(name, **fields).to_dict()


@router.get("/campaigns/{campaign}", response_model=Campaign, summary="Show a campaign",
            dependencies=admin_only)
def get_campaign(campaign: CampaignRef, eng=Depends(_deps.engine)) -> Campaign:
    """A campaign by name or id (404 when there is none)."""
    return eng.campaign(campaign).to_dict()


@router.patch("/campaigns/{campaign}", response_model=Campaign, summary="Change a campaign",
              dependencies=admin_only)
def update_campaign(campaign: CampaignRef, body: CampaignUpdate, eng=Depends(_deps.engine)) -> Campaign:
    """Change the fields given; a field sent as null is cleared."""
    changes = body.model_dump(exclude_unset=True)
    if not changes:
        return eng.campaign(campaign).to_dict()
    return eng.update_campaign(campaign, **changes).to_dict()


@router.post("/campaigns/{campaign}/pause", response_model=Campaign, summary="Pause a campaign",
             dependencies=admin_only)
def pause_campaign(campaign: CampaignRef, eng=Depends(_deps.engine)) -> Campaign:
    """Stop a campaign from matching in promotion lookups until it is resumed."""
    return eng.pause_campaign(campaign).to_dict()


@router.post("/campaigns/{campaign}/resume", response_model=Campaign, summary="Resume a campaign",
             dependencies=admin_only)
def resume_campaign(campaign: CampaignRef, eng=Depends(_deps.engine)) -> Campaign:
    """Let a paused campaign match again."""
    return eng.resume_campaign(campaign).to_dict()


@router.delete("/campaigns/{campaign}", status_code=204, response_class=Response, summary="Delete a campaign",
               dependencies=admin_only)
def delete_campaign(campaign: CampaignRef, eng=Depends(_deps.engine)) -> Response:
    """Delete a campaign for good."""
    eng.delete_campaign(campaign)
    return Response(status_code=204)


@router.post("/campaigns/{campaign}/audience", response_model=AudienceResult, summary="A campaign's audience")
def campaign_audience(campaign: CampaignRef, request: Request, body: CampaignAudienceOptions | None = None,
                      eng=Depends(_deps.engine),
                      who: Principal = require_scope("analyst", "audiences", "admin")) -> AudienceResult:
    """The campaign's current audience, with every consent, suppression, minimum-size and holdout rule.

    ``columns`` adds customer columns to the file; ``exclude_within`` and
    ``exclude_regions`` leave out customers near given points or inside
    given regions, as for any audience.
    """
    body = body or CampaignAudienceOptions()
    with request.app.state.settings.budget():
        return disclosed(eng, body, request, who, lambda call, **kwargs: call(of_campaign=campaign, **kwargs))

