"""Static PNG pictures of heatmaps and coverage, for reports.

Drawn with matplotlib's object API (Figure + Agg canvas), so no global
pyplot state is touched and no display is needed. Colours come from the same
branca scale as the interactive maps.
"""

from __future__ import annotations

import textwrap
from pathlib import Path

import numpy as np
import shapely
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.cm import ScalarMappable
from matplotlib.collections import PathCollection
from matplotlib.colors import BoundaryNorm, ListedColormap, Normalize
from matplotlib.figure import Figure
from matplotlib.path import Path as MplPath

from geotarget.maps.geometry import extent
from geotarget.maps.style import colormap

__all__ = ["coverage_png", "heatmap_png", "save_png"]


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


def _axes(bounds, title: str, width: float = 9.0):
    minx, miny, maxx, maxy = bounds
    aspect = 1.0 / max(np.cos(np.radians((miny + maxy) / 2)), 0.05)
    ratio = ((maxy - miny) * aspect) / max(maxx - minx, 1e-9)
    fig = Figure(figsize=(width, min(max(width * ratio, 4.0), 14.0)))
    FigureCanvasAgg(fig)
    ax = fig.add_subplot()
    ax.set_aspect(aspect)
    pad_x, pad_y = (maxx - minx) * 0.03 or 0.01, (maxy - miny) * 0.03 or 0.01
    ax.set_xlim(minx - pad_x, maxx + pad_x)
    ax.set_ylim(miny - pad_y, maxy + pad_y)
    ax.set_xlabel("longitude")
    ax.set_ylabel("latitude")
    ax.set_title("\n".join(textwrap.wrap(title, 80)), fontsize=10)
    return fig, ax


def _scale(values, cm, scale: str):
    """A matplotlib (cmap, norm) matching a branca colour scale."""
    if scale == "quantile":
        index = np.asarray(cm.index, dtype="float64")
        mids = (index[:-1] + index[1:]) / 2
        return ListedColormap([cm.rgb_hex_str(v) for v in mids]), BoundaryNorm(index, len(mids))
    grid = np.linspace(cm.vmin, cm.vmax, 256)
    return ListedColormap([cm.rgb_hex_str(v) for v in grid]), Normalize(cm.vmin, cm.vmax)


def _draw_values(ax, result, cm, *, alpha: float = 0.85) -> None:
    gdf = result.to_geodataframe()
    gdf = gdf[np.isfinite(gdf["value"].to_numpy(dtype="float64"))]
    colors = [cm.rgb_hex_str(v) for v in gdf["value"]]
    ax.add_collection(PathCollection(_paths(gdf.geometry), facecolors=colors, edgecolors=colors, linewidths=0.2,
                                     alpha=alpha))


def _save(fig, ax, cm, values, scale: str, caption: str, path: Path, dpi: int) -> Path:
    if len(values):
        cmap, norm = _scale(values, cm, scale)
        bar = fig.colorbar(ScalarMappable(norm=norm, cmap=cmap), ax=ax, shrink=0.7)
        bar.set_label("\n".join(textwrap.wrap(caption, 60)), fontsize=8)
    fig.savefig(path, dpi=dpi, bbox_inches="tight")
    return path


def heatmap_png(result, path: Path, *, scale: str = "quantile", bins: int = 7, palette: str = "YlOrRd_09",
                dpi: int = 120, title: str | None = None) -> Path:
    """Write a PNG of a heatmap result (hexagons or regions) with a colour bar."""

    values = result.frame["value"].to_numpy(dtype="float64")
    cm = colormap(values, scale=scale, bins=bins, palette=palette)
    fig, ax = _axes(extent([result]), title or result.caption)
    _draw_values(ax, result, cm)
    return _save(fig, ax, cm, values, scale, result.caption, path, dpi)


def coverage_png(cov, path: Path, *, scale: str = "quantile", bins: int = 7, palette: str = "YlOrRd_09",
                 dpi: int = 120, title: str | None = None) -> Path:
    """Write a PNG of a coverage: uncovered cells, density, overlaps, rings and stores."""

    bounds = extent([cov.density, cov.uncovered])
    if len(cov.rings):
        rb = shapely.total_bounds(cov.rings)
        bounds = tuple(rb) if bounds[0] == -180.0 else (
            min(bounds[0], rb[0]), min(bounds[1], rb[1]), max(bounds[2], rb[2]), max(bounds[3], rb[3]))
    values = cov.density.frame["value"].to_numpy(dtype="float64")
    cm = colormap(values, scale=scale, bins=bins, palette=palette)
    fig, ax = _axes(bounds, title or f"Coverage of {len(cov.stores)} store(s) within {cov.radius_m:,.0f} m; "
                                      f"grey: uncovered customers; red: overlaps (k >= {cov.k_min})")
    gdf = cov.uncovered.to_geodataframe()
    ax.add_collection(PathCollection(_paths(gdf.geometry), facecolors="#7f7f7f", edgecolors="none", alpha=0.35))
    _draw_values(ax, cov.density, cm)
    if len(cov.overlap_geometry):
        ax.add_collection(PathCollection(_paths(cov.overlap_geometry), facecolors="none", edgecolors="#d62728",
                                         linewidths=1.2, linestyles="--", hatch="//"))
    ax.add_collection(PathCollection(_paths(cov.rings), facecolors="none", edgecolors="#1f4e9c", linewidths=1.2))
    ax.scatter(cov.stores["lng"], cov.stores["lat"], s=25, c="white", edgecolors="#1f4e9c", linewidths=1.5, zorder=5)
    if len(cov.stores) <= 60:
        for row in cov.stores.itertuples(index=False):
            ax.annotate(str(row.store_id), (row.lng, row.lat), xytext=(4, 4), textcoords="offset points",
                        fontsize=7, color="#1f4e9c")
    caption = f"audience customers per H3 cell (res {cov.res}); k >= {cov.k_min}"
    return _save(fig, ax, cm, values, scale, caption, path, dpi)


def save_png(obj, path: str | Path, **options) -> Path:
    """A static PNG of a heatmap result or a coverage, drawn with matplotlib.

    Parameters
    ----------
    obj : HeatmapResult or Coverage
    path : str or Path
    **options
        ``scale``, ``bins``, ``palette`` (as for the maps), ``dpi``, ``title``.

    Returns
    -------
    Path
    """
    draw = coverage_png if hasattr(obj, "rings") else heatmap_png  # a Coverage carries its rings
    return draw(obj, Path(path), **options)
