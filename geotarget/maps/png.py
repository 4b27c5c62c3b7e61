"""Static PNG pictures of heatmaps and coverage, for reports and slides.

Pictures are drawn in Web Mercator (EPSG:3857), like every web map, over a
basemap from a standard tile provider (xyzservices and contextily, the
``basemap`` extra) when the tiles can be fetched. Offline, the loaded region
outlines are drawn as context instead. Each picture has a plain title, a legend whose quantile
classes take equal steps (with units), hatched "fewer than k" areas, a scale
bar in the user's units and a north arrow; store labels are placed so that
they do not overlap.

Drawn with matplotlib's object API (Figure + Agg canvas), so no global
pyplot state is touched and no display is needed. Colours come from the same
branca scale as the interactive maps.
"""

from __future__ import annotations

import math
import os
import textwrap
import warnings
from pathlib import Path

import numpy as np
import shapely
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.collections import PathCollection
from matplotlib.figure import Figure
from matplotlib.patches import Rectangle
from matplotlib.path import Path as MplPath

from geotarget.errors import InvalidInputError
from geotarget.maps.geometry import extent
from geotarget.maps.labels import distance_text, hidden_text, number_text
from geotarget.maps.style import OVERLAP_COLOR, colormap

__all__ = ["DEFAULT_PNG_TILES", "OFFLINE_ENV", "coverage_png", "heatmap_png", "save_png"]

#: The basemap unless ``tiles=None``: an xyzservices provider name, or a URL template with {z}/{x}/{y}.
DEFAULT_PNG_TILES = "OpenStreetMap.Mapnik"

#: Set this environment variable (to anything but "" or "0") to never fetch tiles.
OFFLINE_ENV = "GEOTARGET_OFFLINE"

_HIDDEN_EDGE = "#666666"
_RING = "#1f4e9c"


# -- geometry in Web Mercator ------------------------------------------------------------------------------------

def _mercator(geoms) -> np.ndarray:
    from pyproj import Transformer

    to_3857 = Transformer.from_crs("EPSG:4326", "EPSG:3857", always_xy=True)
    geoms = np.asarray(list(geoms), dtype=object)
    if geoms.size == 0:
        return geoms
    return shapely.transform(geoms, lambda xy: np.column_stack(to_3857.transform(xy[:, 0], np.clip(xy[:, 1], -85, 85))))


def _xy(lat, lng) -> tuple[np.ndarray, np.ndarray]:
    from pyproj import Transformer

    to_3857 = Transformer.from_crs("EPSG:4326", "EPSG:3857", always_xy=True)
    x, y = to_3857.transform(np.asarray(lng, dtype="float64"), np.clip(np.asarray(lat, dtype="float64"), -85, 85))
    return np.asarray(x), np.asarray(y)


def _paths(geoms) -> list[MplPath]:
    """One compound matplotlib path per polygon or multipolygon (holes kept)."""
    out = []
    for geom in geoms:
        rings = []
        for part in shapely.get_parts(geom):
            if part.geom_type != "Polygon":
                continue
            rings.append(MplPath(np.asarray(part.exterior.coords)))
            rings.extend(MplPath(np.asarray(r.coords)) for r in part.interiors)
        if rings:
            out.append(MplPath.make_compound_path(*rings))
    return out


# -- the frame: figure, basemap or context, scale bar, north arrow -----------------------------------------------

