"""Request and response shapes of the HTTP API (pydantic), with every bound in one place.

A value out of bounds never reaches the library: pydantic answers 422 and
names the field. Radii are read by :func:`geotarget.units.parse_radius`, so
the service accepts exactly what the library does, up to 100 km.
"""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any, Literal

from pydantic import AfterValidator, AwareDatetime, BaseModel, ConfigDict, Field, StringConstraints

from geotarget.units import MAX_RADIUS_M, parse_radius

#: The most items any list in a request may hold (stores, points, regions, cells, values).
MAX_ITEMS = 1000
#: The most H3 cells a campaign geofence may list.
MAX_CELLS = 10_000
#: The most segment conditions in one filter.
MAX_CONDITIONS = 50


def _radius(value: str) -> str:
    # InvalidRadiusError is a ValueError: pydantic reports it against the field
    if parse_radius(value, allow_large=True) > MAX_RADIUS_M:
        raise ValueError(f"radius {value!r} is over the HTTP API's limit of {MAX_RADIUS_M / 1000:g} km")
    return value


Lat = Annotated[float, Field(ge=-90, le=90, allow_inf_nan=False, description="Latitude in degrees, WGS84.")]
Lng = Annotated[float, Field(ge=-180, le=180, allow_inf_nan=False, description="Longitude in degrees, WGS84.")]
Radius = Annotated[str, StringConstraints(min_length=1, max_length=40), AfterValidator(_radius),
                   Field(description="A distance with a unit, at most 100 km: '2mi', '3.5km', '500m'.",
                         examples=["2mi"])]
Name = Annotated[str, StringConstraints(min_length=1, max_length=200)]
CampaignName = Annotated[str, StringConstraints(min_length=1, max_length=200, pattern=r"^[^/\x00-\x1f\x7f]+$")]
Cell = Annotated[str, StringConstraints(min_length=1, max_length=20), Field(description="An H3 cell, e.g. '882a100d67fffff'.")]
Scalar = Annotated[str, StringConstraints(max_length=1000)] | int | float | bool | None
FilterValue = Scalar | Annotated[list[Scalar], Field(max_length=MAX_ITEMS)]
Condition = (
    Annotated[str, StringConstraints(min_length=1, max_length=1000)]
    | tuple[Name, Name]
    | tuple[Name, Name, FilterValue]
)
Where = Annotated[list[Condition], Field(max_length=MAX_CONDITIONS, description=(
    "Segment conditions AND-ed together: [column, op, value] with op one of ==, !=, <, <=, >, >=, in, not in, "
    "between, is null, is not null; or text such as 'tier=gold'."), examples=[[["tier", "==", "gold"]]])]
Fraction = Annotated[float, Field(ge=0, lt=1, description="Fraction held out as a control group, in [0, 1).")]


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


class Point(_Strict):
    """A point on the map."""

    lat: Lat
    lng: Lng


class Zone(_Strict):
    """A circle whose customers are left out."""

    lat: Lat
    lng: Lng
    radius: Radius


class RegionRef(_Strict):
    """A region of an ingested layer, by name or id."""

    layer: Name
    name: Name


# -- lookups ---------------------------------------------------------------------------------------
class NearQuery(BaseModel):
    """Stores within a radius of a point."""

    lat: Lat
    lng: Lng
    radius: Radius = "2mi"
    limit: int = Field(100, ge=1, le=MAX_ITEMS, description="At most this many stores, nearest first.")


class StoreNear(BaseModel):
    """A store and its exact geodesic distance from the point."""

    model_config = ConfigDict(extra="allow")

    store_id: str
    name: str | None = None
    lat: float
    lng: float
    distance_m: float


class StoresNear(BaseModel):
    """Stores near a point, nearest first."""

    count: int
    stores: list[StoreNear]


