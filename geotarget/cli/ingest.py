"""`geotarget ingest ...`, `geotarget info`, `geotarget rejects`, `geotarget sample`."""

from __future__ import annotations

import json
from pathlib import Path

import typer

from ._app import app, console, engine, output_path, plain_table

ingest_app = typer.Typer(help="Load customers, stores or region polygons.", no_args_is_help=True)
app.add_typer(ingest_app, name="ingest")


def _with_progress(label: str, fn):
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

    with Progress(
        TextColumn(label), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn(),
        console=console.rich, transient=True, disable=not console.is_terminal,
    ) as bar:
        task = bar.add_task(label, total=None)

        def progress(done: int, total: int | None) -> None:
            bar.update(task, completed=done, total=total)

        return fn(progress)


def _print_report(report) -> None:
    console.print(str(report))


@ingest_app.command("customers")
def ingest_customers(
    file: str = typer.Argument(..., help="CSV, Parquet, GeoParquet, GeoJSON, GeoPackage or Shapefile."),
    id_col: str = typer.Option(None, "--id-col", metavar="COLUMN", help="Customer id column [default: detected]."),
    lat_col: str = typer.Option(None, "--lat-col", metavar="COLUMN", help="Latitude column [default: detected]."),
    lng_col: str = typer.Option(None, "--lng-col", metavar="COLUMN", help="Longitude column [default: detected]."),
    opted_out_col: str = typer.Option(None, "--opted-out-col", metavar="COLUMN", help="Boolean opt-out column."),
    crs: str = typer.Option(None, "--crs", help="CRS of plain x/y columns, e.g. EPSG:2263."),
    phone_region: str = typer.Option(None, "--phone-region", metavar="CC",
                                     help="Country of phones without a country code [default: US]."),
    id_from: str = typer.Option(None, "--id-from", metavar="row|hash",
                                help="No unique id (events): use the row number or a hash of the row."),
    allow_retype: bool = typer.Option(False, "--allow-retype",
                                      help="Let a value that does not fit a column turn it into text."),
    no_swap_check: bool = typer.Option(False, "--no-swap-check",
                                       help="Accept points that mostly fall in Antarctica (south of 60°S)."),
) -> None:
    """Validate, H3-index and upsert customers (a partial update); bad rows go to rejects."""
    with engine() as eng:
        report = _with_progress("customers", lambda p: eng.ingest_customers(
            file, id_col=id_col, lat_col=lat_col, lng_col=lng_col, opted_out_col=opted_out_col, crs=crs, progress=p,
            phone_region=phone_region, id_from=id_from, allow_retype=allow_retype, swap_check=not no_swap_check))
    _print_report(report)


@ingest_app.command("stores")
def ingest_stores(
    file: str = typer.Argument(..., help="A file of stores with an id and a location."),
    id_col: str = typer.Option(None, "--id-col", metavar="COLUMN", help="Store id column [default: detected]."),
    name_col: str = typer.Option(None, "--name-col", metavar="COLUMN", help="Store name column [default: detected]."),
    lat_col: str = typer.Option(None, "--lat-col", metavar="COLUMN", help="Latitude column [default: detected]."),
    lng_col: str = typer.Option(None, "--lng-col", metavar="COLUMN", help="Longitude column [default: detected]."),
    crs: str = typer.Option(None, "--crs", help="CRS of plain x/y columns, e.g. EPSG:2263."),
    id_from: str = typer.Option(None, "--id-from", metavar="row|hash",
                                help="No unique id: use the row number or a hash of the row."),
    allow_retype: bool = typer.Option(False, "--allow-retype",
                                      help="Let a value that does not fit a column turn it into text."),
    no_swap_check: bool = typer.Option(False, "--no-swap-check",
                                       help="Accept points that mostly fall in Antarctica (south of 60°S)."),
) -> None:
    """Validate, H3-index and upsert stores."""
    with engine() as eng:
        report = _with_progress("stores", lambda p: eng.ingest_stores(
            file, id_col=id_col, name_col=name_col, lat_col=lat_col, lng_col=lng_col, crs=crs, progress=p,
            id_from=id_from, allow_retype=allow_retype, swap_check=not no_swap_check))
    _print_report(report)