def _axes(bounds, title: str, subtitle: str, width: float = 9.0):
    """A figure fitted to lng/lat ``bounds``, in Web Mercator, with no degree axes."""
    minx, miny, maxx, maxy = bounds
    (x0, x1), (y0, y1) = _xy([miny, maxy], [minx, maxx])
    pad = max(x1 - x0, y1 - y0, 500.0) * 0.04
    x0, x1, y0, y1 = x0 - pad, x1 + pad, y0 - pad, y1 + pad
    ratio = (y1 - y0) / max(x1 - x0, 1e-9)
    map_h = min(max(width * 0.96 * ratio, 3.5), 11.0)
    total = map_h + 2.3  # inches: 1.0 above the map for the titles, 1.3 below it for the legend
    fig = Figure(figsize=(width, total))
    FigureCanvasAgg(fig)
    ax = fig.add_axes((0.02, 1.3 / total, 0.96, map_h / total))
    box = map_h / (width * 0.96)  # height / width of the map on paper; widen the data to match, never crop it
    if (y1 - y0) / (x1 - x0) < box:
        grow = ((x1 - x0) * box - (y1 - y0)) / 2
        y0, y1 = y0 - grow, y1 + grow
    else:
        grow = ((y1 - y0) / box - (x1 - x0)) / 2
        x0, x1 = x0 - grow, x1 + grow
    ax.set_xlim(x0, x1)
    ax.set_ylim(y0, y1)
    ax.set_aspect("equal", adjustable="datalim")
    ax.set_axis_off()
    fig.text(0.02, 1 - 0.2 / total, "\n".join(textwrap.wrap(title, 80)), fontsize=13, weight="bold", va="top")
    fig.text(0.02, 1 - 0.62 / total, subtitle, fontsize=9, color="#444444", va="top")
    return fig, ax


def _tiles_source(tiles):
    """What contextily is given: None (offline), an xyzservices provider, or a URL template."""
    if tiles is None or os.environ.get(OFFLINE_ENV, "") not in ("", "0"):
        return None
    if isinstance(tiles, str) and "{z}" not in tiles:
        import xyzservices.providers as xyz

        try:
            return xyz.query_name(tiles)
        except ValueError:
            raise InvalidInputError(f"unknown tile provider {tiles!r}; give an xyzservices name such as "
                                    f"{DEFAULT_PNG_TILES!r}, a URL with {{z}}/{{x}}/{{y}}, or tiles=None") from None
    return tiles


def _basemap(ax, tiles, context) -> str:
    """Draw tiles under the data, or the context outlines when the tiles cannot be had; say which."""
    source = _tiles_source(tiles)
    try:  # the basemap extra: pip install 'geotarget[basemap]'
        import contextily
    except ImportError:
        contextily = None
    if source is not None and contextily is not None:
        try:
            with warnings.catch_warnings():  # affine (under contextily) warns about its own operator use
                warnings.filterwarnings("ignore", message="Use `@` matmul", category=PendingDeprecationWarning)
                contextily.add_basemap(ax, source=source, crs="EPSG:3857", reset_extent=False, zorder=0,
                                       attribution_size=6, timeout=10)
            return "tiles"
        except Exception:  # noqa: BLE001 - offline, blocked or a broken server: draw the outlines instead
            pass
    geoms = _mercator(context if context is not None else [])
    if len(geoms):
        ax.add_collection(PathCollection(_paths(geoms), facecolors="#f4f4f2", edgecolors="#9a9a9a",
                                         linewidths=0.6, zorder=0))
    ax.set_facecolor("#fbfbfa")
    return "outlines"


def _nice(value: float) -> float:
    """1, 2 or 5 times a power of ten, at most ``value``."""
    power = 10 ** math.floor(math.log10(value))
    return max(m * power for m in (1, 2, 5) if m * power <= value)


