"""`geotarget heatmap ...` and `geotarget map coverage ...`."""

from __future__ import annotations

from pathlib import Path

import typer

from geotarget.errors import InvalidInputError
from geotarget.maps.labels import unit_of
from geotarget.maps.metric import DEFAULT_K_MIN

from ._app import app, console, engine, output_path, shown

map_app = typer.Typer(help="Maps of stores and what their rings cover.", no_args_is_help=True)
app.add_typer(map_app, name="map")

# options shared by both commands
_K_MIN = typer.Option(None, "--k-min", show_default=False, help=(
    "Hide cells or regions with fewer customers [default: the database policy's k_min, "
    f"{DEFAULT_K_MIN} unless changed]."))
_NO_FLOOR = typer.Option(False, "--no-privacy-floor",
                         help="Allow --k-min below 2, which turns the k-anonymity floor off (internal use only).")
_SCALE = typer.Option("quantile", "--scale", help="Colour scale: quantile or linear.")
_TILES = typer.Option("OpenStreetMap", "--tiles",
                      help="folium tiles, e.g. OpenStreetMap; 'none' draws the vector layers alone (offline).")
_PNG = typer.Option(None, "--png", help="Also write a static PNG picture.")
_CDN = typer.Option(False, "--cdn", help="Link Leaflet and d3 from their CDNs instead of writing them into the page "
                    "(a lighter file that needs the internet to open).")


def _tiles(value: str) -> str | None:
    return None if value.strip().lower() in ("none", "") else value


def _written(path: Path) -> None:
    console.print(f"wrote {shown(path)} ({path.stat().st_size / 1e6:.2f} MB)")


@app.command("heatmap")
def heatmap(
    output: str = typer.Option(..., "-o", "--output", help="HTML map to write."),
    res: int = typer.Option(8, "--res", help="H3 resolution of the cells, 0 to 15."),
    metric: list[str] = typer.Option(
        ["count"], "--metric",
        help="count, sum:COL, mean:COL, median:COL or penetration:LAYER:COL; repeat for a layer per metric."),
    region_layer: str = typer.Option(None, "--region-layer", help="Aggregate per region of this layer instead."),
    k_min: int | None = _K_MIN,
    no_privacy_floor: bool = _NO_FLOOR,
    scale: str = _SCALE,
    tiles: str = _TILES,
    cdn: bool = _CDN,
    cells_out: str = typer.Option(None, "--cells-out", help="Also write the aggregates: .csv, .parquet, .geojson."),
    png: str = _PNG,
    store: list[str] = typer.Option(None, "--store", help="Only the audience of this store (repeat; with --radius)."),
    all_stores: bool = typer.Option(False, "--all-stores", help="Only the audience of every store (with --radius)."),
    radius: str = typer.Option(None, "--radius", help="Audience radius with a unit, e.g. 2mi."),
    where: list[str] = typer.Option(None, "--where", metavar="FILTER",
                                    help="Segment filter, e.g. tier=gold (repeat; AND-ed); without --radius, the "
                                         "segment's customers citywide."),
) -> None:
    """Aggregate customers per H3 cell (or region) and draw a heatmap; cells under --k-min never appear."""
    from geotarget.maps.folium import heatmap_map, save_html

    metrics = list(metric) or ["count"]
    if len(metrics) > 1 and (cells_out or png):
        raise InvalidInputError("--cells-out and --png take a single --metric; run once per metric")
    if store and all_stores:
        raise InvalidInputError("give --store or --all-stores, not both")
    if (store or all_stores) and not radius:
        raise InvalidInputError("an audience heatmap needs --radius with a unit, e.g. --radius 2mi")
    if radius and not (store or all_stores):
        raise InvalidInputError("--radius needs --store S001 (repeat for several) or --all-stores")
    with engine(read_only=True) as eng:
        audience = None
        if radius or where:  # a store audience, or a segment citywide (--where alone)
            geography = {"stores": "all" if all_stores else list(store), "radius": radius} if radius else {}
            audience = eng.audience(where=list(where) if where else None, **geography)
            console.print(f"audience: {len(audience):,} customers ({audience.description})")
        results = [eng.heatmap(res, m, audience=audience, region_layer=region_layer,
                               k_min="policy" if k_min is None else k_min,
                               allow_no_floor=no_privacy_floor) for m in metrics]
        outlines = _outlines(eng) if png else None
    for r in results:
        console.print(f"heatmap: {r.summary()}")
        if r.unassigned_customers:
            console.print(f"  {r.unassigned_customers:,} customers fall outside every region of {r.layer}")
    m = heatmap_map(results if len(results) > 1 else results[0], scale=scale, tiles=_tiles(tiles),
                    inline_js=not cdn)
    _written(save_html(m, output_path(output)))
    if cells_out:
        _written(results[0].save(output_path(cells_out)))
    if png:
        _written(results[0].to_png(output_path(png), scale=scale, tiles=_png_tiles(tiles), context=outlines,
                                   unit=unit_of(radius) if radius else None))


@map_app.command("coverage")
def coverage(
    output: str = typer.Option(..., "-o", "--output", help="HTML map to write."),
    radius: str = typer.Option(..., "--radius", help="Ring radius with a unit, e.g. 2mi, 3km."),
    store: list[str] = typer.Option(None, "--store", help="Store id (repeat for several)."),
    all_stores: bool = typer.Option(False, "--all-stores", help="Every store."),
    res: int = typer.Option(None, "--res", help="H3 resolution of the cells (default: about 150 cells per ring)."),
    k_min: int | None = _K_MIN,
    no_privacy_floor: bool = _NO_FLOOR,
    scale: str = _SCALE,
    tiles: str = _TILES,
    cdn: bool = _CDN,
    png: str = _PNG,
) -> None:
    """Map store rings, audience density, overlaps and the customers no store reaches."""
    from geotarget.maps.folium import coverage_map, save_html

    if store and all_stores:
        raise InvalidInputError("give --store or --all-stores, not both")
    if not store and not all_stores:
        raise InvalidInputError("name the stores: --store S001 (repeat for several) or --all-stores")
    with engine(read_only=True) as eng:
        cov = eng.coverage("all" if all_stores else list(store), radius, res=res,
                           k_min=eng.policy().k_min if k_min is None else k_min,
                           allow_no_floor=no_privacy_floor)
        outlines = _outlines(eng) if png else None
    console.print(f"coverage: {cov.summary()}")
    _written(save_html(coverage_map(cov, scale=scale, tiles=_tiles(tiles), inline_js=not cdn), output_path(output)))
    if png:
        _written(cov.to_png(output_path(png), scale=scale, tiles=_png_tiles(tiles), context=outlines))


def _outlines(eng) -> list:
    """Every loaded region outline: the context of an offline PNG."""
    return [g for layer in eng.layers() for g in eng.regions(layer).geometry]


def _png_tiles(tiles: str):
    """The PNG basemap: none when the HTML map has none, else the standard provider."""
    from geotarget.maps.png import DEFAULT_PNG_TILES

    return None if _tiles(tiles) is None else DEFAULT_PNG_TILES