@ingest_app.command("regions")
def ingest_regions(
    file: str = typer.Argument(..., help="Polygons: GeoJSON, GeoPackage, Shapefile or GeoParquet."),
    layer: str = typer.Option(..., "--layer", help="Name of the layer, e.g. nyc_nta."),
    name_col: str = typer.Option(None, "--name-col", metavar="COLUMN", help="Region name column [default: detected]."),
    id_col: str = typer.Option(None, "--id-col", metavar="COLUMN",
                               help="Region id column [default: detected, or the row number]."),
    confirm: bool = typer.Option(False, "--confirm",
                                 help="Allow emptying the layer, or dropping regions that campaigns use."),
) -> None:
    """Load region polygons as a named layer (replacing a layer of that name)."""
    with engine() as eng:
        report = eng.ingest_regions(file, layer=layer, name_col=name_col, id_col=id_col, confirm=confirm)
    _print_report(report)


@app.command("info")
def info(as_json: bool = typer.Option(False, "--json", help="Print JSON.")) -> None:
    """Counts per table, bounding box, H3 resolution and rejects per reason."""
    with engine(read_only=True) as eng:
        facts = eng.info()
    if as_json:
        console.print_json(json.dumps(facts, default=str))
        return
    rows = [("database", str(facts["path"])), ("schema version", str(facts["schema_version"])),
            ("H3 resolution", str(facts["h3_res"]))]
    rows += [(name, f"{count:,}") for name, count in facts["counts"].items()]
    rows.append(("opted out", f"{facts['opted_out']:,}"))
    bbox = facts["customer_bbox"]
    if bbox:
        rows.append(("customer bbox",
                     "lat {min_lat:.5f}..{max_lat:.5f}, lng {min_lng:.5f}..{max_lng:.5f}".format(**bbox)))
    rows.append(("region layers", ", ".join(facts["layers"]) or "-"))
    rows += [(f"rejected: {reason}", f"{count:,}") for reason, count in facts["rejects_by_reason"].items()]
    from .policy import policy_rows

    rows += [(f"policy: {name}", text) for name, text in policy_rows(facts.get("privacy_policy", {}))]
    width = max(len(k) for k, _ in rows)
    console.print("\n".join(f"{k.ljust(width)}  {v}" for k, v in rows))  # plain lines: never wrapped or boxed


@app.command("rejects")
def rejects(
    source: str = typer.Option(None, "--source", help="Only rejects of this source file."),
    output: str = typer.Option(None, "-o", "--output", help="Write CSV/Parquet here instead of printing."),
    purge: bool = typer.Option(False, "--purge", help="Delete rejected rows instead of listing them."),
    older_than: str = typer.Option(None, "--older-than", metavar="AGE", help="With --purge: only those older, e.g. 30d."),
) -> None:
    """List rejected rows with their reasons (emails and phones masked), or delete them with --purge."""
    if purge:
        with engine() as eng:
            gone = eng.purge_rejects(older_than=older_than)
        console.print(f"deleted {gone:,} rejected row(s)")
        return
    with engine(read_only=True) as eng:
        frame = eng.rejects(source=source)
    if output:
        out = output_path(output)
        if out.suffix.lower() == ".parquet":
            frame.to_parquet(out, index=False)
        else:
            frame.to_csv(out, index=False)
        console.print(f"wrote {len(frame):,} rejects to {out}")
        return
    if frame.empty:
        console.print("no rejects")
        return
    shown = frame[["kind", "source", "row_number", "reason", "raw"]].copy()
    shown["source"] = [Path(str(s)).name if s is not None else "" for s in shown["source"]]
    shown = shown.rename(columns={"row_number": "row"})
    console.print(plain_table(shown, max_width=60))


@app.command("sample")
def sample(
    out: str = typer.Option("data/sample", "--out", help="Folder to write the sample into."),
    customers: int = typer.Option(200_000, "--customers", metavar="N", help="How many customers."),
    stores: int = typer.Option(40, "--stores", metavar="N", help="How many stores."),
    seed: int = typer.Option(42, "--seed", metavar="N", help="Random seed: the same seed writes the same files."),
) -> None:
    """Write the seeded synthetic sample (customers, stores, neighborhoods)."""
    from geotarget.sample import write_sample

    paths = write_sample(out, n_customers=customers, n_stores=stores, seed=seed)
    for kind, path in paths.items():
        console.print(f"{kind}: {path}")
