"""`geotarget trade-area`, `geotarget huff` and `geotarget sites`: trade areas and site planning."""

from __future__ import annotations

from pathlib import Path

import typer

from ..errors import InvalidInputError
from ._app import app, console, engine, output_path

_RES = typer.Option(8, "--res", help="H3 resolution of the cells, 5 to 11.")
_BRAND_COL = typer.Option(None, "--brand-col", help="Store column naming the brand; other brands are competitors.")
_BRAND = typer.Option(None, "--brand", help="The brand whose stores take customers (with --brand-col).")
_ATTRACT = typer.Option(None, "--attract-col", help="Store column of attractiveness, e.g. sqft (1 when omitted).")
_ALPHA = typer.Option(1.0, "--alpha", help="Huff exponent of attractiveness.")
_BETA = typer.Option(2.0, "--beta", help="Huff exponent of distance decay.")
_LAYER = typer.Option(None, "--region-layer", help="Region layer holding population (with --population-col).")
_POP = typer.Option(None, "--population-col", help="Population column of --region-layer.")
_TILES = typer.Option("OpenStreetMap", "--tiles", help="folium tiles; 'none' draws the vector layers alone.")


def _written(path: Path) -> None:
    console.print(f"wrote {path} ({path.stat().st_size / 1e6:.2f} MB)")


def _tiles(value: str) -> str | None:
    return None if value.strip().lower() in ("none", "") else value


def _pictures(result, map_out: str | None, png: str | None, tiles: str) -> None:
    """Write the result's HTML map and PNG picture when asked for."""
    if map_out:
        path = output_path(map_out)
        result.to_map(tiles=_tiles(tiles)).save(str(path))
        _written(path)
    if png:
        _written(result.to_png(output_path(png)))


@app.command("trade-area")
def trade_area(
    output: str = typer.Option(..., "-o", "--output", help="Polygons to write: .geojson or .parquet (GeoParquet)."),
    store: list[str] = typer.Option(None, "--store", help="Store id (repeat for several; every store when omitted)."),
    share: list[float] = typer.Option([0.7], "--share", help="Share of the store's customers, e.g. 0.7 (repeat)."),
    res: int = _RES,
    home_store_col: str = typer.Option(None, "--home-store-col",
                                       help="Customer column naming each customer's store (default: nearest store)."),
    brand_col: str = _BRAND_COL,
    brand: str = _BRAND,
    region_layer: str = _LAYER,
    population_col: str = _POP,
    smooth: bool = typer.Option(False, "--smooth", help="Smooth the polygons (fills notches between cells)."),
    map_out: str = typer.Option(None, "--map", help="Also write an HTML map."),
    png: str = typer.Option(None, "--png", help="Also write a PNG picture."),
    tiles: str = _TILES,
) -> None:
    """The smallest set of cells nearest each store that holds a share of its customers, as polygons."""
    with engine(read_only=True) as eng:
        ta = eng.trade_areas(list(store) if store else None, share=list(share), res=res,
                             home_store_col=home_store_col, brand_col=brand_col, brand=brand,
                             region_layer=region_layer, population_col=population_col, smooth=smooth)
        console.print(f"trade areas: {ta.summary()} (customers by {ta.assignment})")
    _written(ta.save(output_path(output)))
    _pictures(ta, map_out, png, tiles)


