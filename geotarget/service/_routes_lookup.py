"""Reverse lookups and aggregates: stores near a point, promotions at a point, heatmaps, health.

Routes are plain ``def`` functions: FastAPI runs them in its thread pool, so
DuckDB work never blocks the event loop, and the engine hands each thread a
cursor of its own.
"""

from __future__ import annotations

import json
from typing import Annotated

from fastapi import APIRouter, Depends, Query, Response

from geotarget import __version__
from geotarget.errors import InvalidInputError

from . import _deps
from ._scopes import Principal, require_scope
from ._schemas import Health, HeatmapQuery, NearQuery, Promotions, PromotionsQuery, StoresNear

health = APIRouter(tags=["health"])
router = APIRouter(tags=["lookup"])

_FEATURE_COLLECTION = {
    "type": "object",
    "required": ["type", "features", "metadata"],
    "properties": {
        "type": {"const": "FeatureCollection"},
        "features": {"type": "array", "items": {"type": "object"}},
        "metadata": {"type": "object", "description": "Resolution or layer, the floor, and what it left out."},
    },
}


def _json(content: dict) -> Response:
    """The library's JSON-able answer as is: the hot lookups skip re-validating their own output."""
    return Response(json.dumps(content, separators=(",", ":")), media_type="application/json")


@health.get("/health", response_model=Health, summary="Liveness (no API key needed)")
async def get_health() -> Health:
    """Say the service is up; reveals nothing about the data (async: it touches no database)."""
    return Health(status="ok", version=__version__)


@router.get("/stores/near", response_model=StoresNear, summary="Stores within a radius of a point",
            dependencies=[require_scope("lookup")])
def stores_near(q: Annotated[NearQuery, Query()], eng=Depends(_deps.engine)) -> Response:
    """The stores within ``radius`` of (lat, lng), nearest first, by exact WGS84 geodesic distance."""
    stores = eng.stores_near(q.lat, q.lng, radius=q.radius, limit=q.limit)
    return _json({"count": len(stores), "stores": stores})


@router.get("/promotions", response_model=Promotions, summary="Promotions active at a point",
            dependencies=[require_scope("lookup")])
def promotions(q: Annotated[PromotionsQuery, Query()], eng=Depends(_deps.engine)) -> Response:
    """Active campaigns whose geofence holds (lat, lng) at ``at`` (now by default).

    With ``customer_id``, only those whose segment the customer matches and
    whose holdout does not hold them back; an opted-out id gets the answer of
    an unknown one. Needs the ``lookup`` scope.
    """
    found = eng.promotions_at(q.lat, q.lng, at=q.at, customer_id=q.customer_id)
    return _json({"count": len(found), "promotions": [c.to_dict() for c in found]})


@router.get("/heatmap", summary="A heatmap as GeoJSON, above the k-anonymity floor",
            response_class=Response,
            responses={200: {"content": {"application/geo+json": {"schema": _FEATURE_COLLECTION}},
                             "description": "Hexagons (or regions) with customers and value."}})
def heatmap(q: Annotated[HeatmapQuery, Query()], eng=Depends(_deps.engine), limits=Depends(_deps.settings),
            files=Depends(_deps.downloads), who: Principal = require_scope("analyst")) -> Response:
    """Customers aggregated per H3 cell (res 0-15) or per region of a layer, as a GeoJSON FeatureCollection.

    Cells or regions with fewer than ``k_min`` customers are left out; the
    floor cannot be lowered below the server's, nor switched off, over HTTP.
    Every heatmap keeps the database policy's consistent suppression (one for
    all resolutions and layers), and only the policy's resolutions are served;
    ``privacy=dp`` with ``epsilon`` gives noisy counts paid from the key's
    budget. Needs the ``analyst`` scope. A heatmap over the server's work
    budget (customers read, cells or regions computed, time) gets 413 naming
    ``res`` or ``region_layer``.
    """
    k_min = limits.k_min if q.k_min is None else q.k_min
    if k_min < limits.k_min:
        raise InvalidInputError(f"k_min must be at least {limits.k_min} on this server, got {k_min}")
    guard = eng.disclosure(key_id=who.budget_id, admin=who.has("admin"))
    with limits.budget():  # customers read, cells computed and time: 413 beyond (ServiceSettings)
        result = guard.heatmap(q.res, q.metric, region_layer=q.region_layer, k_min=max(k_min, guard.policy.k_min),
                               privacy=q.privacy, epsilon=q.epsilon)
    if len(result.frame) > limits.max_heatmap_features:
        raise InvalidInputError(
            f"the heatmap has {len(result.frame):,} {result.level}s, over this server's limit of "
            f"{limits.max_heatmap_features:,}; ask for a coarser res or a higher k_min")
    _, path = files.reserve(".geojson")
    try:
        collection = json.loads(result.to_geojson(path).read_text())
    finally:
        files.discard(path)
    collection["metadata"] = {
        "level": result.level, "res": result.res, "layer": result.layer, "metric": str(result.metric),
        "k_min": result.k_min, "total_customers": result.total_customers,
        "suppressed": result.suppressed_cells if result.level == "cell" else result.suppressed_regions,
        "suppressed_customers": result.suppressed_customers,
    }
    return Response(json.dumps(collection, separators=(",", ":")), media_type="application/geo+json")
