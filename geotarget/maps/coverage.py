"""Store coverage: who the radius of each store reaches, and who no store reaches.

:func:`coverage` builds one radius audience over the chosen stores (with
:meth:`geotarget.Engine.audience`, so exactness, consent and filters are the
audience's own) and summarizes it for a map:

- each store's audience size (customers within its radius);
- the true geodesic ring of each store;
- audience density per H3 cell, and the cells of eligible customers left
  uncovered by every store, both above the k-anonymity floor;
- the areas where rings overlap, with the customers each pair shares.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import h3
import numpy as np
import pandas as pd

from geotarget.maps.heatmap import DEFAULT_K_MIN, HeatmapResult, Metric, aggregate_cells, check_k_min

__all__ = ["Coverage", "coverage", "coverage_res"]

#: Resolutions a coverage map picks from: hexagons of about 60 m to 9 km across.
_COVERAGE_RES = (5, 11)


def coverage_res(radius_m: float, *, cells_per_ring: float = 150.0) -> int:
    """The coarsest resolution giving at least ``cells_per_ring`` hexagons per ring (within 5-11).

    Examples
    --------
    >>> coverage_res(3218.688)
    9
    """
    ring_km2 = np.pi * (radius_m / 1000.0) ** 2
    for res in range(_COVERAGE_RES[0], _COVERAGE_RES[1] + 1):
        if h3.average_hexagon_area(res, unit="km^2") <= ring_km2 / cells_per_ring:
            return res
    return _COVERAGE_RES[1]


@dataclass
class Coverage:
    """What a set of store rings covers; see :func:`coverage`.

    Attributes
    ----------
    stores : pandas.DataFrame
        ``store_id``, ``name``, ``lat``, ``lng`` and ``customers`` (eligible
        customers within the radius, exact).
    radius_m : float
    res : int
        Resolution of the density and uncovered cells.
    k_min : int
    density : HeatmapResult
        Audience customers per cell (each customer once), above the floor.
    uncovered : HeatmapResult
        Eligible customers outside every ring, per cell, above the floor.
    overlaps : pandas.DataFrame
        One row per pair of stores whose rings intersect: ``store_a``,
        ``store_b``, ``shared_customers``.
    covered_customers, uncovered_customers : int
    """

    stores: pd.DataFrame
    radius_m: float
    res: int
    k_min: int
    density: HeatmapResult
    uncovered: HeatmapResult
    overlaps: pd.DataFrame
    covered_customers: int
    uncovered_customers: int
    rings: np.ndarray = field(repr=False, default=None)
    overlap_geometry: np.ndarray = field(repr=False, default=None)
    unit: str | None = None

    @property
    def radius_text(self) -> str:
        """The radius in the unit it was given in, e.g. ``'2 mi'``."""
        from geotarget.maps.labels import distance_text

        return distance_text(self.radius_m, self.unit)

    @property
    def title(self) -> str:
        """A plain title, e.g. ``'Who 4 stores reach within 2 mi'``."""
        n = len(self.stores)
        return f"Who {n:,} store{'s' if n != 1 else ''} reach{'es' if n == 1 else ''} within {self.radius_text}"

    @property
    def caption(self) -> str:
        """The legend caption of the density cells."""
        from geotarget.maps.labels import area_word

        return f"Customers within {self.radius_text} per {area_word(self.density)}"

    def summary(self) -> str:
        """One line for people."""
        return (f"{len(self.stores)} store(s), radius {self.radius_text}: {self.covered_customers:,} customers "
                f"covered, {self.uncovered_customers:,} uncovered, {len(self.overlaps)} overlapping pair(s); "
                f"{self.density.suppressed_cells + self.uncovered.suppressed_cells:,} cells below k={self.k_min} "
                "suppressed")

    def __repr__(self) -> str:
        return f"<Coverage {self.summary()}>"

    def to_map(self, **options):
        """A folium map; see :func:`geotarget.maps.coverage_map`."""
        from geotarget.maps.folium import coverage_map

        return coverage_map(self, **options)

    def to_png(self, path: str | Path, **options) -> Path:
        """A static picture; see :func:`geotarget.maps.save_png`."""
        from geotarget.maps.png import save_png

        return save_png(self, path, **options)


def _overlaps(aud, rings) -> tuple[pd.DataFrame, np.ndarray]:
    import shapely

    ids = aud.centers["store_id"].astype(str).to_numpy()
    tree = shapely.STRtree(rings)
    a, b = tree.query(rings, predicate="intersects")
    pairs = [(i, j) for i, j in zip(a.tolist(), b.tolist()) if i < j]
    if not pairs:
        return pd.DataFrame({"store_a": [], "store_b": [], "shared_customers": []}).astype(
            {"shared_customers": "int64"}), np.zeros(0, dtype=object)
    shared = aud.overlap().to_numpy()
    frame = pd.DataFrame({
        "store_a": [ids[i] for i, _ in pairs],
        "store_b": [ids[j] for _, j in pairs],
        "shared_customers": [int(shared[i, j]) for i, j in pairs],
    })
    geoms = shapely.intersection(rings[[i for i, _ in pairs]], rings[[j for _, j in pairs]])
    return frame, np.asarray(geoms, dtype=object)


def coverage(eng, stores="all", radius="2mi", *, res: int | None = None, k_min: int | None = DEFAULT_K_MIN,
             allow_no_floor: bool = False) -> Coverage:
    """Summarize what the rings of ``radius`` around ``stores`` cover.

    Parameters
    ----------
    eng : Engine
    stores : "all" or list of str
        Store ids.
    radius : str or float
        ``"2mi"``, ``"3 km"``; a bare number is kilometres.
    res : int, optional
        Resolution of the cells (5-11); by default about 150 cells per ring.
    k_min, allow_no_floor
        The k-anonymity floor, as in :func:`geotarget.maps.heatmap.heatmap`.

    Returns
    -------
    Coverage

    Examples
    --------
    >>> import geotarget, pandas as pd
    >>> eng = geotarget.open(":memory:")
    >>> _ = eng.ingest_stores(pd.DataFrame({"store_id": ["S1", "S2"], "lat": [40.758, 40.76],
    ...                                     "lng": [-73.9855, -73.97]}))
    >>> _ = eng.ingest_customers(pd.DataFrame({"customer_id": [f"c{i}" for i in range(30)],
    ...     "lat": [40.759] * 20 + [40.9] * 10, "lng": [-73.98] * 20 + [-73.9] * 10}))
    >>> cov = coverage(eng, ["S1", "S2"], "1km", k_min=5)
    >>> cov.stores["customers"].tolist(), cov.covered_customers, cov.uncovered_customers
    ([20, 20], 20, 10)
    >>> cov.overlaps.values.tolist()
    [['S1', 'S2', 20]]
    """
    from geotarget.maps.geometry import geodesic_ring
    from geotarget.maps.labels import unit_of
    from geotarget.units import parse_radius

    k = check_k_min(k_min, allow_no_floor)
    radius_m = parse_radius(radius)
    res = coverage_res(radius_m) if res is None else res
    aud = eng.audience(stores=stores, radius_m=radius_m)
    counts = aud.counts()
    frame = aud.centers[["store_id", "name", "lat", "lng"]].reset_index(drop=True).copy()
    frame["customers"] = counts["within"].to_numpy()
    rings = np.asarray([geodesic_ring(lat, lng, radius_m) for lat, lng in zip(frame["lat"], frame["lng"])],
                       dtype=object)
    density = aggregate_cells(eng, res, Metric("count"), audience=aud, k_min=k)
    uncovered = aggregate_cells(eng, res, Metric("count"), audience=aud, exclude_audience=True, k_min=k)
    overlaps, geoms = _overlaps(aud, rings)
    return Coverage(frame, radius_m, res, k, density, uncovered, overlaps, covered_customers=len(aud),
                    uncovered_customers=uncovered.total_customers, rings=rings, overlap_geometry=geoms,
                    unit=unit_of(radius))
