"""`geotarget spark ...`: the same jobs on Apache Spark (needs the ``spark`` extra and Java)."""

from __future__ import annotations

import contextlib
from pathlib import Path

import typer

from ._app import app, console, engine, output_path
from .pings import place_options, rule_options

spark_app = typer.Typer(help="Run audiences, visits and footfall on Apache Spark over partitioned Parquet.",
                        no_args_is_help=True)
app.add_typer(spark_app, name="spark")

_MASTER = typer.Option("local[2]", "--master", help="Spark master: local[N], spark://HOST:7077, yarn, k8s://...")


@contextlib.contextmanager
def _session(master: str):
    from .. import spark as gs

    active = _active_session()  # a session already running here (a notebook's, a test's) is reused
    spark = active or gs.session(master)
    try:
        yield spark
    finally:
        if active is None:
            gs.stop(spark)


def _active_session():
    try:
        from pyspark.sql import SparkSession
    except ImportError:
        return None
    return SparkSession.getActiveSession()


def _write(df, output: str):
    """Collect to one CSV (``.csv``) or let Spark write a Parquet folder; returns the number of rows."""
    from .. import spark as gs

    if output.lower().endswith(".csv"):
        frame = gs.to_pandas(df)
        frame.to_csv(output_path(output), index=False)
        return len(frame)
    df.write.mode("overwrite").parquet(str(output_path(output)))
    return df.sparkSession.read.parquet(str(output)).count()


@spark_app.command("export-customers")
def export_customers(
    output: str = typer.Option(..., "-o", "--output", help="Folder for the partitioned Parquet."),
    overwrite: bool = typer.Option(False, "--overwrite", help="Replace a folder that already holds files."),
) -> None:
    """Write the database's eligible customers as Parquet partitioned by H3 parent (for `spark audience`)."""
    from .. import spark as gs

    with engine(read_only=True) as eng:
        n = gs.export_customers(eng, output, overwrite=overwrite)
    console.print(f"{n:,} customers -> {output}")


@spark_app.command("audience")
def audience(
    customers: str = typer.Option(..., "--customers", help="Partitioned customers (`spark export-customers`)."),
    stores: str = typer.Option(None, "--stores", help="File of stores or places (id, lat, lng)."),
    radius: str = typer.Option(None, "--radius", help="Radius with a unit, e.g. 2mi."),
    regions: str = typer.Option(None, "--regions", help="Polygon file (GeoJSON, ...) instead of stores."),
    id_col: str = typer.Option(None, "--id-col", help="Region id column of --regions."),
    where: list[str] = typer.Option(None, "--where", help="Segment filter, e.g. tier=gold, age>=30 (repeat; AND-ed)."),
    exclude_within: list[str] = typer.Option(None, "--exclude-within", help="Drop customers near LAT,LNG,RADIUS."),
    exclude_region: list[str] = typer.Option(None, "--exclude-region",
                                             help="Drop customers in LAYER:NAME (a region layer of --db)."),
    holdout: float = typer.Option(None, "--holdout", metavar="FRACTION", help="Control-group fraction, e.g. 0.1."),
    campaign: str = typer.Option(None, "--campaign", metavar="NAME", help="Campaign name salting the holdout split."),
    opted_out_col: str = typer.Option(None, "--opted-out-col",
                                      help="Consent column of --customers [default: opted_out, opt_out, optout or "
                                           "unsubscribed when present]; unrecognised values mean opted out."),
    output: str = typer.Option(..., "-o", "--output", help="OUT.csv (collected) or a folder (Parquet)."),
    master: str = _MASTER,
) -> None:
    """Customers within a radius of stores, or inside polygons, computed on Spark.

    The suppression list of --db (when that database exists) always applies.
    """
    from .. import spark as gs
    from ..errors import InvalidInputError
    from ..pings.places import Places, read_points, read_regions
    from ..units import parse_radius

    if (stores is None) == (regions is None):
        raise InvalidInputError("give --stores FILE with --radius, or --regions FILE")
    if stores is not None:
        metres = parse_radius(radius)
        pts = read_points(stores)
        places = Places("radius", tuple(pts["place_id"].astype(str)), lat=tuple(pts["lat"]), lng=tuple(pts["lng"]),
                        radius_m=metres)
    else:
        places = read_regions(regions, id_col=id_col)
    options = {"where": list(where) if where else None,
               "exclude_within": list(exclude_within) if exclude_within else None,
               "holdout": holdout, "campaign": campaign, "consent_col": opted_out_col}
    with _database(required=bool(exclude_region)) as eng:
        if eng is not None:
            options.update(suppressions=gs.suppression_frame_of(eng),
                           exclude_regions=gs.region_wkbs(exclude_region or [], eng))
        with _session(master) as spark:
            job = gs.radius_audience if stores else gs.region_audience
            df = job(spark, customers, places, **options)
            if stores:
                df = df.withColumnRenamed("center_id", "store_id")
            n = _write(df, output)
    console.print(f"{n:,} customers -> {output}")


