"""Folium maps: hexagon heatmaps, neighborhood choropleths, store coverage.

Maps draw aggregates only: hexagons or regions that passed the k-anonymity
floor of :mod:`geotarget.maps.heatmap`, store locations and rings. No customer
point or id is ever written into a map, and every coordinate is rounded to 6
decimals. Vector layers do not depend on tiles: pass ``tiles=None`` for a
map that renders with no tile server.

A page is self-contained by default: Leaflet is written into it from the
installed package ``xstatic-leaflet`` (and d3 from ``xstatic-d3`` when a
branca legend is added), so a saved map opens with no internet. geotarget's
own legends are plain HTML: quantile classes take equal steps, with units,
and a hatched key for the areas the k floor hides. ``inline_js=False`` links their CDNs instead, for a
page about half a megabyte lighter.

folium, branca and matplotlib are imported only when a map is made.
"""

from __future__ import annotations

import html
from pathlib import Path

from geotarget.maps.geometry import extent

__all__ = ["DEFAULT_TILES", "coverage_map", "heatmap_map", "save_html"]

#: Tiles used unless ``tiles=None`` (offline) or another folium tile name is given.
DEFAULT_TILES = "OpenStreetMap"


def heatmap_map(result, *, scale: str = "quantile", bins: int = 7, palette: str = "YlOrRd_09",
                tiles: str | None = DEFAULT_TILES, opacity: float = 0.7, inline_js: bool = True):
    """Draw one heatmap result, or several as layers to switch between.

    Parameters
    ----------
    result : HeatmapResult or list of HeatmapResult
        Cell results draw hexagons; region results draw the regions (a
        choropleth). Several results become base layers of a layer control,
        each with its own legend, shown with its layer.
    scale : {"quantile", "linear"}
        Colour steps at quantiles of the values, or a linear ramp.
    bins : int
        Number of quantile steps.
    palette : str
        A branca palette name, e.g. ``YlOrRd_09``, ``viridis``, ``Blues_09``.
    tiles : str or None
        folium tiles; None draws the vector layers alone.
    opacity : float
        Fill opacity.
    inline_js : bool
        Write Leaflet and d3 into the page (it opens offline); False links
        their CDNs.

    Returns
    -------
    folium.Map
        Hexagons carry the CSS class ``gt-hex``, regions ``gt-region``;
        tooltips show the value and the number of customers.

    Examples
    --------
    >>> import geotarget, pandas as pd
    >>> eng = geotarget.open(":memory:")
    >>> _ = eng.ingest_customers(pd.DataFrame({"customer_id": [f"cust-{i:03d}" for i in range(12)],
    ...                                        "lat": [40.758] * 12, "lng": [-73.9855] * 12}))
    >>> html = heatmap_map(eng.heatmap(8), tiles=None).get_root().render()
    >>> "882a100d67fffff" in html, "cust-001" in html, "<script src=" in html
    (True, False, False)
    """
    import folium

    from geotarget.maps.labels import hidden_text
    from geotarget.maps.style import Hatches, Legend, LegendSwitch, colormap, hidden_layer, new_map, value_layer

    results = list(result) if isinstance(result, (list, tuple)) else [result]
    m = new_map(extent(results), tiles=tiles, inline_js=inline_js)
    several = len(results) > 1
    names = []
    for i, r in enumerate(results):
        name = str(r.metric.label)
        while name in names:
            name += " "
        names.append(name)
        cm = colormap(r.frame["value"].to_numpy(dtype="float64"), scale=scale, bins=bins, palette=palette,
                      caption=r.caption)
        value_layer(r, cm, name=name, opacity=opacity, show=(i == 0), overlay=not several,
                    class_name="gt-hex" if r.level == "cell" else "gt-region").add_to(m)
        Legend(cm, r.caption, hidden=hidden_text(r.k_min), layer=name).add_to(m)
    hidden = results[0]
    if hidden.hidden is not None and len(hidden.hidden):
        hidden_layer(hidden).add_to(m)
    Hatches().add_to(m)
    folium.LayerControl(collapsed=True).add_to(m)  # an icon until hovered: it never covers the map
    if several:
        LegendSwitch(names).add_to(m)
    return m


def _store_popup(row, k_min: int, radius: str) -> str:
    n = int(row.customers)
    size = f"{n:,} customers" if n >= k_min else f"fewer than {k_min} customers"
    return (f"<b>{html.escape(str(row.store_id))}</b> {html.escape(str(row.name or ''))}<br>"
            f"audience within {html.escape(radius)}: {size}")


