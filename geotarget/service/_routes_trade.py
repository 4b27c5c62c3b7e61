"""Trade areas, the Huff model and site ranking over HTTP (thin layers over :mod:`geotarget.trade`).

These routes are for analysts: once API keys carry scopes, they need the
``analyst`` scope. Until then they take the same API key as every other
route under ``/v1``.

Only aggregates leave: trade areas are merged polygons with their totals
(an area with fewer customers than the server's k-anonymity floor is left
out, and the answer says how many were); Huff answers give expected
customers and spend per store and brand, and, when asked, each cell's most
likely store for cells holding at least the floor's number of customers.

Each request runs within the server's work budget (customers read, cells
computed, time: :class:`~geotarget.service.ServiceSettings`); over it, 413.
"""

from __future__ import annotations

import json
from typing import Annotated, Literal

import numpy as np
from fastapi import APIRouter, Depends, Response
from pydantic import BaseModel, ConfigDict, Field

from ..errors import InvalidInputError
from ..units import parse_distance
from . import _deps
from ._schemas import Lat, Lng, Name, Radius
from ._scopes import require_scope

router = APIRouter(tags=["trade areas"], dependencies=[require_scope("analyst")])

_MAX_SITES = 500
Share = Annotated[float, Field(gt=0, le=1, description="Share of the store's customers, e.g. 0.7.")]
Res = Annotated[int, Field(ge=5, le=11, description="H3 resolution of the cells.")]
Exponent = Annotated[float, Field(ge=-10, le=10, allow_inf_nan=False)]


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


class TradeAreaRequest(_Strict):
    """Customer-derived trade areas of some stores (every store when ``stores`` is omitted)."""

    stores: list[Name] | None = Field(None, max_length=5000)
    share: list[Share] = Field([0.7], min_length=1, max_length=10)
    res: Res = 8
    home_store_col: Name | None = None
    brand_col: Name | None = None
    brand: Name | None = None
    region_layer: Name | None = None
    population_col: Name | None = None
    smooth: bool = False


class HuffRequest(_Strict):
    """The Huff model of the stores over demand cells."""

    res: Res = 8
    brand_col: Name | None = None
    attract_col: Name | None = None
    alpha: Exponent = 1.0
    beta: Exponent = 2.0
    spend_col: Name | None = None
    demand: Literal["customers", "population"] = "customers"
    region_layer: Name | None = None
    population_col: Name | None = None
    cells: bool = Field(False, description="Also return each cell's most likely store (cells above the floor).")


class Site(_Strict):
    """A candidate site."""

    site_id: Name | None = None
    lat: Lat
    lng: Lng
    attractiveness: float | None = Field(None, gt=0, allow_inf_nan=False)


class SitesRequest(_Strict):
    """Candidate sites to rank by net gain, and optionally k to pick by maximal covering."""

    candidates: list[Site] = Field(min_length=1, max_length=_MAX_SITES)
    pick: int | None = Field(None, ge=1, le=_MAX_SITES)
    radius: Radius = "2mi"
    res: Res = 8
    brand_col: Name | None = None
    brand: Name | None = None
    attract_col: Name | None = None
    attractiveness: float | None = Field(None, gt=0, allow_inf_nan=False,
                                         description="Attractiveness of every candidate without its own.")
    alpha: Exponent = 1.0
    beta: Exponent = 2.0


