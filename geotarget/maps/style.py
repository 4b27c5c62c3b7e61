"""The look of geotarget's maps: base map, colour scales, GeoJSON layers.

Only aggregates reach this module: a feature is a hexagon or a region
polygon with its ``customers`` and ``value``; coordinates are rounded to 6
decimals by :mod:`geotarget.maps.geometry`. folium and branca are imported
here, so this module is only imported when a map is made.
"""

from __future__ import annotations

import html
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

__all__ = ["colormap", "features", "geojson_layer", "hidden_layer", "Hatches", "Legend", "LegendSwitch", "new_map",
           "SCALES", "StoreMarkers", "value_layer"]

#: Colour of ring overlaps: a purple far from every heat palette's hues, drawn cross-hatched.
OVERLAP_COLOR = "#5e3c99"

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
.gt-legend {background: rgba(255, 255, 255, 0.9); padding: 6px 10px 6px 10px; border-radius: 4px;
  box-shadow: 0 1px 4px rgba(0, 0, 0, 0.3); font: 12px/1.3 sans-serif; color: #222; max-width: 420px;}
.gt-legend .caption {font-weight: bold; margin-bottom: 4px;}
.gt-legend .gt-steps {display: flex; height: 12px; border: 1px solid #888;}
.gt-legend .gt-steps span {flex: 1 1 0;}
.gt-legend .gt-ticks {position: relative; height: 16px; margin: 0 0 2px 0;}
.gt-legend .gt-ticks span {position: absolute; top: 1px; transform: translateX(-50%); white-space: nowrap;
  font-size: 11px;}
.gt-legend .gt-key {display: flex; align-items: center; gap: 6px; margin-top: 3px; font-size: 11px;}
.gt-legend .gt-swatch {width: 22px; height: 12px; border: 1px solid #666; display: inline-block;}
.gt-legend .gt-grey {background: rgba(127, 127, 127, 0.45);}
.gt-legend .gt-hatch {background: repeating-linear-gradient(45deg, #666 0 1.5px, #fff 1.5px 5px);}
.gt-legend .gt-cross {background: repeating-linear-gradient(45deg, #5e3c99 0 1.5px, transparent 1.5px 5px),
  repeating-linear-gradient(-45deg, #5e3c99 0 1.5px, #fff 1.5px 5px); border-color: #5e3c99;}
.leaflet-control-layers-expanded {max-height: 40vh; overflow-y: auto; font-size: 12px;}
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
                  opacity: float = 0.7, weight: float = 0.5, dash: str | None = None,
                  fill: str | None = None) -> folium.GeoJson:
    """A GeoJson layer with a tooltip; ``color`` is a colour or a function of a feature.

    A per-feature colour travels as the feature's ``fill`` property and one
    small JavaScript function styles every feature from it: folium's own
    ``style_function`` writes a ``switch`` with a case per feature, which
    made a 20,000-hexagon page several seconds slower to open. ``fill``
    overrides the fill, e.g. ``"url(#gt-hatch)"`` for a :class:`Hatches` pattern.
    """
    fill_override = fill
    if callable(color):
        for f in feats:
            f["properties"]["fill"] = color(f)
        fill = "f.properties.fill"
    else:
        fill = json.dumps(color)
    if callable(color):
        stroke = "f.properties.fill"
    else:
        stroke = json.dumps(color)
    if fill_override is not None:
        fill = json.dumps(fill_override)
    dash_js = f", dashArray: {json.dumps(dash)}" if dash else ""
    style = JsCode(f"function (f) {{ return {{fillColor: {fill}, color: {stroke}, weight: {float(weight)}, "
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


def hidden_layer(result, *, name: str | None = None, show: bool = True) -> folium.FeatureGroup:
    """The areas the k floor hid, hatched, each with the tooltip "fewer than k customers"."""
    import shapely

    from geotarget.maps.labels import hidden_text

    text = hidden_text(result.k_min)
    feats = [{"type": "Feature", "properties": {"note": text}, "geometry": json.loads(shapely.to_geojson(g))}
             for g in round_geometry(result.hidden_polygons())]
    group = folium.FeatureGroup(name=name or text[0].upper() + text[1:], show=show)
    geojson_layer(feats, color="#666666", fill="url(#gt-hatch)", class_name="gt-hidden", fields=["note"],
                  aliases=[""], opacity=0.9, weight=0.6).add_to(group)
    return group


class Hatches(MacroElement):
    """SVG hatch patterns for the map's vector layers: ``#gt-hatch`` (hidden areas) and ``#gt-cross`` (overlaps).

    Leaflet draws every vector layer into one SVG; the patterns are added to
    it as soon as it exists, so a fill of ``url(#gt-hatch)`` resolves.
    """

    _template = Template("""
        {% macro script(this, kwargs) %}
        (function () {
            var map = {{ this._parent.get_name() }}, ns = null;  // the SVG namespace, read from Leaflet's svg
            function el(name, attrs) {
                var e = document.createElementNS(ns, name);
                Object.keys(attrs).forEach(function (k) { e.setAttribute(k, attrs[k]); });
                return e;
            }
            function pattern(id, color, angles, ground) {
                var p = el('pattern', {id: id, patternUnits: 'userSpaceOnUse', width: 7, height: 7});
                if (ground) { p.appendChild(el('rect', {width: 7, height: 7, fill: ground, 'fill-opacity': 0.55})); }
                angles.forEach(function (a) {
                    var g = el('g', {transform: 'rotate(' + a + ' 3.5 3.5)'});
                    [-7, 0, 7].forEach(function (x) {
                        g.appendChild(el('line', {x1: x + 3.5, y1: -7, x2: x + 3.5, y2: 14, stroke: color,
                                                  'stroke-width': 1.4}));
                    });
                    p.appendChild(g);
                });
                return p;
            }
            function ensure() {
                var svg = map.getPanes().overlayPane.querySelector('svg');
                if (!svg || svg.querySelector('#gt-hatch')) { return; }
                ns = svg.namespaceURI;
                var defs = el('defs', {});
                defs.appendChild(pattern('gt-hatch', '#666666', [45], '#ffffff'));
                defs.appendChild(pattern('gt-cross', '{{ this.overlap_color }}', [45, -45], null));
                svg.insertBefore(defs, svg.firstChild);
            }
            ensure();
            map.on('layeradd', ensure);
        })();
        {% endmacro %}
    """)

    def __init__(self):
        super().__init__()
        self._name = "Hatches"
        self.overlap_color = OVERLAP_COLOR


class Legend(MacroElement):
    """A legend control (bottom right): the caption with units, colour steps of equal width, the hidden areas.

    Quantile classes take equal steps whatever their value range, with the
    class boundaries written under the steps; a linear scale is one ramp
    labelled at both ends. ``keys`` adds lines such as ("gt-cross",
    "ring overlaps") with their swatch.
    """

    _template = Template("""
        {% macro script(this, kwargs) %}
        (function () {
            var ctl = L.control({position: 'bottomright'});
            ctl.onAdd = function () {
                var d = L.DomUtil.create('div', 'legend leaflet-control gt-legend');
                d.innerHTML = {{ this.html|tojson }};
                d.setAttribute('data-layer', {{ this.layer|tojson }});
                L.DomEvent.disableClickPropagation(d);
                return d;
            };
            ctl.addTo({{ this._parent.get_name() }});
        })();
        {% endmacro %}
    """)

    def __init__(self, cm, caption: str, *, hidden: str | None = None, keys: list[tuple[str, str]] = (),
                 layer: str = ""):
        super().__init__()
        self._name = "Legend"
        self.html = legend_html(cm, caption, hidden=hidden, keys=keys)
        self.layer = layer


def legend_html(cm, caption: str, *, hidden: str | None = None, keys=()) -> str:
    """The inner HTML of a :class:`Legend`."""
    from geotarget.maps.labels import number_text

    esc = html.escape
    parts = [f'<div class="caption">{esc(caption)}</div>']
    if isinstance(cm, bcm.StepColormap):
        index = list(cm.index)
        colors = [cm.rgb_hex_str((a + b) / 2) for a, b in zip(index[:-1], index[1:])]
        n = len(colors)
        width = max(36 * n, 220)
        steps = "".join(f'<span style="background:{c}"></span>' for c in colors)
        ticks = "".join(f'<span style="left:{100 * i / n:.4f}%">{esc(number_text(v))}</span>'
                        for i, v in enumerate(index))
        parts.append(f'<div style="width:{width}px;margin:0 12px"><div class="gt-steps">{steps}</div>'
                     f'<div class="gt-ticks">{ticks}</div></div>')
    else:
        stops = ", ".join(cm.rgb_hex_str(cm.vmin + (cm.vmax - cm.vmin) * i / 8) for i in range(9))
        parts.append(f'<div style="width:240px;margin:0 12px"><div class="gt-steps" '
                     f'style="background:linear-gradient(to right, {stops})"></div><div class="gt-ticks">'
                     f'<span style="left:0%">{esc(number_text(cm.vmin))}</span>'
                     f'<span style="left:100%">{esc(number_text(cm.vmax))}</span></div></div>')
    if hidden:
        parts.append(f'<div class="gt-key"><span class="gt-swatch gt-hatch"></span>{esc(hidden)}</div>')
    for css, text in keys:
        parts.append(f'<div class="gt-key"><span class="gt-swatch {esc(css)}"></span>{esc(text)}</div>')
    return "".join(parts)


class LegendSwitch(MacroElement):
    """Show only the legend of the selected base layer (one legend per metric)."""

    _template = Template("""
        {% macro script(this, kwargs) %}
        (function () {
            var names = {{ this.names|tojson }};
            function show(name) {
                document.querySelectorAll('.gt-legend').forEach(function (s) {
                    s.style.display = (s.getAttribute('data-layer') === name) ? '' : 'none';
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
