"""`geotarget audience ...` and `geotarget suppress ...`."""

from __future__ import annotations

import os
import shutil
import sys
import tempfile
from pathlib import Path

import typer

from ._app import app, console, engine, err_console, fail, local_path, shown

OUTPUT_HELP = ("File to write: .csv, .parquet, .geojson or .geoparquet; '-' writes CSV to stdout (or --format). "
               "Leave it out to print the counts only.")


@app.command("audience")
def audience(
    output: str = typer.Option(None, "-o", "--output", help=OUTPUT_HELP),
    store: list[str] = typer.Option(None, "--store", help="Store id (repeat for several)."),
    all_stores: bool = typer.Option(False, "--all-stores", help="Every store."),
    lat: list[float] = typer.Option(None, "--lat", help="Centre latitude; repeat --lat/--lng for several points."),
    lng: list[float] = typer.Option(None, "--lng", help="Centre longitude, paired with the --lat in the same place."),
    points_file: str = typer.Option(None, "--points",
                                    help="CSV or Parquet file of centre points: lat, lng and an optional point_id."),
    radius: str = typer.Option(None, "--radius", help="Radius with a unit: 2mi, 3.5km, 500m."),
    allow_large_radius: bool = typer.Option(False, "--allow-large-radius", help="Allow radii over 100 km."),
    region_layer: str = typer.Option(None, "--region-layer",
                                     help="Region layer, e.g. nyc_nta; with --radius, keeps only customers in it."),
    region: list[str] = typer.Option(None, "--region", help="Region name or id (repeat; all when omitted)."),
    ring_cell: str = typer.Option(None, "--ring-cell", help="H3 cell whose k-ring to target."),
    k: int = typer.Option(1, "--k", help="Rings around --ring-cell (or the point's cell)."),
    res: int = typer.Option(None, "--res", help="H3 resolution of the point's cell for a ring query."),
    where: list[str] = typer.Option(None, "--where",
                                    help="Segment filter, e.g. tier=gold, age>=30 (repeat; AND-ed). Alone, it "
                                         "selects the matching customers everywhere."),
    exclude_within: list[str] = typer.Option(None, "--exclude-within", help="Drop customers near LAT,LNG,RADIUS."),
    exclude_region: list[str] = typer.Option(None, "--exclude-region", help="Drop customers in LAYER:NAME."),
    holdout: float = typer.Option(None, "--holdout", metavar="FRACTION", help="Control-group fraction, e.g. 0.1."),
    campaign: str = typer.Option(None, "--campaign", metavar="NAME", help="Campaign name salting the holdout split."),
    column: list[str] = typer.Option(None, "--column", help="Customer column to include (repeat)."),
    fmt: str = typer.Option(None, "--format", help="csv, parquet, geojson, geoparquet or customer-match."),
    platform: str = typer.Option("google", "--platform", help="customer-match layout: google or meta."),
    min_size: int = typer.Option(None, "--min-size", metavar="N", help="Minimum audience size for export "
                                 "(default: 100)."),
    no_min_size: bool = typer.Option(False, "--no-min-size", help="Export even below the minimum (internal use)."),
) -> None:
    """Build an exact audience; print its size and per-store counts, and write it with -o."""
    kwargs: dict = {}
    if store or all_stores:
        if store and all_stores:
            fail("give --store or --all-stores, not both")
        kwargs["stores"] = "all" if all_stores else list(store)
    points = _points(lat or [], lng or [], points_file)
    if points is not None:
        if ring_cell is None and res is not None and radius is None:
            if len(points) != 1:
                fail("a ring query takes one centre: give --lat and --lng once")
            kwargs["ring_point"] = tuple(points[["lat", "lng"]].iloc[0])
        else:
            kwargs["points"] = points
    if region_layer:
        kwargs["region_layer"] = region_layer
        kwargs["regions"] = list(region) if region else None
    elif region:
        fail("--region needs --region-layer, the layer it belongs to")
    if ring_cell:
        kwargs["ring_cell"] = ring_cell
    if "ring_point" in kwargs or ring_cell:
        kwargs.update(k=k, res=res)
    elif radius is None and ("stores" in kwargs or "points" in kwargs):
        fail("a radius audience needs --radius with a unit, e.g. --radius 2mi")
    if radius is not None:
        kwargs["radius"] = radius
    chosen = _format(output, fmt)
    with engine() as eng:
        aud = eng.audience(
            where=list(where) if where else None,
            exclude_within=list(exclude_within) if exclude_within else None,
            exclude_regions=list(exclude_region) if exclude_region else None,
            holdout=holdout, campaign=campaign, columns=list(column) if column else None,
            min_size=min_size, allow_large_radius=allow_large_radius, **kwargs,
        )
        report_and_write(aud, output, chosen, platform=platform, allow_small=no_min_size)