def _scale_bar(ax, unit: str | None) -> tuple[float, float]:
    """A scale bar in ``unit`` (m/km when none), true at the map's centre latitude.

    Returns the bar's ground length in metres and its length in Web Mercator units.
    """
    from pyproj import Transformer

    x0, x1 = ax.get_xlim()
    y0, y1 = ax.get_ylim()
    _, lat = Transformer.from_crs("EPSG:3857", "EPSG:4326", always_xy=True).transform((x0 + x1) / 2, (y0 + y1) / 2)
    true_per_unit = math.cos(math.radians(lat))  # metres on the ground per Web Mercator metre
    factor = {"mi": 1609.344, "ft": 0.3048, "yd": 0.9144, "km": 1000.0, "m": 1.0}
    unit = unit or "km"
    if unit == "km" and (x1 - x0) * true_per_unit / 5 < 1000:
        unit = "m"
    if unit == "mi" and (x1 - x0) * true_per_unit / 5 < 1609.344 * 0.1:
        unit = "ft"
    length_units = _nice((x1 - x0) * true_per_unit / 5 / factor[unit])
    length = length_units * factor[unit] / true_per_unit
    bx, by = x0 + (x1 - x0) * 0.03, y0 + (y1 - y0) * 0.04
    h = (y1 - y0) * 0.008
    ax.add_patch(Rectangle((bx - (x1 - x0) * 0.01, by - h * 2), length + (x1 - x0) * 0.02, h * 7,
                           facecolor="white", alpha=0.75, edgecolor="none", zorder=8))
    ax.add_patch(Rectangle((bx, by), length / 2, h, facecolor="#222222", edgecolor="#222222", zorder=9))
    ax.add_patch(Rectangle((bx + length / 2, by), length / 2, h, facecolor="white", edgecolor="#222222", zorder=9))
    ax.text(bx + length / 2, by + h * 1.6, distance_text(length_units * factor[unit], unit), ha="center",
            va="bottom", fontsize=8, zorder=9, gid="gt-scale")
    return length_units * factor[unit], length


def _north_arrow(ax) -> None:
    ax.annotate("N", xy=(0.965, 0.95), xytext=(0.965, 0.84), xycoords="axes fraction", ha="center", va="center",
                fontsize=11, weight="bold", zorder=9,
                arrowprops={"facecolor": "#222222", "edgecolor": "#222222", "width": 3, "headwidth": 10,
                            "headlength": 9},
                bbox={"boxstyle": "circle,pad=0.2", "facecolor": "white", "edgecolor": "none", "alpha": 0.8})


# -- the data ----------------------------------------------------------------------------------------------------

def _draw_values(ax, result, cm, *, alpha: float = 0.8) -> None:
    gdf = result.to_geodataframe()
    gdf = gdf[np.isfinite(gdf["value"].to_numpy(dtype="float64"))]
    colors = [cm.rgb_hex_str(v) for v in gdf["value"]]
    ax.add_collection(PathCollection(_paths(_mercator(gdf.geometry)), facecolors=colors, edgecolors=colors,
                                     linewidths=0.2, alpha=alpha, zorder=2))


def _draw_hidden(ax, result) -> bool:
    polys = result.hidden_polygons()
    if not len(polys):
        return False
    ax.add_collection(PathCollection(_paths(_mercator(polys)), facecolors=(1, 1, 1, 0.35), edgecolors=_HIDDEN_EDGE,
                                     linewidths=0.4, hatch="////", zorder=2))
    return True


def _legend(fig, cm, caption: str, *, hidden: str | None, keys=()) -> None:
    """A legend under the map: equal steps for quantile classes, a ramp for a linear scale, then the keys."""
    import branca.colormap as bcm

    height = fig.get_figheight()
    lax = fig.add_axes((0.06, 0.6 / height, 0.5, 0.28 / height))
    lax.set_axis_off()
    if isinstance(cm, bcm.StepColormap):
        index = list(cm.index)
        n = len(index) - 1
        for i, (a, b) in enumerate(zip(index[:-1], index[1:])):
            lax.add_patch(Rectangle((i, 0), 1, 1, facecolor=cm.rgb_hex_str((a + b) / 2), edgecolor="#888888",
                                    linewidth=0.5))
        for i, v in enumerate(index):
            lax.text(i, -0.25, number_text(v), ha="center", va="top", fontsize=8)
    else:
        n = 1
        grid = np.linspace(cm.vmin, cm.vmax, 64)
        for i, v in enumerate(grid[:-1]):
            lax.add_patch(Rectangle((i / 63, 0), 1 / 63, 1, facecolor=cm.rgb_hex_str(v), edgecolor="none"))
        lax.add_patch(Rectangle((0, 0), 1, 1, facecolor="none", edgecolor="#888888", linewidth=0.5))
        lax.text(0, -0.25, number_text(cm.vmin), ha="center", va="top", fontsize=8)
        lax.text(1, -0.25, number_text(cm.vmax), ha="center", va="top", fontsize=8)
    lax.set_xlim(-0.3, n + 0.3)
    lax.set_ylim(-1.5, 1.2)
    lax.text(0, 1.35, caption, ha="left", va="bottom", fontsize=9, weight="bold")
    entries = ([(dict(facecolor="white", edgecolor=_HIDDEN_EDGE, hatch="////"), hidden)] if hidden else []) + list(keys)
    kax = fig.add_axes((0.62, 0.15 / height, 0.36, 1.0 / height))
    kax.set_axis_off()
    kax.set_xlim(0, 10)
    kax.set_ylim(0, 4)
    for row, (style, text) in enumerate(entries):
        y = 4 - row - 0.8
        kax.add_patch(Rectangle((0, y), 1.0, 0.6, linewidth=0.8, **style))
        kax.text(1.3, y + 0.3, text, va="center", fontsize=8)