@app.command("huff")
def huff(
    output: str = typer.Option(..., "-o", "--output",
                               help="Probabilities per cell and store: .parquet or .csv; .geojson for the cells."),
    res: int = _RES,
    brand_col: str = _BRAND_COL,
    attract_col: str = _ATTRACT,
    alpha: float = _ALPHA,
    beta: float = _BETA,
    calibrate: str = typer.Option(None, "--calibrate", metavar="COL",
                                  help="Fit alpha and beta first from this customer column of chosen stores."),
    spend_col: str = typer.Option(None, "--spend-col", help="Numeric customer column for expected spend."),
    demand: str = typer.Option("customers", "--demand", help="customers, or population (needs --region-layer)."),
    region_layer: str = _LAYER,
    population_col: str = _POP,
    min_probability: float = typer.Option(0.0, "--min-probability", help="Leave out smaller probabilities."),
    k_min: int = typer.Option(10, "--k-min", help="Leave out cells with fewer customers (the k-anonymity floor)."),
    stores_out: str = typer.Option(None, "--stores-out", help="Also write expected customers and spend per store."),
    map_out: str = typer.Option(None, "--map", help="Also write an HTML map of the most likely store per cell."),
    png: str = typer.Option(None, "--png", help="Also write a PNG of the most likely store per cell."),
    tiles: str = _TILES,
) -> None:
    """The Huff gravity model: the probability that each cell patronises each store."""
    with engine(read_only=True) as eng:
        if calibrate:
            fit = eng.calibrate_huff(home_store_col=calibrate, attract_col=attract_col, brand_col=brand_col)
            console.print(f"calibrated: {fit.summary()}")
            beta = fit.beta
            alpha = fit.alpha if fit.alpha == fit.alpha else 0.0  # NaN: attractiveness is constant
        model = eng.huff(res=res, attract_col=attract_col, brand_col=brand_col, alpha=alpha, beta=beta,
                         spend_col=spend_col, demand=demand, region_layer=region_layer,
                         population_col=population_col)
    console.print(f"huff: {model.summary()}")
    _written(model.save(output_path(output), min_probability=min_probability, k_min=k_min))
    if stores_out:
        out = output_path(stores_out)
        if out.suffix.lower() == ".parquet":
            model.stores.to_parquet(out, index=False)
        else:
            model.stores.to_csv(out, index=False)
        _written(out)
    _pictures(model, map_out, png, tiles)


@app.command("sites")
def sites(
    candidates: str = typer.Option(..., "--candidates", help="CSV or Parquet of candidate sites: lat, lng, site_id."),
    output: str = typer.Option(..., "-o", "--output", help="Ranking to write: .csv or .parquet."),
    pick: int = typer.Option(None, "--pick", help="Also choose this many sites covering the most new demand."),
    radius: str = typer.Option("2mi", "--radius", help="Coverage radius for --pick, with a unit."),
    res: int = _RES,
    brand_col: str = _BRAND_COL,
    brand: str = _BRAND,
    attract_col: str = _ATTRACT,
    attractiveness: str = typer.Option(None, "--attractiveness",
                                       help="Candidates' attractiveness: a number or a candidate column."),
    alpha: float = _ALPHA,
    beta: float = _BETA,
) -> None:
    """Rank candidate sites by net gain (captured minus cannibalised), and optionally pick k of them."""
    from ..units import parse_distance

    attract: float | str | None = attractiveness
    if attractiveness is not None:
        try:
            attract = float(attractiveness)
        except ValueError:
            attract = attractiveness
    with engine(read_only=True) as eng:
        ranking = eng.rank_sites(candidates, pick=pick, radius_m=parse_distance(radius), res=res,
                                 brand_col=brand_col, brand=brand, attract_col=attract_col, alpha=alpha, beta=beta,
                                 attractiveness=attract)
    out = output_path(output)
    frame = ranking.assign(cannibalised_from=ranking["cannibalised_from"].map(
        lambda d: ";".join(f"{k}:{v:.2f}" for k, v in sorted(d.items(), key=lambda kv: -kv[1]))))
    if out.suffix.lower() == ".parquet":
        frame.to_parquet(out, index=False)
    elif out.suffix.lower() == ".csv":
        frame.to_csv(out, index=False)
    else:
        raise InvalidInputError(f"cannot write {str(out)!r}: use .csv or .parquet")
    best = ranking.iloc[0]
    console.print(f"sites: {len(ranking)} candidates; best {best['site_id']} (net gain {best['net_gain']:,.1f}, "
                  f"captured {best['captured_demand']:,.1f}, cannibalised {best['cannibalised']:,.1f})")
    if pick:
        console.print(f"picked by maximal covering within {radius}: "
                      f"{', '.join(ranking.loc[ranking['chosen'], 'site_id'])}")
    _written(out)