class PromotionsQuery(BaseModel):
    """Campaigns whose geofence holds a point at a time."""

    lat: Lat
    lng: Lng
    at: AwareDatetime | None = Field(None, description="When (ISO 8601 with a timezone); now by default.")
    customer_id: Name | None = Field(None, description="Only campaigns whose segment and holdout admit this customer.")


class Campaign(BaseModel):
    """A campaign as the library describes it."""

    model_config = ConfigDict(extra="allow")

    id: str | int
    name: str
    geofence: dict[str, Any]
    where: Any = None
    start: str | None = Field(None, description="ISO 8601 with a timezone.")
    end: str | None = Field(None, description="ISO 8601 with a timezone.")
    holdout: float | None = None
    metadata: dict[str, Any] | None = None
    status: str
    created_at: str | None = None
    updated_at: str | None = None


class Promotions(BaseModel):
    """The campaigns that apply at a point."""

    count: int
    promotions: list[Campaign]


# -- campaigns -------------------------------------------------------------------------------------
class CampaignFields(_Strict):
    """Fields of a campaign that a client may set."""

    stores: Literal["all"] | Annotated[list[Name], Field(min_length=1, max_length=MAX_ITEMS)] | None = None
    points: Annotated[list[Point], Field(min_length=1, max_length=MAX_ITEMS, description=(
        "Centre points of a radius geofence that are not stores (with radius)."))] | None = None
    radius: Radius | None = None
    region_layer: Name | None = None
    regions: Annotated[list[Name], Field(min_length=1, max_length=MAX_ITEMS)] | None = None
    cells: Annotated[list[Cell], Field(min_length=1, max_length=MAX_CELLS)] | None = None
    where: Where | None = None
    start: AwareDatetime | None = None
    end: AwareDatetime | None = None
    holdout: Fraction | None = None
    metadata: dict[str, Any] | None = Field(None, description="Free-form JSON: offer text, discount.")


class CampaignCreate(CampaignFields):
    """A new campaign: a name and one geofence (stores + radius, regions of a layer, or H3 cells)."""

    name: CampaignName


class CampaignUpdate(CampaignFields):
    """Changes to a campaign; fields left out stay as they are."""

    name: CampaignName | None = None


class CampaignList(BaseModel):
    """One page of campaigns."""

    count: int = Field(description="Campaigns matching, over all pages.")
    limit: int
    offset: int
    campaigns: list[Campaign]


# -- audiences -------------------------------------------------------------------------------------
ExportFormat = Literal["csv", "parquet", "geojson", "customer_match_google", "customer_match_meta"]


class AudienceOptions(_Strict):
    """How large an audience must be, and which file to write."""

    min_size: int | None = Field(None, ge=1, le=1_000_000_000, description=(
        "Minimum audience size; at least the server's floor (100 by default). Smaller audiences get 403."))
    format: ExportFormat | None = Field(None, description=(
        "Write the audience for download in this format; leave out for counts only."))
    columns: Annotated[list[Name], Field(min_length=1, max_length=MAX_ITEMS)] | None = Field(None, description=(
        "Customer columns to add to each row of the file (an unknown column gets 422)."))
    privacy: Literal["dp"] | None = Field(None, description=(
        "'dp' for differentially private counts (with epsilon, charged to the key's budget); counts only."))
    epsilon: float | None = Field(None, gt=0, le=100, description="The privacy loss to spend with privacy='dp'.")


class CampaignAudienceOptions(AudienceOptions):
    """A campaign's audience: its geography, segment and holdout, narrowed further by exclusions."""

    exclude_within: Annotated[list[Zone], Field(max_length=MAX_ITEMS)] | None = None
    exclude_regions: Annotated[list[RegionRef], Field(max_length=MAX_ITEMS)] | None = None


