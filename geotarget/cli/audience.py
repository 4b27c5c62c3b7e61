"""`geotarget audience ...` and `geotarget suppress ...`."""

from __future__ import annotations

import typer

from ._app import app, console, engine, fail


@app.command("audience")
def audience(
    output: str = typer.Option(..., "-o", "--output", help="File to write: .csv, .parquet, .geojson, .geoparquet."),
    store: list[str] = typer.Option(None, "--store", help="Store id (repeat for several)."),
    all_stores: bool = typer.Option(False, "--all-stores", help="Every store."),
    lat: float = typer.Option(None, "--lat", help="Centre latitude (with --lng)."),
    lng: float = typer.Option(None, "--lng", help="Centre longitude (with --lat)."),
    radius: str = typer.Option(None, "--radius", help="Radius with a unit: 2mi, 3.5km, 500m."),
    allow_large_radius: bool = typer.Option(False, "--allow-large-radius", help="Allow radii over 100 km."),
    region_layer: str = typer.Option(None, "--region-layer", help="Region layer, e.g. nyc_nta."),
    region: list[str] = typer.Option(None, "--region", help="Region name or id (repeat; all when omitted)."),
    ring_cell: str = typer.Option(None, "--ring-cell", help="H3 cell whose k-ring to target."),
    k: int = typer.Option(1, "--k", help="Rings around --ring-cell (or the point's cell)."),
    res: int = typer.Option(None, "--res", help="H3 resolution of the point's cell for a ring query."),
    where: list[str] = typer.Option(None, "--where", help="Segment filter, e.g. tier=gold, age>=30 (AND-ed)."),
    exclude_within: list[str] = typer.Option(None, "--exclude-within", help="Drop customers near LAT,LNG,RADIUS."),
    exclude_region: list[str] = typer.Option(None, "--exclude-region", help="Drop customers in LAYER:NAME."),
    holdout: float = typer.Option(None, "--holdout", help="Control-group fraction, e.g. 0.1."),
    campaign: str = typer.Option(None, "--campaign", help="Campaign name salting the holdout split."),
    column: list[str] = typer.Option(None, "--column", help="Customer column to include (repeat)."),
    fmt: str = typer.Option(None, "--format", help="csv, parquet, geojson, geoparquet or customer-match."),
    platform: str = typer.Option("google", "--platform", help="customer-match layout: google or meta."),
    min_size: int = typer.Option(None, "--min-size", help="Minimum audience size for export [default: 100]."),
    no_min_size: bool = typer.Option(False, "--no-min-size", help="Export even below the minimum (internal use)."),
) -> None:
    """Build an exact audience and write it; prints the count and per-store counts."""
    from geotarget.audience.export import format_for_path

    kwargs: dict = {}
    if store or all_stores:
        if store and all_stores:
            fail("give --store or --all-stores, not both")
        kwargs["stores"] = "all" if all_stores else list(store)
    if lat is not None or lng is not None:
        if lat is None or lng is None:
            fail("a centre point needs both --lat and --lng")
        if ring_cell is None and res is not None and radius is None:
            kwargs["ring_point"] = (lat, lng)
        else:
            kwargs["points"] = [(lat, lng)]
    if region_layer:
        kwargs["region_layer"] = region_layer
        kwargs["regions"] = list(region) if region else None
    if ring_cell:
        kwargs["ring_cell"] = ring_cell
    if "ring_point" in kwargs or ring_cell:
        kwargs.update(k=k, res=res)
    elif radius is None and ("stores" in kwargs or "points" in kwargs):
        fail("a radius audience needs --radius with a unit, e.g. --radius 2mi")
    if radius is not None:
        kwargs["radius"] = radius
    chosen = format_for_path(output, fmt)
    with engine() as eng:
        aud = eng.audience(
            where=list(where) if where else None,
            exclude_within=list(exclude_within) if exclude_within else None,
            exclude_regions=list(exclude_region) if exclude_region else None,
            holdout=holdout, campaign=campaign, columns=list(column) if column else None,
            min_size=min_size, allow_large_radius=allow_large_radius, **kwargs,
        )
        path = report_and_write(aud, output, chosen, platform=platform, allow_small=no_min_size)
    console.print(f"wrote {path}")


def report_and_write(aud, output: str, chosen: str, *, platform: str, allow_small: bool):
    """Print an audience's size, groups and per-store counts, then write it as ``chosen``; returns the path."""
    from geotarget.audience.export import write_audience

    console.print(f"audience: {len(aud):,} customers ({aud.description})")
    if aud.groups is not None:
        console.print(f"  treatment {aud.treatment_count:,}, control {aud.control_count:,}")
    if aud.centers is not None and len(aud.centers) > 1:
        counts = aud.counts()
        shown = counts.head(20).to_string(index=False)
        console.print(shown + (f"\n  ... {len(counts) - 20} more" if len(counts) > 20 else ""))
    if chosen == "customer-match":
        return aud.to_customer_match(output, platform=platform, allow_small=allow_small)
    return write_audience(aud, output, chosen, allow_small=allow_small)


@app.command("suppress")
def suppress(
    file: str = typer.Argument(..., help="CSV or text: the first column is used; a header line is skipped."),
    kind: str = typer.Option("id", "--kind",
                             help="id, email or phone (hashed before storing), email_sha256 or phone_sha256."),
    phone_region: str = typer.Option("US", "--phone-region", metavar="CC",
                                     help="Country of phone numbers without a country code."),
) -> None:
    """Add customer ids, emails or phones to the suppression list (excluded from every audience)."""
    with engine() as eng:
        added = eng.ingest_suppressions(file, kind=kind, phone_region=phone_region)
    console.print(f"suppression list: {added:,} new entr{'y' if added == 1 else 'ies'}")