def _label_stores(ax, stores, *, max_labels: int = 80) -> int:
    """Store ids next to their markers, each where it overlaps no other label or marker; returns how many."""
    fig = ax.figure
    renderer = fig.canvas.get_renderer()
    x, y = _xy(stores["lat"], stores["lng"])
    pts = ax.transData.transform(np.column_stack([x, y]))
    taken = [(px - 5, py - 5, px + 5, py + 5) for px, py in pts]
    placed = 0
    offsets = [(6, 6, "left", "bottom"), (-6, 6, "right", "bottom"), (6, -6, "left", "top"),
               (-6, -6, "right", "top"), (8, 0, "left", "center"), (-8, 0, "right", "center")]
    axbox = ax.get_window_extent(renderer)
    for (sx, sy), sid in zip(zip(x, y), stores["store_id"].astype(str)):
        if placed >= max_labels:
            break
        for dx, dy, ha, va in offsets:
            text = ax.annotate(sid, (sx, sy), xytext=(dx, dy), textcoords="offset points", ha=ha, va=va, fontsize=7,
                               color=_RING, zorder=7,
                               bbox={"boxstyle": "round,pad=0.15", "facecolor": "white", "edgecolor": "none",
                                     "alpha": 0.7})
            bb = text.get_window_extent(renderer)
            box = (bb.x0, bb.y0, bb.x1, bb.y1)
            inside = axbox.x0 <= bb.x0 and bb.x1 <= axbox.x1 and axbox.y0 <= bb.y0 and bb.y1 <= axbox.y1
            if inside and not any(box[0] < t[2] and t[0] < box[2] and box[1] < t[3] and t[1] < box[3]
                                  for t in taken):
                taken.append(box)
                placed += 1
                break
            text.remove()
    return placed


def _context_of(result, context):
    """Outlines for the offline picture: those given, an engine's region layers, or a region result's own."""
    if context is not None and hasattr(context, "layers") and hasattr(context, "regions"):
        geoms = []
        for layer in context.layers():
            geoms.extend(np.asarray(context.regions(layer).geometry, dtype=object))
        return geoms
    if context is not None:
        return list(context)
    if result is not None and result.level == "region" and result.geometry is not None:
        return list(result.geometry) + list(result.hidden_polygons())
    return None


def _save(fig, path: Path, dpi: int) -> Path:
    fig.savefig(path, dpi=dpi)
    return path


# -- the pictures ------------------------------------------------------------------------------------------------

def heatmap_png(result, path: Path, *, scale: str = "quantile", bins: int = 7, palette: str = "YlOrRd_09",
                dpi: int = 120, title: str | None = None, tiles=DEFAULT_PNG_TILES, context=None,
                unit: str | None = None) -> Path:
    """Write a PNG of a heatmap result (hexagons or regions) with its legend, scale bar and north arrow."""
    values = result.frame["value"].to_numpy(dtype="float64")
    cm = colormap(values, scale=scale, bins=bins, palette=palette)
    who = f"{result.total_customers:,} customers"
    subtitle = f"{who}; hatched: areas with fewer than {result.k_min}, counts hidden"
    fig, ax = _axes(extent([result]), title or result.caption, subtitle)
    _basemap(ax, tiles, _context_of(result, context))
    _draw_values(ax, result, cm)
    hidden = _draw_hidden(ax, result)
    _scale_bar(ax, unit)
    _north_arrow(ax)
    _legend(fig, cm, result.caption, hidden=hidden_text(result.k_min) if hidden or len(values) == 0 else None)
    return _save(fig, path, dpi)


