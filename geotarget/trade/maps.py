"""Maps of trade areas and Huff models: Folium pages and PNG pictures.

Drawn with geotarget's own map style (:mod:`geotarget.maps.style`,
:mod:`geotarget.maps.png`): coordinates rounded to 6 decimals, Leaflet written
into the page, tiles optional. No customer point or id is drawn. Trade areas
are drawn as merged polygons with their totals; Huff maps draw cells with a
store and a probability (functions of geometry), and only cells holding at
least ``k_min`` customers when the demand is customers.
"""

from __future__ import annotations

import html
import json
from pathlib import Path

import numpy as np
import pandas as pd

__all__: list[str] = []  # internal: drawn through TradeAreas.to_map / HuffResult.to_map and to_png

DEFAULT_TILES = "OpenStreetMap"
#: Categorical colours for stores and shares (matplotlib's tab10, as hex).
PALETTE = ["#1f77b4", "#ff7f0e", "#2ca02c", "#d62728", "#9467bd", "#8c564b", "#e377c2", "#7f7f7f",
           "#bcbd22", "#17becf"]


def _store_markers(stores, *, popup=None):
    from ..maps.geometry import COORD_DECIMALS
    from ..maps.style import StoreMarkers

    items = [{"lat": round(float(r.lat), COORD_DECIMALS), "lng": round(float(r.lng), COORD_DECIMALS),
              "id": str(r.store_id),
              "popup": popup(r) if popup else f"<b>{html.escape(str(r.store_id))}</b> {html.escape(_text(r))}"}
             for r in stores.itertuples(index=False)]
    return StoreMarkers(items, radius=6, color="#1f4e9c", weight=3, fillColor="#ffffff", fillOpacity=1.0,
                        className="gt-store")  # pixels: a marker, not a distance


def _text(row) -> str:
    name = getattr(row, "name", None)
    return "" if name is None or pd.isna(name) else str(name)


def _with_stores(m, stores):
    """Add the stores as a layer, and the layer control; return the map."""
    import folium

    group = folium.FeatureGroup(name="Stores")
    _store_markers(stores).add_to(group)
    group.add_to(m)
    folium.LayerControl(collapsed=False).add_to(m)
    return m


def _num(v, digits: int = 4):
    return None if v is None or not np.isfinite(v) else round(float(v), digits)


def trade_area_map(ta, *, tiles: str | None = DEFAULT_TILES, opacity: float = 0.35, k_min: int = 10,
                   inline_js: bool = True):
    """Trade-area polygons (a layer per share, widest underneath) and the stores.

    Areas holding fewer than ``k_min`` customers are not drawn.

    Polygons carry the CSS class ``gt-tradearea``; tooltips give store, share,
    customers, area, population and penetration.
    """
    import folium
    import shapely

    from ..maps.style import geojson_layer, new_map

    gdf = ta.shown_areas(k_min)
    geoms = [g for g in gdf.geometry if not g.is_empty]
    if geoms:
        bounds = shapely.total_bounds(np.asarray(geoms, dtype=object))
    else:
        bounds = (ta.stores["lng"].min() - 0.01, ta.stores["lat"].min() - 0.01,
                  ta.stores["lng"].max() + 0.01, ta.stores["lat"].max() + 0.01)
    m = new_map(bounds, tiles=tiles, inline_js=inline_js)
    for k, s in sorted(enumerate(ta.shares), key=lambda t: -t[1]):
        part = gdf[(gdf["share"] == s) & ~gdf.geometry.is_empty]
        feats = [{"type": "Feature", "properties": {
            "store_id": str(r.store_id), "share": f"{s:.0%}", "customers": int(r.customers),
            "area_km2": _num(r.area_km2, 3), "population": _num(r.population, 0),
            "penetration": _num(r.penetration)}, "geometry": json.loads(shapely.to_geojson(r.geometry))}
            for r in part.itertuples(index=False)]
        group = folium.FeatureGroup(name=f"{s:.0%} trade areas")
        geojson_layer(feats, color=PALETTE[k % len(PALETTE)], class_name="gt-tradearea",
                      fields=["store_id", "share", "customers", "area_km2", "population", "penetration"],
                      aliases=["store", "share of customers", "customers", "area (km²)", "population",
                               "penetration"], opacity=opacity, weight=1.5).add_to(group)
        group.add_to(m)
    return _with_stores(m, ta.stores)


