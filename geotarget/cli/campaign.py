"""`geotarget campaign create|list|show|update|pause|resume|delete|audience|at`."""

from __future__ import annotations

import json

import typer

from geotarget.errors import InvalidInputError

from ._app import app, console, engine
from .audience import OUTPUT_HELP


def fail(message: str) -> None:
    """A usage mistake: one line on stderr and exit code 2 (raised as a geotarget error)."""
    raise InvalidInputError(message)

campaign_app = typer.Typer(help="Promotions: geofence, segment, time window, holdout and metadata.",
                           no_args_is_help=True)
app.add_typer(campaign_app, name="campaign")

_STORE = typer.Option(None, "--store", help="Store id of a radius geofence (repeat).")
_ALL_STORES = typer.Option(False, "--all-stores", help="Every store (with --radius).")
_RADIUS = typer.Option(None, "--radius", help="Radius around the stores or points, with a unit: 2mi, 500m.")
_LAT = typer.Option(None, "--lat", metavar="DEG", help="Latitude of a centre point that is not a store (with --lng "
                    "and --radius; repeat for several).")
_LNG = typer.Option(None, "--lng", metavar="DEG", help="Longitude of a centre point, paired with --lat.")
_LAYER = typer.Option(None, "--region-layer", help="Region layer of a region geofence.")
_REGION = typer.Option(None, "--region", help="Region name or id (repeat; the whole layer when omitted).")
_CELL = typer.Option(None, "--cell", help="H3 cell of a cell geofence (repeat).")
_WHERE = typer.Option(None, "--where", help="Segment filter, e.g. tier=gold, age>=30 (repeat; AND-ed).")
_START = typer.Option(None, "--start", help="Start, ISO 8601 with an offset, e.g. 2026-05-01T09:00-04:00.")
_END = typer.Option(None, "--end", help="End (exclusive), ISO 8601 with an offset.")
_HOLDOUT = typer.Option(None, "--holdout", help="Control-group fraction, e.g. 0.1.")
_META = typer.Option(None, "--meta", help="Metadata KEY=VALUE (repeat; VALUE read as JSON when it is).")


def _metadata(meta: list[str] | None) -> dict | None:
    if not meta:
        return None
    out = {}
    for item in meta:
        key, sep, value = item.partition("=")
        if not sep or not key.strip():
            fail(f"--meta {item!r} must be KEY=VALUE, e.g. --meta offer='10% off'")
        try:
            out[key.strip()] = json.loads(value)
        except ValueError:
            out[key.strip()] = value
    return out


def _geofence(store, all_stores, radius, region_layer, region, cell, lat=None, lng=None) -> dict:
    out: dict = {}
    if store or all_stores:
        if store and all_stores:
            fail("give --store or --all-stores, not both")
        out["stores"] = "all" if all_stores else list(store)
    if lat or lng:
        if len(lat or []) != len(lng or []):
            fail(f"give --lat and --lng in pairs: got {len(lat or [])} --lat and {len(lng or [])} --lng")
        out["points"] = [(a, b) for a, b in zip(lat, lng)]
    if radius is not None:
        out["radius"] = radius
    if region_layer is not None:
        out["region_layer"] = region_layer
    if region:
        out["regions"] = list(region)
    if cell:
        out["cells"] = list(cell)
    return out


def _describe(fence: dict) -> str:
    if fence["kind"] == "radius":
        return f"{len(fence['stores'])} store(s) + {fence['radius_m']:,.0f} m"
    if fence["kind"] == "points":
        return f"{len(fence['points'])} point(s) + {fence['radius_m']:,.0f} m"
    if fence["kind"] == "regions":
        return f"{len(fence['regions'])} region(s) of {fence['layer']}"
    return f"{len(fence['cells'])} cell(s)"


def _show(c) -> None:
    console.print_json(json.dumps(c.to_dict()))


@campaign_app.command("create")
def create(
    name: str = typer.Argument(..., help="Unique campaign name."),
    store: list[str] = _STORE, all_stores: bool = _ALL_STORES, lat: list[float] = _LAT, lng: list[float] = _LNG,
    radius: str = _RADIUS,
    region_layer: str = _LAYER, region: list[str] = _REGION, cell: list[str] = _CELL,
    where: list[str] = _WHERE, start: str = _START, end: str = _END, holdout: float = _HOLDOUT,
    meta: list[str] = _META,
) -> None:
    """Create a campaign; prints it as JSON."""
    with engine() as eng:
        c = eng.create_campaign(name, where=list(where) if where else None, start=start, end=end,
                                holdout=holdout, metadata=_metadata(meta),
                                **_geofence(store, all_stores, radius, region_layer, region, cell, lat, lng))
    _show(c)


