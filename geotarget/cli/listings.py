"""`geotarget stores list|near`, `geotarget regions list [LAYER]`, `geotarget columns`: what the database holds."""

from __future__ import annotations

import typer

from ._app import app, console, engine, plain_table

stores_app = typer.Typer(help="List stores, or find the stores near a point.", no_args_is_help=True)
regions_app = typer.Typer(help="List region layers and their regions.", no_args_is_help=True)
app.add_typer(stores_app, name="stores")
app.add_typer(regions_app, name="regions")

_CSV = typer.Option(False, "--csv", help="Print CSV (for scripts) instead of an aligned table.")


def _show(frame, as_csv: bool, empty: str) -> None:
    if as_csv:
        import sys

        frame.to_csv(sys.stdout, index=False)
    elif frame.empty:
        console.print(empty)
    else:
        console.print(plain_table(frame))


@stores_app.command("list")
def stores_list(as_csv: bool = _CSV) -> None:
    """Every store: id, name, latitude and longitude."""
    with engine(read_only=True) as eng:
        frame = eng.stores()
    cols = [c for c in ("store_id", "name", "lat", "lng") if c in frame.columns]
    _show(frame[cols], as_csv, "no stores yet; load some with `geotarget ingest stores FILE`")


@stores_app.command("near")
def stores_near(
    lat: float = typer.Option(..., "--lat", help="Latitude of the point."),
    lng: float = typer.Option(..., "--lng", help="Longitude of the point."),
    radius: str = typer.Option("2mi", "--radius", help="Radius with a unit: 2mi, 3.5km, 500m."),
    limit: int = typer.Option(None, "--limit", metavar="N", help="Show at most N stores, the nearest."),
    as_csv: bool = _CSV,
) -> None:
    """The stores within a radius of a point, nearest first (exact WGS84 distance)."""
    import pandas as pd

    with engine(read_only=True) as eng:
        found = eng.stores_near(lat, lng, radius=radius, limit=limit)
    frame = pd.DataFrame(found, columns=["store_id", "name", "lat", "lng", "distance_m"])
    frame["distance_m"] = frame["distance_m"].round(1)
    _show(frame, as_csv, f"no store within {radius} of ({lat}, {lng})")


@regions_app.command("list")
def regions_list(
    layer: str = typer.Argument(None, help="Region layer; leave out to list the layers."),
    as_csv: bool = _CSV,
) -> None:
    """The regions of a layer (id and name), or the layers and how many regions each holds."""
    import pandas as pd

    with engine(read_only=True) as eng:
        if layer is None:
            layers = eng.layers()
            frame = pd.DataFrame({"layer": layers, "regions": [len(eng.regions(x)) for x in layers]})
            empty = "no region layers yet; load one with `geotarget ingest regions FILE --layer NAME`"
        else:
            frame = pd.DataFrame(eng.regions(layer)[["region_id", "name"]])
            empty = f"layer {layer} has no regions"
    _show(frame, as_csv, empty)


@app.command("columns")
def columns(as_csv: bool = _CSV) -> None:
    """The customer columns and their types: what --where, --column and --metric can name."""
    import pandas as pd

    with engine(read_only=True) as eng:
        types = eng.store.columns("customers")
    frame = pd.DataFrame({"column": list(types), "type": list(types.values())})
    _show(frame, as_csv, "no customer columns")