def _shown_cells(model, k_min: int):
    return model.floor_mask(k_min)


def _cell_features(model, keep, props: dict) -> list[dict]:
    from ..maps.geometry import cells_to_rings

    rings = cells_to_rings(model.cells["cell"].to_numpy(dtype="uint64")[keep])
    feats = []
    for i, ring in enumerate(rings):
        feats.append({"type": "Feature", "properties": {k: v[i] for k, v in props.items()},
                      "geometry": {"type": "Polygon", "coordinates": [ring.tolist()]}})
    return feats


def _store_colours(model) -> dict:
    return {sid: PALETTE[i % len(PALETTE)] for i, sid in enumerate(model.stores["store_id"].astype(str))}


def dominant_map(model, *, tiles: str | None = DEFAULT_TILES, opacity: float = 0.6, k_min: int = 10,
                 inline_js: bool = True):
    """Each cell coloured by the store most likely to draw it (class ``gt-dominant``), and the stores."""
    import folium

    from ..maps.style import geojson_layer, new_map

    keep = _shown_cells(model, k_min)
    cells = model.cells.loc[keep]
    m = new_map(_bounds(model, keep), tiles=tiles, inline_js=inline_js)
    colours = _store_colours(model)
    feats = _cell_features(model, keep, {"h3": cells["h3"].tolist(),
                                         "store_id": cells["dominant_store"].astype(str).tolist(),
                                         "probability": [_num(v, 3) for v in cells["dominant_probability"]]})
    group = folium.FeatureGroup(name="Most likely store per cell")
    geojson_layer(feats, color=lambda f: colours[f["properties"]["store_id"]], class_name="gt-dominant",
                  fields=["h3", "store_id", "probability"], aliases=["cell", "most likely store", "probability"],
                  opacity=opacity, weight=0.3).add_to(group)
    group.add_to(m)
    return _with_stores(m, model.stores)


def probability_map(model, store_id: str, *, tiles: str | None = DEFAULT_TILES, opacity: float = 0.6,
                    k_min: int = 10, palette: str = "YlGnBu_09", inline_js: bool = True):
    """One store's Huff probability per cell (class ``gt-probability``), with a legend, and the stores."""
    import folium

    from ..maps.style import colormap, geojson_layer, new_map

    surface = model.store_probabilities(store_id)
    keep = _shown_cells(model, k_min)
    prob = surface["probability"].to_numpy()[keep]
    m = new_map(_bounds(model, keep), tiles=tiles, inline_js=inline_js)
    cm = colormap(np.append(prob, [0.0, 1.0]), scale="linear", palette=palette,
                  caption=f"probability of patronising {store_id} (Huff, alpha={model.alpha:g}, beta={model.beta:g})")
    feats = _cell_features(model, keep, {"h3": surface["h3"].to_numpy()[keep].tolist(),
                                         "probability": [_num(v, 3) for v in prob]})
    group = folium.FeatureGroup(name=f"Probability of {store_id}")
    geojson_layer(feats, color=lambda f: cm(f["properties"]["probability"]), class_name="gt-probability",
                  fields=["h3", "probability"], aliases=["cell", "probability"], opacity=opacity,
                  weight=0.3).add_to(group)
    group.add_to(m)
    cm.add_to(m)
    return _with_stores(m, model.stores)


def _bounds(model, keep):
    lat = np.append(model.cells["lat"].to_numpy()[keep], model.stores["lat"].to_numpy())
    lng = np.append(model.cells["lng"].to_numpy()[keep], model.stores["lng"].to_numpy())
    if lat.size == 0:
        return (-180.0, -85.0, 180.0, 85.0)
    return (float(lng.min()) - 0.005, float(lat.min()) - 0.005, float(lng.max()) + 0.005, float(lat.max()) + 0.005)