@campaign_app.command("list")
def list_(status: str = typer.Option(None, "--status", help="active or paused.")) -> None:
    """List campaigns: name, id, status, geofence and window."""
    with engine(read_only=True) as eng:
        found = eng.campaigns(status=status)
    if not found:
        console.print("no campaigns")
    for c in found:
        what = _describe(c.geofence)
        window = f"{c.start.isoformat() if c.start else '…'} → {c.end.isoformat() if c.end else '…'}"
        typer.echo(f"{c.name}\t{c.id}\t{c.status}\t{what}\t{window}")  # tab-separated, for scripts


@campaign_app.command("show")
def show(name: str = typer.Argument(..., help="Campaign name or id.")) -> None:
    """Print one campaign as JSON."""
    with engine(read_only=True) as eng:
        _show(eng.campaign(name))


@campaign_app.command("update")
def update(
    name: str = typer.Argument(..., help="Campaign name or id."),
    new_name: str = typer.Option(None, "--name", help="Rename the campaign."),
    store: list[str] = _STORE, all_stores: bool = _ALL_STORES, lat: list[float] = _LAT, lng: list[float] = _LNG,
    radius: str = _RADIUS,
    region_layer: str = _LAYER, region: list[str] = _REGION, cell: list[str] = _CELL,
    where: list[str] = _WHERE, no_where: bool = typer.Option(False, "--no-where", help="Drop the segment filter."),
    start: str = _START, end: str = _END,
    no_start: bool = typer.Option(False, "--no-start", help="Open the start of the window."),
    no_end: bool = typer.Option(False, "--no-end", help="Open the end of the window."),
    holdout: float = _HOLDOUT, meta: list[str] = _META,
) -> None:
    """Change a campaign's fields (only those given); prints it as JSON."""
    changes = _geofence(store, all_stores, radius, region_layer, region, cell, lat, lng)
    for key, value in (("name", new_name), ("start", start), ("end", end), ("holdout", holdout),
                       ("metadata", _metadata(meta))):
        if value is not None:
            changes[key] = value
    if where or no_where:
        changes["where"] = list(where) if where else None
    for key, flag in (("start", no_start), ("end", no_end)):
        if flag:
            changes[key] = None
    if not changes:
        fail("nothing to change; give e.g. --radius 1mi, --end 2026-06-01T00:00Z or --meta offer=...")
    with engine() as eng:
        _show(eng.update_campaign(name, **changes))


@campaign_app.command("pause")
def pause(name: str = typer.Argument(..., help="Campaign name or id.")) -> None:
    """Pause a campaign (no longer returned by promotion lookups)."""
    with engine() as eng:
        c = eng.pause_campaign(name)
    console.print(f"paused {c.name} ({c.id})")


@campaign_app.command("resume")
def resume(name: str = typer.Argument(..., help="Campaign name or id.")) -> None:
    """Resume a paused campaign."""
    with engine() as eng:
        c = eng.resume_campaign(name)
    console.print(f"resumed {c.name} ({c.id})")


@campaign_app.command("delete")
def delete(name: str = typer.Argument(..., help="Campaign name or id.")) -> None:
    """Delete a campaign."""
    with engine() as eng:
        c = eng.campaign(name)
        eng.delete_campaign(c.id)
    console.print(f"deleted {c.name} ({c.id})")


@campaign_app.command("audience")
def audience(
    name: str = typer.Argument(..., help="Campaign name or id."),
    output: str = typer.Option(None, "-o", "--output", help=OUTPUT_HELP),
    column: list[str] = typer.Option(None, "--column", help="Customer column to include (repeat)."),
    fmt: str = typer.Option(None, "--format", help="csv, parquet, geojson, geoparquet or customer-match."),
    platform: str = typer.Option("google", "--platform", help="customer-match layout: google or meta."),
    min_size: int = typer.Option(None, "--min-size", help="Minimum audience size for export [default: 100]."),
    no_min_size: bool = typer.Option(False, "--no-min-size", help="Export even below the minimum (internal use)."),
) -> None:
    """Export the campaign's current audience (consent, suppression, segment, holdout, minimum size)."""
    from .audience import _format, report_and_write

    chosen = _format(output, fmt)
    with engine(read_only=True) as eng:
        aud = eng.campaign_audience(name, columns=list(column) if column else None, min_size=min_size)
        report_and_write(aud, output, chosen, platform=platform, allow_small=no_min_size)


@campaign_app.command("at")
def at(
    lat: float = typer.Option(..., "--lat", help="Latitude."),
    lng: float = typer.Option(..., "--lng", help="Longitude."),
    customer: str = typer.Option(None, "--customer", help="Customer id: apply consent, segment and holdout."),
    when: str = typer.Option(None, "--at", help="Time, ISO 8601 with an offset [default: now]."),
) -> None:
    """List the promotions that apply at a point (and to a customer)."""
    with engine(read_only=True) as eng:
        found = eng.promotions_at(lat, lng, at=when, customer_id=customer)
    if not found:
        console.print("no promotions here")
    for c in found:
        typer.echo(f"{c.name}\t{c.id}\t{json.dumps(c.metadata)}")