def coverage_png(cov, path: Path, *, scale: str = "quantile", bins: int = 7, palette: str = "YlOrRd_09",
                 dpi: int = 120, title: str | None = None, tiles=DEFAULT_PNG_TILES, context=None) -> Path:
    """Write a PNG of a coverage: uncovered customers, density, hidden cells, overlaps, rings and stores."""
    bounds = extent([cov.density, cov.uncovered])
    if len(cov.rings):
        rb = shapely.total_bounds(cov.rings)
        bounds = tuple(rb) if not (len(cov.density.frame) or len(cov.uncovered.frame)) else (
            min(bounds[0], rb[0]), min(bounds[1], rb[1]), max(bounds[2], rb[2]), max(bounds[3], rb[3]))
    values = cov.density.frame["value"].to_numpy(dtype="float64")
    cm = colormap(values, scale=scale, bins=bins, palette=palette)
    subtitle = (f"{cov.covered_customers:,} customers within reach, {cov.uncovered_customers:,} beyond every ring; "
                f"areas with fewer than {cov.k_min} are hatched")
    fig, ax = _axes(bounds, title or cov.title, subtitle)
    _basemap(ax, tiles, _context_of(None, context))
    gdf = cov.uncovered.to_geodataframe()
    ax.add_collection(PathCollection(_paths(_mercator(gdf.geometry)), facecolors="#7f7f7f", edgecolors="none",
                                     alpha=0.4, zorder=1))
    _draw_values(ax, cov.density, cm)
    _draw_hidden(ax, cov.density)
    keys = []
    if len(cov.overlap_geometry):
        ax.add_collection(PathCollection(_paths(_mercator(cov.overlap_geometry)), facecolors="none",
                                         edgecolors=OVERLAP_COLOR, linewidths=1.0, hatch="xx", zorder=4))
        keys.append((dict(facecolor="white", edgecolor=OVERLAP_COLOR, hatch="xx"), "where rings overlap"))
    ax.add_collection(PathCollection(_paths(_mercator(cov.rings)), facecolors="none", edgecolors=_RING,
                                     linewidths=1.2, zorder=5))
    keys.append((dict(facecolor="none", edgecolor=_RING), f"{cov.radius_text} around each store"))
    keys.append((dict(facecolor="#7f7f7f", edgecolor="none", alpha=0.4), "customers no store reaches"))
    x, y = _xy(cov.stores["lat"], cov.stores["lng"])
    ax.scatter(x, y, s=25, c="white", edgecolors=_RING, linewidths=1.5, zorder=6)
    _scale_bar(ax, cov.unit)
    _north_arrow(ax)
    _label_stores(ax, cov.stores)
    _legend(fig, cm, cov.caption, hidden=hidden_text(cov.k_min), keys=keys)
    return _save(fig, path, dpi)


def save_png(obj, path: str | Path, **options) -> Path:
    """A static PNG of a heatmap result or a coverage, in Web Mercator over a basemap.

    Parameters
    ----------
    obj : HeatmapResult or Coverage
    path : str or Path
    **options
        ``scale``, ``bins``, ``palette`` (as for the maps), ``dpi``, ``title``;
        ``tiles``: an xyzservices provider name (default
        :data:`DEFAULT_PNG_TILES`), a URL template with ``{z}/{x}/{y}``, or
        None to draw no tiles. When tiles cannot be fetched (offline, or the
        :data:`OFFLINE_ENV` variable is set) the picture shows ``context``
        instead: region outlines given as shapely polygons, or an Engine
        (all its region layers); a region heatmap outlines its own regions.
        ``unit`` (heatmaps) sets the scale bar's unit: ``mi``, ``km``, ...

    Returns
    -------
    Path
    """
    draw = coverage_png if hasattr(obj, "rings") else heatmap_png  # a Coverage carries its rings
    return draw(obj, Path(path), **options)