def _figure(bounds, title: str):
    """A matplotlib figure and axes fitted to ``bounds``, as geotarget's other PNGs draw them."""
    from ..maps.png import _axes  # the PNG module's own layout (Web Mercator), shared rather than copied

    return _axes(bounds, title, "")


def _stores_png(ax, stores) -> None:
    from ..maps.png import _xy

    x, y = _xy(stores["lat"], stores["lng"])
    ax.scatter(x, y, s=25, c="white", edgecolors="#1f4e9c", linewidths=1.5, zorder=5)


def trade_area_png(ta, path: Path, *, k_min: int = 10, dpi: int = 120, title: str | None = None) -> Path:
    """A PNG of the trade areas (a colour per share) and the stores."""
    import shapely
    from matplotlib.patches import Patch

    gdf = ta.shown_areas(k_min)
    gdf = gdf[~gdf.geometry.is_empty]
    bounds = shapely.total_bounds(np.asarray(gdf.geometry, dtype=object)) if len(gdf) else \
        (ta.stores["lng"].min() - 0.01, ta.stores["lat"].min() - 0.01,
         ta.stores["lng"].max() + 0.01, ta.stores["lat"].max() + 0.01)
    fig, ax = _figure(bounds, title or f"Trade areas ({', '.join(f'{s:.0%}' for s in ta.shares)} of customers), "
                                       f"res {ta.res}")
    handles = []
    for k, s in sorted(enumerate(ta.shares), key=lambda t: -t[1]):
        part = gdf[gdf["share"] == s]
        colour = PALETTE[k % len(PALETTE)]
        if len(part):
            part.to_crs("EPSG:3857").plot(ax=ax, facecolor=colour, edgecolor=colour, linewidth=1.0, alpha=0.35)
        handles.append(Patch(facecolor=colour, edgecolor=colour, alpha=0.35, label=f"{s:.0%}"))
    _stores_png(ax, ta.stores)
    ax.legend(handles=handles, loc="upper right", fontsize=8, title="share of customers")
    fig.savefig(path, dpi=dpi, bbox_inches="tight")
    return path


def huff_png(model, path: Path, *, store_id: str | None = None, k_min: int = 10, dpi: int = 120,
             title: str | None = None) -> Path:
    """A PNG of the dominant store per cell, or of one store's probability surface."""
    import geopandas as gpd
    import matplotlib
    from matplotlib.cm import ScalarMappable
    from matplotlib.colors import Normalize

    from ..maps.geometry import cells_to_polygons

    keep = _shown_cells(model, k_min)
    cells = gpd.GeoSeries(cells_to_polygons(model.cells["cell"].to_numpy(dtype="uint64")[keep]), crs="EPSG:4326")
    params = f"Huff, alpha={model.alpha:g}, beta={model.beta:g}"
    if store_id is None:
        colours = _store_colours(model)
        faces = [colours[s] for s in model.cells["dominant_store"].astype(str).to_numpy()[keep]]
        head = title or f"Most likely store per res-{model.res} cell ({params})"
    else:
        cmap = matplotlib.colormaps["YlGnBu"]
        faces = [cmap(v) for v in model.store_probabilities(store_id)["probability"].to_numpy()[keep]]
        head = title or f"Probability of patronising {store_id} ({params})"
    fig, ax = _figure(_bounds(model, keep), head)
    if len(cells):
        cells.to_crs("EPSG:3857").plot(ax=ax, color=faces, edgecolor=faces, linewidth=0.2, alpha=0.8)
    _stores_png(ax, model.stores)
    if store_id is not None:
        fig.colorbar(ScalarMappable(norm=Normalize(0, 1), cmap=cmap), ax=ax, shrink=0.7).set_label("probability")
    fig.savefig(path, dpi=dpi, bbox_inches="tight")
    return path
