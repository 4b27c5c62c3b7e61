"""Aggregates and pictures: heatmaps and their metrics, store coverage, Folium and PNG rendering.

Maps draw aggregates only (cells or regions above the k floor), never a customer point or id.
"""

from __future__ import annotations

from geotarget.maps.choropleth import choropleth_map
from geotarget.maps.coverage import Coverage
from geotarget.maps.folium import DEFAULT_TILES, coverage_map, heatmap_map, save_html
from geotarget.maps.metric import Metric, parse_metric
from geotarget.maps.result import HeatmapResult


def __getattr__(name):
    # save_png draws with matplotlib, which is imported only when a PNG is made
    if name == "save_png":
        from geotarget.maps.png import save_png

        return save_png
    raise AttributeError(f"module 'geotarget.maps' has no attribute {name!r}")


__all__ = [
    "choropleth_map",
    "Coverage",
    "coverage_map",
    "DEFAULT_TILES",
    "heatmap_map",
    "HeatmapResult",
    "Metric",
    "parse_metric",
    "save_html",
    "save_png",
]
