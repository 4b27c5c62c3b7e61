"""The look of geotarget's maps: base map, colour scales, GeoJSON layers.

Only aggregates reach this module: a feature is a hexagon or a region
polygon with its ``customers`` and ``value``; coordinates are rounded to 6
decimals by :mod:`geotarget.maps.geometry`. folium and branca are imported
here, so this module is only imported when a map is made.
"""

from __future__ import annotations

import json
import math

import branca.colormap as bcm
import folium
import numpy as np
from branca.element import Element, MacroElement, Template
from folium.utilities import JsCode

from geotarget.errors import InvalidInputError
from geotarget.maps.assets import LEAFLET_CSS, LEAFLET_JS, use_assets
from geotarget.maps.geometry import COORD_DECIMALS, cells_to_rings, round_geometry

__all__ = ["colormap", "features", "geojson_layer", "LegendSwitch", "new_map", "SCALES", "StoreMarkers", "value_layer"]

#: Scripts and styles a geotarget map needs: Leaflet only (branca adds d3 for
#: legends). folium's defaults also pull jQuery, Bootstrap and Font Awesome,
#: which these maps never use. :mod:`geotarget.maps.assets` writes them inline.
_JS = [("leaflet", LEAFLET_JS)]
_CSS = [("leaflet_css", LEAFLET_CSS)]

SCALES = ("quantile", "linear")


def new_map(bounds, *, tiles: str | None, inline_js: bool = True) -> folium.Map:
    """An empty map fitted to ``bounds`` = (min_lng, min_lat, max_lng, max_lat).

    The tile layer, when there is one, is not in the layer control, so that
    switching metrics never switches the tiles off. With ``inline_js`` the
    page carries Leaflet and d3 itself; otherwise it links their CDNs.
    """
    minx, miny, maxx, maxy = (round(float(b), COORD_DECIMALS) for b in bounds)
    m = folium.Map(location=[round((miny + maxy) / 2, COORD_DECIMALS), round((minx + maxx) / 2, COORD_DECIMALS)],
                   tiles=None, control_scale=True)
    m.default_js = list(_JS)
    m.default_css = list(_CSS)
    use_assets(m, inline=inline_js)
    if tiles:
        folium.TileLayer(tiles, control=False).add_to(m)
    m.get_root().header.add_child(Element(_LEGEND_CSS), name="gt_legend_css")
    m.fit_bounds([[miny, minx], [maxy, maxx]])
    return m


_LEGEND_CSS = """<style>
.legend.leaflet-control:not(:empty) {background: rgba(255, 255, 255, 0.85); padding: 2px 6px 0 0;
  border-radius: 4px; box-shadow: 0 1px 4px rgba(0, 0, 0, 0.3);}
.legend.leaflet-control .caption {font-size: 11px;}
</style>"""


def _ticks(index, min_gap: float) -> list[float]:
    """Tick values at least ``min_gap`` apart, always keeping both ends."""
    ticks = [float(index[0])]
    for v in index[1:-1]:
        if v - ticks[-1] >= min_gap and index[-1] - v >= min_gap:
            ticks.append(float(v))
    return ticks + [float(index[-1])]


def colormap(values, *, scale: str = "quantile", bins: int = 7, palette: str = "YlOrRd_09",
             caption: str = "") -> bcm.ColorMap:
    """A branca colour scale over ``values``: ``quantile`` steps or ``linear``.

    Examples
    --------
    >>> cm = colormap([1, 2, 3, 4, 100], scale="quantile", bins=4, caption="customers")
    >>> cm(2.5) != cm(100)
    True
    """
    if scale not in SCALES:
        raise InvalidInputError(f"scale must be one of {', '.join(SCALES)}, got {scale!r}")
    if not hasattr(bcm.linear, palette):
        raise InvalidInputError(f"unknown palette {palette!r}; e.g. YlOrRd_09, viridis, Blues_09")
    base = getattr(bcm.linear, palette)
    vals = np.asarray([v for v in values if v is not None and np.isfinite(v)], dtype="float64")
    lo, hi = (float(vals.min()), float(vals.max())) if vals.size else (0.0, 1.0)
    if hi <= lo:
        hi = lo + (abs(lo) * 0.01 or 1.0)
    if scale == "linear":
        cm = base.scale(lo, hi)
    else:
        index = np.unique(np.quantile(vals, np.linspace(0.0, 1.0, max(int(bins), 1) + 1))) if vals.size else []
        if len(index) < 2:
            index = np.array([lo, hi])
        index[-1] = max(index[-1], hi)
        ramp = base.scale(0.0, 1.0)
        n = len(index) - 1
        colors = [ramp.rgb_hex_str(i / max(n - 1, 1)) for i in range(n)]
        cm = bcm.StepColormap(colors, index=[float(v) for v in index], vmin=float(index[0]), vmax=float(index[-1]))
        cm.tick_labels = [_display(v) for v in _ticks(index, (index[-1] - index[0]) / 8)]
    cm.width = 500
    cm.caption = caption
    return cm


