"""`geotarget ingest pings`, `geotarget visits`, `geotarget footfall`, `geotarget pings ...` (consent, erasure)."""

from __future__ import annotations

import typer

from ._app import app, console, engine, output_path
from .ingest import _print_report, _with_progress, ingest_app

pings_app = typer.Typer(help="Device consent, erasure and sensitive region layers.", no_args_is_help=True)
app.add_typer(pings_app, name="pings")


@ingest_app.command("pings")
def ingest_pings(
    file: str = typer.Argument(..., help="CSV or Parquet of pings: device id, aware timestamp, lat, lng, accuracy."),
    device_col: str = typer.Option(None, "--device-col", help="Device id column [default: detected]."),
    time_col: str = typer.Option(None, "--time-col", help="Timestamp column (ISO 8601 with an offset)."),
    lat_col: str = typer.Option(None, "--lat-col", help="Latitude column [default: detected]."),
    lng_col: str = typer.Option(None, "--lng-col", help="Longitude column [default: detected]."),
    accuracy_col: str = typer.Option(None, "--accuracy-col", help="Horizontal accuracy in metres."),
    consent_col: str = typer.Option(None, "--consent-col", help="Consent column (anything but yes is rejected)."),
    max_accuracy: float = typer.Option(100.0, "--max-accuracy", help="Reject pings less accurate than this (m)."),
) -> None:
    """Validate and append device pings (partitioned by day and H3 parent); bad rows go to rejects."""
    with engine() as eng:
        report = _with_progress("pings", lambda p: eng.ingest_pings(
            file, device_col=device_col, time_col=time_col, lat_col=lat_col, lng_col=lng_col,
            accuracy_col=accuracy_col, consent_col=consent_col, max_accuracy_m=max_accuracy, progress=p))
    _print_report(report)


def place_options(store, all_stores, places_file, radius, layer, region, campaign) -> dict:
    """The place keywords of a visitation query from the CLI's options."""
    from ..pings import read_points

    stores = "all" if all_stores else (list(store) or None)
    points = read_points(places_file) if places_file else None
    return {"stores": stores, "points": points, "radius": radius, "region_layer": layer,
            "regions": list(region) or None, "campaign": campaign}


def rule_options(start, end, min_dwell, min_days, max_gap, hours, days, tz) -> dict:
    """The visit rule keywords from the CLI's options."""
    from ..pings import parse_hours

    return {"start": start, "end": end, "min_dwell_minutes": min_dwell, "min_days": min_days,
            "max_gap_minutes": max_gap, "hours": parse_hours(hours) if hours else None,
            "days_of_week": [d for d in days.split(",") if d.strip()] if days else None, "tz": tz}


@app.command("visits")
def visits(
    store: list[str] = typer.Option([], "--store", help="Store id (repeatable)."),
    all_stores: bool = typer.Option(False, "--all-stores", help="Every store."),
    places_file: str = typer.Option(None, "--places", help="File of places (id, lat, lng), e.g. competitors."),
    radius: str = typer.Option(None, "--radius", help="Radius around stores or places, e.g. 200m."),
    layer: str = typer.Option(None, "--layer", help="Region layer of the places."),
    region: list[str] = typer.Option([], "--region", help="Region id or name (repeatable; all when omitted)."),
    campaign: str = typer.Option(None, "--campaign", help="Use a campaign's geofence."),
    exclude_store: list[str] = typer.Option([], "--exclude-store", help="Drop visitors of these stores "
                                            "(same radius and rule; 'all' for every store)."),
    start: str = typer.Option(None, "--start", help="Window start, ISO 8601 with an offset."),
    end: str = typer.Option(None, "--end", help="Window end (excluded)."),
    min_dwell: float = typer.Option(0.0, "--min-dwell", help="Minimum dwell of a visit, minutes."),
    min_days: int = typer.Option(1, "--min-days", help="Minimum distinct days with a visit."),
    max_gap: float = typer.Option(30.0, "--max-gap", help="A gap longer than this (minutes) ends a visit."),
    hours: str = typer.Option(None, "--hours", help="Hours of the day to count, e.g. 7-10,17."),
    days: str = typer.Option(None, "--days", help="Days of the week to count, e.g. mon,tue,sat."),
    tz: str = typer.Option("UTC", "--tz", help="Timezone of days and hours, e.g. America/New_York."),
    each_visit: bool = typer.Option(False, "--each-visit", help="Write one row per visit instead of per device."),
    output: str = typer.Option(..., "-o", "--output", help="CSV file to write."),
    no_min_size: bool = typer.Option(False, "--no-min-size", help="Allow fewer than 100 devices (internal use)."),
) -> None:
    """A visitation audience: devices seen at stores, places, regions or a campaign's geofence."""
    from ..audience.privacy import check_min_size

    with engine() as eng:
        where = place_options(store, all_stores, places_file, radius, layer, region, campaign)
        rule = rule_options(start, end, min_dwell, min_days, max_gap, hours, days, tz)
        if each_visit:
            rule.pop("min_days")
            frame = eng.visits(**where, **rule)
            devices = frame["device_id"].nunique()
        else:
            exclude = None
            if exclude_store:
                exclude = {"stores": "all" if exclude_store == ["all"] else list(exclude_store),
                           "radius": radius}
            frame = eng.visitors(**where, exclude=exclude, **rule)
            devices = len(frame)
        check_min_size(devices, None, allow_small=no_min_size)
        frame.to_csv(output_path(output), index=False)
        scan = eng.pings.last_scan
    console.print(f"{devices:,} device(s), {len(frame):,} row(s) -> {output} "
                  f"(read {scan.files_read:,} of {scan.files_total:,} ping files)")


@app.command("footfall")
def footfall(
    res: int = typer.Option(9, "--res", help="H3 resolution of the cells (5-11)."),
    k_min: int = typer.Option(10, "--k-min", help="Leave out cells with fewer devices than this on a day."),
    start: str = typer.Option(None, "--start", help="Window start, ISO 8601 with an offset."),
    end: str = typer.Option(None, "--end", help="Window end (excluded)."),
    tz: str = typer.Option("UTC", "--tz", help="Timezone of the days."),
    output: str = typer.Option(..., "-o", "--output", help="CSV file to write."),
) -> None:
    """Unique devices per H3 cell per day, above the k floor."""
    with engine() as eng:
        result = eng.footfall(res, k_min=k_min, start=start, end=end, tz=tz)
    result.frame.to_csv(output_path(output), index=False)
    console.print(f"{len(result):,} cell-day(s) -> {output}; {result.suppressed_cells:,} under k={result.k_min} left out")


@pings_app.command("opt-out")
def opt_out(device_ids: list[str] = typer.Argument(..., help="Device ids.")) -> None:
    """Opt devices out of every visitation audience and footfall count."""
    with engine() as eng:
        added = eng.opt_out_devices(device_ids)
    console.print(f"opt-out list: {added:,} new device(s)")


@pings_app.command("erase")
def erase(device_ids: list[str] = typer.Argument(..., help="Device ids.")) -> None:
    """Erase devices: delete their pings and ping rejects, and reject their future pings."""
    with engine() as eng:
        done = eng.erase_devices(device_ids)
    console.print(f"erased {done['pings']:,} ping(s) and {done['rejects']:,} reject(s)")


@pings_app.command("sensitive")
def sensitive(layer: str = typer.Argument(..., help="Region layer, e.g. clinics.")) -> None:
    """Mark a region layer sensitive: never targeted, and pings inside it never counted."""
    with engine() as eng:
        eng.mark_sensitive(layer)
    console.print(f"layer {layer!r} is sensitive")
