"""Geometry on the ellipsoid: H3 cells and coverings, geodesic distances, the lat/lng grid of the lookup.

The bottom layer: it imports nothing of geotarget but :mod:`geotarget.errors` and :mod:`geotarget.units`.
"""

from __future__ import annotations

from geotarget.geo.cells import FINE_RES, cells_to_parents, cells_to_str, latlng_to_cells, str_to_cells
from geotarget.geo.geodesy import geodesic_distance_m, within_radius


def __getattr__(name: str):
    if name == "WGS84":  # pyproj's ellipsoid, imported on first use
        from geotarget.geo import geodesy

        return geodesy.WGS84
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


__all__ = [
    "cells_to_parents",
    "cells_to_str",
    "FINE_RES",
    "geodesic_distance_m",
    "latlng_to_cells",
    "str_to_cells",
    "WGS84",
    "within_radius",
]