class AudienceRequest(AudienceOptions):
    """An audience: one geography (stores or points with a radius, regions, or a hex ring), then narrowing."""

    stores: Literal["all"] | Annotated[list[Name], Field(min_length=1, max_length=MAX_ITEMS)] | None = None
    points: Annotated[list[Point], Field(min_length=1, max_length=MAX_ITEMS)] | None = None
    radius: Radius | None = None
    region_layer: Name | None = None
    regions: Annotated[list[Name], Field(min_length=1, max_length=MAX_ITEMS)] | None = None
    ring_cell: Cell | None = None
    ring_point: Point | None = None
    k: int = Field(1, ge=0, le=50)
    res: int | None = Field(None, ge=0, le=15)
    where: Where | None = None
    exclude_within: Annotated[list[Zone], Field(max_length=MAX_ITEMS)] | None = None
    exclude_regions: Annotated[list[RegionRef], Field(max_length=MAX_ITEMS)] | None = None
    holdout: Fraction | None = None
    campaign: Name | None = Field(None, description="Campaign name salting the holdout split.")


class DownloadInfo(BaseModel):
    """A written audience file; fetch it with the same API key before it expires."""

    url: str
    format: ExportFormat
    filename: str
    rows: int
    bytes: int
    expires_at: datetime


class AudienceResult(BaseModel):
    """An audience's size, its groups and counts per store, and its file."""

    description: str
    customers: int
    treatment: int
    control: int
    per_store: list[dict[str, Any]] | None = Field(None, description=(
        "For radius audiences: per store (or point), customers within the radius and those assigned to it."))
    download: DownloadInfo | None = None
    rounded_to: int | None = Field(None, description=(
        "Counts released to keys without admin are noised and rounded to a multiple of this."))
    privacy: Literal["dp"] | None = None
    epsilon: float | None = None


# -- heatmaps --------------------------------------------------------------------------------------
class HeatmapQuery(BaseModel):
    """A heatmap per H3 cell or per region."""

    res: int = Field(8, ge=0, le=15, description="H3 resolution (ignored with region_layer).")
    metric: Annotated[str, StringConstraints(min_length=1, max_length=200)] = Field(
        "count", description="count, sum:COL, mean:COL, median:COL or penetration:LAYER:COL.")
    region_layer: Name | None = None
    k_min: int | None = Field(None, ge=2, le=1_000_000, description=(
        "k-anonymity floor; at least the server's (10 by default). It cannot be switched off over HTTP."))
    privacy: Literal["dp"] | None = Field(None, description=(
        "'dp' for a differentially private count heatmap (with epsilon, charged to the key's budget)."))
    epsilon: float | None = Field(None, gt=0, le=100, description="The privacy loss to spend with privacy='dp'.")


class FieldError(BaseModel):
    """One invalid field."""

    field: str = Field(description="Dotted path of the field, e.g. 'lat' or 'points.0.lng'.")
    location: str = Field(alias="in", description="Where it was: query, body, path or header.")
    message: str


class Error(BaseModel):
    """The body of every error response."""

    error: str = Field(description="A short code: unauthorized, invalid_input, not_found, privacy, too_large, ...")
    message: str = Field(description="What is wrong and what to do, naming the field or value.")
    errors: list[FieldError] | None = Field(None, description="For invalid_input from validation: one per field.")


#: Error responses every /v1 operation may give, for the OpenAPI description.
ERROR_RESPONSES = {
    400: {"model": Error, "description": "A body that cannot be read (e.g. not UTF-8)."},
    401: {"model": Error, "description": "Missing or wrong API key."},
    403: {"model": Error, "description": ("A privacy rule (an audience below the minimum size, a refused "
                                          "difference, an exhausted budget), or a key without the scope.")},
    404: {"model": Error, "description": "Unknown store, layer, region, campaign or download."},
    409: {"model": Error, "description": "The request conflicts with the server's state (e.g. a read-only database)."},
    413: {"model": Error, "description": "A request body over the limit, or a query over the server's work budget "
                                        "(area of its disks, customers examined, time)."},
    422: {"model": Error, "description": "Invalid input; the message names the field."},
}


class Health(BaseModel):
    """The service is up."""

    status: Literal["ok"]
    version: str