def _points(lats: list[float], lngs: list[float], points_file: str | None):
    """The centre points of --lat/--lng pairs and --points FILE as a frame (None when there are none)."""
    if len(lats) != len(lngs):
        fail(f"give --lat and --lng in pairs: got {len(lats)} --lat and {len(lngs)} --lng")
    if not lats and not points_file:
        return None
    import pandas as pd

    frames = []
    if lats:
        frames.append(pd.DataFrame({"point_id": [f"P{i + 1}" for i in range(len(lats))], "lat": lats, "lng": lngs}))
    if points_file:
        frames.append(_read_points(points_file, start=len(lats)))
    return pd.concat(frames, ignore_index=True) if frames else None


def _read_points(path: str, *, start: int):
    import pandas as pd

    from geotarget.errors import SourceError

    p = Path(path)
    if not p.exists():
        fail(f"no such points file: {path}; check --points")
    try:
        frame = pd.read_parquet(p) if p.suffix.lower() == ".parquet" else pd.read_csv(p)
    except Exception as exc:  # noqa: BLE001 - any reader failure is a bad file
        raise SourceError(f"cannot read points file {path}: {' '.join(str(exc).split())}") from None
    names = {c.lower(): c for c in frame.columns}
    lat = next((names[c] for c in ("lat", "latitude") if c in names), None)
    lng = next((names[c] for c in ("lng", "lon", "long", "longitude") if c in names), None)
    if lat is None or lng is None:
        fail(f"points file {path} needs lat and lng columns; it has {', '.join(map(str, frame.columns))}")
    ids = frame[names["point_id"]].astype(str) if "point_id" in names else \
        [f"P{start + i + 1}" for i in range(len(frame))]
    return pd.DataFrame({"point_id": ids, "lat": pd.to_numeric(frame[lat], errors="coerce"),
                         "lng": pd.to_numeric(frame[lng], errors="coerce")})


def _format(output: str | None, fmt: str | None) -> str | None:
    from geotarget.audience.export import format_for_path

    if output is None:
        if fmt:
            fail("--format needs -o FILE (or -o - for stdout)")
        return None
    if output == "-":
        return format_for_path("-.csv", fmt)
    return format_for_path(output, fmt)


def report_and_write(aud, output: str | None, chosen: str | None, *, platform: str, allow_small: bool):
    """Print an audience's size, groups and per-store counts; write it as ``chosen`` when ``output`` is given.

    With ``output`` ``-`` the file goes to stdout and the report to stderr.
    """
    from geotarget.audience.export import write_audience

    out = err_console if output == "-" else console
    out.print(f"audience: {len(aud):,} customers ({aud.description})")
    if aud.groups is not None:
        out.print(f"  treatment {aud.treatment_count:,}, control {aud.control_count:,}")
    if aud.center_count > 1:
        from ._app import plain_table

        counts = aud.counts()
        out.print(plain_table(counts.head(20)) + (f"\n  ... {len(counts) - 20} more" if len(counts) > 20 else ""))
    if output is None:
        return None

    def write(path):
        if chosen == "customer-match":
            return aud.to_customer_match(path, platform=platform, allow_small=allow_small)
        return write_audience(aud, path, chosen, allow_small=allow_small)

    if output != "-":
        path = write(local_path(output))
        console.print(f"wrote {shown(path)}")
        return path
    with tempfile.TemporaryDirectory(prefix="geotarget-") as tmp:
        path = write(Path(tmp) / f"audience.{'csv' if chosen == 'customer-match' else chosen}")
        sys.stdout.flush()
        try:
            with open(path, "rb") as fh:
                shutil.copyfileobj(fh, sys.stdout.buffer)
            sys.stdout.buffer.flush()
        except BrokenPipeError:  # `... -o - | head`: the reader has what it wanted; not an error
            devnull = os.open(os.devnull, os.O_WRONLY)
            os.dup2(devnull, sys.stdout.fileno())  # what is still buffered goes nowhere, quietly
            os.close(devnull)
    return "-"


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
