"""Aggregates and pictures: heatmaps and their metrics, store coverage, Folium and PNG rendering.

Maps draw aggregates only (cells or regions above the k floor), never a customer point or id.
The names below are loaded on first use (PEP 562): folium, pandas and matplotlib are imported
only when a heatmap, a map or a PNG is made.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING

if TYPE_CHECKING:  # pragma: no cover - for type checkers and IDEs only
    from geotarget.maps.choropleth import choropleth_map
    from geotarget.maps.coverage import Coverage
    from geotarget.maps.folium import DEFAULT_TILES, coverage_map, heatmap_map, save_html
    from geotarget.maps.metric import Metric, parse_metric
    from geotarget.maps.png import save_png
    from geotarget.maps.result import HeatmapResult

_LAZY = {
    "choropleth_map": "geotarget.maps.choropleth",
    "Coverage": "geotarget.maps.coverage",
    "coverage_map": "geotarget.maps.folium",
    "DEFAULT_TILES": "geotarget.maps.folium",
    "heatmap_map": "geotarget.maps.folium",
    "HeatmapResult": "geotarget.maps.result",
    "Metric": "geotarget.maps.metric",
    "parse_metric": "geotarget.maps.metric",
    "save_html": "geotarget.maps.folium",
    "save_png": "geotarget.maps.png",  # matplotlib, only when a PNG is made
}


def __getattr__(name: str):
    if name not in _LAZY:
        raise AttributeError(f"module 'geotarget.maps' has no attribute {name!r}")
    value = getattr(importlib.import_module(_LAZY[name]), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(__all__))


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