def coverage_map(cov, *, tiles: str | None = DEFAULT_TILES, scale: str = "quantile", bins: int = 7,
                 palette: str = "YlOrRd_09", opacity: float = 0.6, inline_js: bool = True):
    """Draw a :class:`~geotarget.maps.coverage.Coverage`: stores, rings, density, overlaps, uncovered cells.

    Layers (each in the layer control, CSS class in brackets): uncovered
    customers per cell in grey (``gt-uncovered``), audience density per cell
    (``gt-hex``), cells hidden by the floor hatched (``gt-hidden``), ring
    overlaps cross-hatched in purple, a colour no heat palette uses
    (``gt-overlap``), the geodesic rings (``gt-ring``) and the stores
    (``gt-store``) with popups giving id, name and audience size. Distances
    are in the unit the radius was given in; counts under the floor read
    "fewer than k".
    ``tiles``, ``scale``, ``bins``, ``palette``, ``opacity`` and
    ``inline_js`` are as in :func:`heatmap_map`.

    Returns
    -------
    folium.Map
    """
    import folium
    import shapely

    from geotarget.maps.geometry import COORD_DECIMALS, round_geometry
    from geotarget.maps.labels import distance_text, hidden_text
    from geotarget.maps.style import (
        OVERLAP_COLOR,
        Hatches,
        Legend,
        StoreMarkers,
        colormap,
        features,
        geojson_layer,
        hidden_layer,
        new_map,
        value_layer,
    )

    bounds = extent([cov.density, cov.uncovered])
    if len(cov.rings):
        rb = shapely.total_bounds(cov.rings)
        bounds = (min(bounds[0], rb[0]), min(bounds[1], rb[1]), max(bounds[2], rb[2]), max(bounds[3], rb[3])) \
            if len(cov.density.frame) or len(cov.uncovered.frame) else tuple(rb)
    m = new_map(bounds, tiles=tiles, inline_js=inline_js)
    k = cov.k_min
    radius = distance_text(cov.radius_m, cov.unit)

    uncovered = folium.FeatureGroup(name="Customers no store reaches")
    feats = features(cov.uncovered)
    for f in feats:
        del f["properties"]["value"]  # the count again
    geojson_layer(feats, color="#7f7f7f", class_name="gt-uncovered", fields=["h3", "customers"],
                  aliases=["cell", "uncovered customers"], opacity=0.35, weight=0.3).add_to(uncovered)
    uncovered.add_to(m)

    caption = cov.caption
    cm = colormap(cov.density.frame["value"].to_numpy(dtype="float64"), scale=scale, bins=bins, palette=palette,
                  caption=caption)
    value_layer(cov.density, cm, name="Customers within reach", opacity=opacity).add_to(m)
    hidden_layer(cov.density).add_to(m)

    def shared_text(n: int) -> str:
        return f"{n:,}" if n >= k else f"fewer than {k}"

    overlap_feats = [
        {"type": "Feature", "id": str(i),
         "properties": {"stores": f"{a} + {b}", "shared": shared_text(int(n))},
         "geometry": shapely.geometry.mapping(g)}
        for i, (a, b, n, g) in enumerate(zip(cov.overlaps["store_a"], cov.overlaps["store_b"],
                                             cov.overlaps["shared_customers"], round_geometry(cov.overlap_geometry)))
    ]
    group = folium.FeatureGroup(name="Where rings overlap")
    geojson_layer(overlap_feats, color=OVERLAP_COLOR, fill="url(#gt-cross)", class_name="gt-overlap",
                  fields=["stores", "shared"], aliases=["overlap", "shared customers"], opacity=0.8, weight=2.0,
                  dash="6 4").add_to(group)
    group.add_to(m)

    ring_feats = [
        {"type": "Feature", "id": str(i), "properties": {"store_id": str(s), "radius": radius},
         "geometry": shapely.geometry.mapping(g)}
        for i, (s, g) in enumerate(zip(cov.stores["store_id"], cov.rings))
    ]
    group = folium.FeatureGroup(name=f"{radius} around each store")
    geojson_layer(ring_feats, color="#1f4e9c", class_name="gt-ring", fields=["store_id", "radius"],
                  aliases=["store", "radius"], opacity=0.0, weight=2.0).add_to(group)
    group.add_to(m)

    group = folium.FeatureGroup(name="Stores")
    StoreMarkers([{"lat": round(float(r.lat), COORD_DECIMALS), "lng": round(float(r.lng), COORD_DECIMALS),
                   "id": str(r.store_id), "popup": _store_popup(r, k, radius)}
                  for r in cov.stores.itertuples(index=False)],
                 radius=6, color="#1f4e9c", weight=3, fillColor="#ffffff", fillOpacity=1.0,
                 className="gt-store").add_to(group)  # pixels: a marker, not a distance; the ring is the distance
    group.add_to(m)
    Legend(cm, caption, hidden=hidden_text(k),
           keys=[("gt-cross", "where rings overlap"), ("gt-grey", f"customers no store reaches ({k} or more)")]
           ).add_to(m)
    Hatches().add_to(m)
    folium.LayerControl(collapsed=True).add_to(m)  # an icon until hovered: it never covers the map
    return m


def save_html(m, path: str | Path) -> Path:
    """Write a folium map as one HTML file; return its path.

    A map made here needs no other file: Leaflet and d3 are inside it unless
    it was made with ``inline_js=False``.
    """
    path = Path(path)
    m.save(str(path))
    return path