def _display(value) -> float | None:
    """A value rounded for people: 4 significant digits, at most 2 decimals above 1."""
    if value is None or not np.isfinite(value):
        return None
    v = float(value)
    if v == 0 or abs(v) >= 1:
        return round(v, 2)
    return round(v, 3 - int(math.floor(math.log10(abs(v)))))


def features(result) -> list[dict]:
    """GeoJSON features of a :class:`~geotarget.maps.heatmap.HeatmapResult` (rows with a value only)."""
    import shapely

    frame = result.frame
    ok = np.isfinite(frame["value"].to_numpy(dtype="float64"))
    frame = frame.loc[ok]
    if result.level == "cell":
        geoms = [{"type": "Polygon", "coordinates": [ring.tolist()]} for ring in cells_to_rings(frame["cell"])]
        keys = {"h3": frame["h3"].tolist()}
    else:
        geoms = [json.loads(shapely.to_geojson(g))
                 for g in round_geometry(np.asarray(result.geometry, dtype=object)[ok])]
        keys = {"region_id": frame["region_id"].astype(str).tolist(), "name": frame["name"].astype(str).tolist()}
    customers = frame["customers"].astype(int).tolist()
    values = [_display(v) for v in frame["value"].to_numpy(dtype="float64")]
    out = []
    for i, geom in enumerate(geoms):
        props = {k: v[i] for k, v in keys.items()}
        props.update(customers=customers[i], value=values[i])
        out.append({"type": "Feature", "properties": props, "geometry": geom})
    return out


def geojson_layer(feats: list[dict], *, color, class_name: str, fields: list[str], aliases: list[str],
                  opacity: float = 0.7, weight: float = 0.5, dash: str | None = None) -> folium.GeoJson:
    """A GeoJson layer with a tooltip; ``color`` is a colour or a function of a feature.

    A per-feature colour travels as the feature's ``fill`` property and one
    small JavaScript function styles every feature from it: folium's own
    ``style_function`` writes a ``switch`` with a case per feature, which
    made a 20,000-hexagon page several seconds slower to open.
    """
    if callable(color):
        for f in feats:
            f["properties"]["fill"] = color(f)
        fill = "f.properties.fill"
    else:
        fill = json.dumps(color)
    dash_js = f", dashArray: {json.dumps(dash)}" if dash else ""
    style = JsCode(f"function (f) {{ return {{fillColor: {fill}, color: {fill}, weight: {float(weight)}, "
                   f"fillOpacity: {float(opacity)}{dash_js}}}; }}")
    tooltip = folium.GeoJsonTooltip(fields=fields, aliases=aliases, localize=True, sticky=False) if feats else None
    return folium.GeoJson({"type": "FeatureCollection", "features": feats}, tooltip=tooltip, className=class_name,
                          style=style)


def value_layer(result, cm, *, name: str, opacity: float = 0.7, show: bool = True,
                overlay: bool = True, class_name: str = "gt-hex") -> folium.FeatureGroup:
    """A feature group drawing a heatmap result coloured by ``cm``, with tooltips (value, count)."""
    feats = features(result)
    fields = (["h3"] if result.level == "cell" else ["name"]) + ["value", "customers"]
    aliases = (["cell"] if result.level == "cell" else ["region"]) + [result.metric.label, "customers"]
    group = folium.FeatureGroup(name=name, show=show, overlay=overlay)
    geojson_layer(feats, color=lambda f: cm(f["properties"]["value"]), class_name=class_name, fields=fields,
                  aliases=aliases, opacity=opacity).add_to(group)
    return group


class LegendSwitch(MacroElement):
    """Show only the legend of the selected base layer (one branca legend per metric)."""

    _template = Template("""
        {% macro script(this, kwargs) %}
        (function () {
            var names = {{ this.names|tojson }};
            function show(name) {
                var i = names.indexOf(name);
                document.querySelectorAll('.legend.leaflet-control svg').forEach(function (s, j) {
                    s.style.display = (j === i) ? '' : 'none';
                });
            }
            {{ this._parent.get_name() }}.on('baselayerchange', function (e) { show(e.name); });
            show(names[0]);
        })();
        {% endmacro %}
    """)

    def __init__(self, names: list[str]):
        super().__init__()
        self._name = "LegendSwitch"
        self.names = list(names)


class StoreMarkers(MacroElement):
    """Circle markers of a fixed size in pixels, with an HTML popup and a tooltip each.

    Leaflet's own ``bindPopup`` is used, so the page needs no jQuery.
    ``stores`` is a list of dicts with ``lat``, ``lng``, ``id`` and
    ``popup`` (HTML, already escaped).
    """

    _template = Template("""
        {% macro script(this, kwargs) %}
        {{ this.stores|tojson }}.forEach(function (s) {
            L.circleMarker([s.lat, s.lng], {{ this.options|tojson }})
                .bindPopup(s.popup, {maxWidth: 300})
                .bindTooltip(s.id)
                .addTo({{ this._parent.get_name() }});
        });
        {% endmacro %}
    """)

    def __init__(self, stores: list[dict], **options):
        super().__init__()
        self._name = "StoreMarkers"
        self.stores = stores
        self.options = options