@contextlib.contextmanager
def _database(*, required: bool):
    """The --db database when it exists (or when ``required``); else None.

    Opened as `geotarget audience` opens it, so a process that already holds it open can run this too.
    """
    from ..store.database import default_db_path
    from ._app import state

    path = state.db or default_db_path()
    if not required and not Path(path).exists():
        yield None
        return
    with engine() as eng:
        yield eng


@spark_app.command("visits")
def visits(
    pings: str = typer.Option(None, "--pings", help="Partitioned pings [default: the database's ping folder]."),
    store: list[str] = typer.Option([], "--store", help="Store id of the database (repeatable)."),
    all_stores: bool = typer.Option(False, "--all-stores", help="Every store."),
    places_file: str = typer.Option(None, "--places", help="File of places (id, lat, lng), e.g. competitors."),
    radius: str = typer.Option(None, "--radius", help="e.g. 200m"),
    layer: str = typer.Option(None, "--layer", help="Region layer of the places."),
    region: list[str] = typer.Option([], "--region", help="Region id or name (repeatable; all when omitted)."),
    campaign: str = typer.Option(None, "--campaign", help="Use a campaign's geofence."),
    exclude_store: list[str] = typer.Option([], "--exclude-store", help="Drop visitors of these stores "
                                            "(same radius and rule; 'all' for every store)."),
    start: str = typer.Option(None, "--start", help="Window start, ISO 8601 with an offset."),
    end: str = typer.Option(None, "--end", help="Window end (excluded)."),
    min_dwell: float = typer.Option(0.0, "--min-dwell", help="Minutes."),
    min_days: int = typer.Option(1, "--min-days", help="Minimum distinct days with a visit."),
    max_gap: float = typer.Option(30.0, "--max-gap", help="Minutes."),
    hours: str = typer.Option(None, "--hours", help="e.g. 7-10,17"),
    days: str = typer.Option(None, "--days", help="e.g. mon,tue"),
    tz: str = typer.Option("UTC", "--tz", help="Timezone of days and hours, e.g. America/New_York."),
    output: str = typer.Option(..., "-o", "--output", help="OUT.csv (collected) or a folder (Parquet)."),
    master: str = _MASTER,
) -> None:
    """A visitation audience on Spark; places, sensitive layers and opt-outs come from --db."""
    from .. import spark as gs
    from ..pings import VisitRule
    from ..pings.consent import optout_hashes

    with engine() as eng:
        places = eng.pings.places(**place_options(store, all_stores, places_file, radius, layer, region, campaign))
        rule = VisitRule.make(optouts=optout_hashes(eng.store),
                              **rule_options(start, end, min_dwell, min_days, max_gap, hours, days, tz))
        exclude = None
        if exclude_store:
            exclude = eng.pings.places(stores="all" if exclude_store == ["all"] else list(exclude_store),
                                       radius=radius)
        root = pings or str(eng.pings.root)
    if not Path(root).is_dir():
        from ..errors import SourceError

        raise SourceError(f"no pings at {root!r}; ingest some with `geotarget ingest pings FILE` or pass --pings")
    with _session(master) as spark:
        df = gs.visitors(spark, root, places, rule, exclude=exclude)
        n = _write(df, output)
        metrics = gs.scan_metrics(df) if output.lower().endswith(".csv") else None
    read = f" (read {metrics['files']:,} ping files)" if metrics else ""
    console.print(f"{n:,} device(s) -> {output}{read}")

