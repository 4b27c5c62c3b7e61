"""The result of a heatmap: rows that passed the privacy floor, and their exports."""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd

from geotarget.errors import InvalidInputError

if TYPE_CHECKING:
    from geotarget.maps.metric import Metric

__all__ = ["HeatmapResult"]


@dataclass
class HeatmapResult:
    """Aggregates per cell or per region, with what the privacy floor left out.

    Attributes
    ----------
    frame : pandas.DataFrame
        One row per shown cell (``cell`` uint64, ``h3`` text) or region
        (``region_id``, ``name``), with ``customers``, ``value`` and, for
        penetration, ``population``.
    metric : Metric
    k_min : int
        The floor applied (1 when it was switched off).
    res : int or None
        H3 resolution of a cell result.
    layer : str or None
        Region layer of a region result.
    suppressed_cells, suppressed_regions : int
        Cells or regions left out by the floor.
    suppressed_customers : int
        Customers in the rows left out.
    total_customers : int
        Eligible customers aggregated (in the audience, when there is one).
    unassigned_customers : int
        For a region result, customers outside every region of the layer.
    hidden : numpy.ndarray or None
        Where the floor hid something: the cells (uint64) or region polygons
        holding at least one and fewer than ``k_min`` customers. Maps hatch
        them as "fewer than k"; no count or id of theirs is kept.
    """

    frame: pd.DataFrame
    metric: Metric
    k_min: int
    res: int | None = None
    layer: str | None = None
    suppressed_cells: int = 0
    suppressed_regions: int = 0
    suppressed_customers: int = 0
    total_customers: int = 0
    unassigned_customers: int = 0
    geometry: Any = field(default=None, repr=False)
    hidden: Any = field(default=None, repr=False)

    @property
    def level(self) -> str:
        """``'cell'`` or ``'region'``."""
        return "cell" if self.layer is None else "region"

    @property
    def cells(self) -> pd.DataFrame:
        """The shown cells (a cell result only)."""
        if self.level != "cell":
            raise InvalidInputError(f"this is a result per region of layer {self.layer!r}; use .regions")
        return self.frame

    @property
    def regions(self) -> pd.DataFrame:
        """The shown regions (a region result only)."""
        if self.level != "region":
            raise InvalidInputError(f"this is a result per H3 cell at res {self.res}; use .cells")
        return self.frame

    @property
    def caption(self) -> str:
        """A legend caption in plain words: the metric, the area it is counted over, its units."""
        from geotarget.maps.labels import caption

        return caption(self)

    def hidden_polygons(self):
        """Polygons (lng, lat) of the areas the floor hid, for maps to hatch."""
        from geotarget.maps.geometry import cells_to_polygons

        if self.hidden is None or len(self.hidden) == 0:
            return np.zeros(0, dtype=object)
        if self.level == "cell":
            return cells_to_polygons(self.hidden)
        return np.asarray(self.hidden, dtype=object)

    def summary(self) -> str:
        """One line: what is shown and what the floor left out."""
        unit = "cells" if self.level == "cell" else "regions"
        left = self.suppressed_cells if self.level == "cell" else self.suppressed_regions
        return (f"{len(self.frame):,} {unit} of {self.metric.label} from {self.total_customers:,} customers; "
                f"{left:,} {unit} holding {self.suppressed_customers:,} customers suppressed below k={self.k_min}")

    def __repr__(self) -> str:
        return f"<HeatmapResult {self.summary()}>"

    def to_geodataframe(self):
        """The shown rows with their hexagon or region polygons (EPSG:4326, rounded)."""
        import geopandas as gpd

        from geotarget.maps.geometry import cells_to_polygons, round_geometry

        df = self.frame.drop(columns=["cell"], errors="ignore")
        geoms = cells_to_polygons(self.frame["cell"]) if self.level == "cell" else round_geometry(
            np.asarray(self.geometry, dtype=object))
        return gpd.GeoDataFrame(df.reset_index(drop=True), geometry=list(geoms), crs="EPSG:4326")

    def to_geojson(self, path: str | Path) -> Path:
        """Write the shown rows as a GeoJSON FeatureCollection of polygons."""
        import shapely

        gdf = self.to_geodataframe()
        props = json.loads(gdf.drop(columns="geometry").to_json(orient="records"))
        features = [{"type": "Feature", "properties": p, "geometry": json.loads(shapely.to_geojson(g))}
                    for p, g in zip(props, gdf.geometry)]
        path = Path(path)
        path.write_text(json.dumps({"type": "FeatureCollection", "features": features}, separators=(",", ":")))
        return path

    def to_csv(self, path: str | Path) -> Path:
        """Write the shown rows as CSV (cells keep ``cell`` and ``h3``)."""
        path = Path(path)
        self.frame.to_csv(path, index=False)
        return path

    def to_parquet(self, path: str | Path) -> Path:
        """Write the shown rows as Parquet."""
        path = Path(path)
        self.frame.to_parquet(path, index=False)
        return path

    def save(self, path: str | Path) -> Path:
        """Write as CSV, Parquet or GeoJSON, chosen by the file's suffix."""
        suffix = Path(path).suffix.lower()
        writers = {".csv": self.to_csv, ".parquet": self.to_parquet, ".geojson": self.to_geojson,
                   ".json": self.to_geojson}
        if suffix not in writers:
            raise InvalidInputError(f"cannot tell the format of {str(path)!r}; use .csv, .parquet or .geojson")
        return writers[suffix](path)

    def to_map(self, **options):
        """A folium map of this result; see :func:`geotarget.maps.heatmap_map`."""
        from geotarget.maps.folium import heatmap_map

        return heatmap_map(self, **options)

    def to_png(self, path: str | Path, **options) -> Path:
        """A static picture for reports; see :func:`geotarget.maps.save_png`."""
        from geotarget.maps.png import save_png

        return save_png(self, path, **options)