def _clean(value):
    """JSON-safe: NaN as null, numpy scalars as Python numbers."""
    if isinstance(value, dict):
        return {str(k): _clean(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_clean(v) for v in value]
    if isinstance(value, (np.integer,)):
        return int(value)
    if isinstance(value, (float, np.floating)):
        return None if not np.isfinite(value) else round(float(value), 6)
    if isinstance(value, np.bool_):
        return bool(value)
    return value


def _records(frame) -> list[dict]:
    return [_clean(r) for r in frame.to_dict(orient="records")]


def _json(content: dict, media_type: str = "application/json") -> Response:
    return Response(json.dumps(content, separators=(",", ":")), media_type=media_type)


@router.post("/trade-areas", summary="Customer-derived trade areas as GeoJSON (needs the analyst scope)",
             response_class=Response,
             responses={200: {"content": {"application/geo+json": {}},
                              "description": "One polygon per store and share, with its totals."}})
def trade_areas(body: TradeAreaRequest, eng=Depends(_deps.engine), limits=Depends(_deps.settings)) -> Response:
    """The smallest set of cells nearest each store holding ``share`` of its customers, as merged polygons."""
    import shapely

    with limits.budget():
        ta = eng.trade_areas(body.stores, share=body.share, res=body.res, home_store_col=body.home_store_col,
                             brand_col=body.brand_col, brand=body.brand, region_layer=body.region_layer,
                             population_col=body.population_col, smooth=body.smooth)
    areas = ta.areas
    shown = ta.shown_areas(limits.k_min)
    feats = [{"type": "Feature",
              "properties": _clean({k: getattr(r, k) for k in ("store_id", "share", "cells", "customers",
                                                                "store_customers", "customer_share", "max_distance_m",
                                                                "area_km2", "population", "penetration")}),
              "geometry": json.loads(shapely.to_geojson(r.geometry))} for r in shown.itertuples(index=False)]
    return _json({"type": "FeatureCollection", "features": feats,
                  "metadata": {"res": ta.res, "shares": ta.shares, "assignment": ta.assignment, "k_min": limits.k_min,
                               "suppressed": int(len(areas) - len(shown))}}, "application/geo+json")


@router.post("/huff", summary="The Huff model: expected customers and spend per store (needs the analyst scope)")
def huff(body: HuffRequest, eng=Depends(_deps.engine), limits=Depends(_deps.settings)) -> Response:
    """Huff probabilities over demand cells, summed per store and per brand; each cell's likeliest store on request."""
    with limits.budget():
        model = eng.huff(res=body.res, brand_col=body.brand_col, attract_col=body.attract_col, alpha=body.alpha,
                         beta=body.beta, spend_col=body.spend_col, demand=body.demand, region_layer=body.region_layer,
                         population_col=body.population_col)
    stores = model.stores[["store_id", "brand", "attractiveness", "expected_demand", "expected_customers",
                           "expected_spend", "share"]]
    out = {"res": model.res, "alpha": model.alpha, "beta": model.beta, "demand": model.demand,
           "min_distance_m": model.min_distance_m, "cells_total": len(model.cells),
           "stores": _records(stores), "brands": _records(model.brand_shares())}
    if body.cells:
        keep = model.cells["customers"].to_numpy() >= limits.k_min if model.demand == "customers" else \
            np.ones(len(model.cells), dtype=bool)
        cells = model.cells.loc[keep, ["h3", "dominant_store", "dominant_probability"]]
        if len(cells) > limits.max_heatmap_features:
            raise InvalidInputError(f"the model has {len(cells):,} cells, over this server's limit of "
                                    f"{limits.max_heatmap_features:,}; ask for a coarser res")
        out["cells"] = _records(cells)
        out["cells_suppressed"] = int((~keep).sum())
    return _json(out)


@router.post("/sites", summary="Rank candidate sites by net gain; pick k by maximal covering "
                                "(needs the analyst scope)")
def sites(body: SitesRequest, eng=Depends(_deps.engine), limits=Depends(_deps.settings)) -> Response:
    """Captured demand, cannibalisation per store and net gain of each candidate, best first."""
    import pandas as pd

    cand = pd.DataFrame([c.model_dump() for c in body.candidates])
    if cand["site_id"].isna().all():
        cand["site_id"] = [f"C{i + 1}" for i in range(len(cand))]
    elif cand["site_id"].isna().any():
        raise InvalidInputError("give every candidate a site_id, or none")
    if cand["site_id"].duplicated().any():
        raise InvalidInputError(f"candidates.site_id {cand.loc[cand['site_id'].duplicated(), 'site_id'].iloc[0]!r} "
                                "appears twice; site ids must be unique")
    attract: float | str | None = body.attractiveness
    if cand["attractiveness"].notna().any():
        if cand["attractiveness"].isna().any() and body.attractiveness is None:
            raise InvalidInputError("give every candidate an attractiveness, or set attractiveness for the rest")
        cand["attractiveness"] = cand["attractiveness"].fillna(body.attractiveness or 1.0)
        attract = "attractiveness"
    else:
        cand = cand.drop(columns="attractiveness")
    if body.pick is not None and body.pick > len(cand):
        raise InvalidInputError(f"pick must be at most the number of candidates ({len(cand)}), got {body.pick}")
    with limits.budget():
        ranking = eng.rank_sites(cand, pick=body.pick, radius_m=parse_distance(body.radius), res=body.res,
                                 brand_col=body.brand_col, brand=body.brand, attract_col=body.attract_col,
                                 alpha=body.alpha, beta=body.beta, attractiveness=attract)
    return _json({"count": len(ranking), "sites": _records(ranking)})
