"""The places a visitation audience is about, and the partitions and cells they touch.

A :class:`Places` is plain data (ids, centres and radii, or polygons as WKB,
or H3 cells) so it can be shipped to Spark workers as it is. Its coverings
come from the same cover-and-refine machinery as customer audiences
(:mod:`geotarget.audience.membership`): the fine-cell ranges of a geodesic disk or a
polygon, and from them the coarse H3 parents whose partitions must be read.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import h3
import numpy as np
import pandas as pd

from ..audience.membership import _disk_ranges, _layer_frame, _point_centers, _polygon_ranges, _prepared, _store_centers
from ..errors import InvalidInputError, NotFoundError
from ..geo.cells import cell_ranges, cells_to_parents, str_to_cells
from ..units import parse_radius
from . import consent
from .dataset import PARTITION_RES

__all__ = ["Places", "read_points", "read_regions", "resolve_places", "sensitive_geometries"]


@dataclass(frozen=True)
class Places:
    """Places to match pings against: one kind (``radius``, ``regions`` or ``cells``)."""

    kind: str
    ids: tuple[str, ...]
    lat: tuple[float, ...] = ()
    lng: tuple[float, ...] = ()
    radius_m: float = 0.0
    wkb: tuple[bytes, ...] = ()
    cells: tuple[int, ...] = ()
    description: str = ""
    sensitive_wkb: tuple[bytes, ...] = field(default=(), repr=False)

    def geometries(self) -> list:
        """The region polygons, prepared (cached per WKB)."""
        return [_prepared(b) for b in self.wkb]

    def sensitive(self) -> list:
        """Polygons of every sensitive layer, prepared."""
        return [_prepared(b) for b in self.sensitive_wkb]

    def place_ranges(self, i: int) -> np.ndarray:
        """Fine-cell (resolution 15) ranges covering place ``i`` conservatively."""
        if self.kind == "radius":
            return _disk_ranges(round(self.lat[i], 12), round(self.lng[i], 12), self.radius_m, 15)
        if self.kind == "regions":
            return _polygon_ranges(_prepared(self.wkb[i]), 15)
        return cell_ranges([self.cells[i]], 15)

    def fine_ranges(self) -> np.ndarray:
        """Merged fine-cell ranges covering every place."""
        parts = [self.place_ranges(i) for i in range(len(self.ids))]
        return _merge(np.concatenate(parts)) if parts else np.zeros((0, 2), dtype="uint64")

    def parent_ranges(self, res: int = PARTITION_RES) -> np.ndarray:
        """Inclusive int64 ranges of the partition parents (H3 cells at ``res``) the places touch.

        A fine range descends from one covering cell; when that cell is at
        ``res`` or finer both ends share one parent, otherwise its parents at
        ``res`` form one contiguous integer range.
        """
        fine = self.fine_ranges()
        if fine.size == 0:
            return np.zeros((0, 2), dtype="int64")
        lo = cells_to_parents(fine[:, 0], res)
        hi = cells_to_parents(fine[:, 1], res)
        return _merge(np.stack([lo, hi], axis=1)).astype("int64")


def _merge(ranges: np.ndarray) -> np.ndarray:
    ranges = ranges[np.argsort(ranges[:, 0], kind="stable")]
    out: list[list[int]] = []
    for lo, hi in ranges.tolist():
        if out and lo <= out[-1][1] + 1:
            out[-1][1] = max(out[-1][1], hi)
        else:
            out.append([lo, hi])
    return np.array(out, dtype=ranges.dtype).reshape(-1, 2)


def sensitive_geometries(engine) -> tuple[bytes, ...]:
    """WKB of every polygon in a sensitive layer."""
    out: list[bytes] = []
    for layer in consent.sensitive_layers(engine.store):
        out.extend(bytes(b) for b in _layer_frame(engine, layer)["geometry"])
    return tuple(out)


def _region_rows(engine, layer: str, regions) -> pd.DataFrame:
    frame = _layer_frame(engine, layer)
    if frame.empty:
        raise NotFoundError(f"region layer {layer!r} not found; layers: {', '.join(engine.layers()) or 'none yet'}")
    if regions is None:
        return frame.sort_values("region_id")
    names = [regions] if isinstance(regions, str) else list(regions)
    ids = frame["region_id"].astype(str).str.lower().tolist()
    labels = frame["name"].astype("string").str.lower().tolist()
    rows = []
    for nm in names:
        key = str(nm).lower()
        if key in ids:
            rows.append(ids.index(key))
        elif key in labels:
            rows.append(labels.index(key))
        else:
            raise NotFoundError(f"region {nm!r} not found in layer {layer!r}; give a region id or name of that layer")
    return frame.iloc[sorted(set(rows))].sort_values("region_id")


def resolve_places(engine, *, stores=None, points=None, radius=None, radius_m=None, region_layer=None,
                   regions=None, campaign=None) -> Places:
    """The places of a visitation query, from exactly one of stores/points (+radius), regions or a campaign.

    ``points`` is ``[(lat, lng), ...]`` or a DataFrame with ``lat``, ``lng``
    and ``place_id`` (or ``point_id``), e.g. competitors' locations for a
    conquesting audience.

    Examples
    --------
    >>> import geotarget
    >>> eng = geotarget.open(":memory:")
    >>> p = resolve_places(eng, points=[(40.758, -73.9855)], radius="200m")
    >>> p.kind, p.ids, p.radius_m
    ('radius', ('P1',), 200.0)
    """
    given = [stores is not None, points is not None, region_layer is not None, campaign is not None]
    if sum(given) != 1:
        raise InvalidInputError("give exactly one of: stores= or points= (with radius=), region_layer= (with "
                                "regions=), or campaign= (its geofence)")
    sensitive = sensitive_geometries(engine)
    if campaign is not None:
        fence = engine.campaign(campaign).geofence
        if fence["kind"] == "radius":
            stores, radius_m, radius = fence["stores"], fence["radius_m"], None
        elif fence["kind"] == "regions":
            region_layer, regions = fence["layer"], fence["regions"]
        else:
            cells = [int(c) for c in str_to_cells(fence["cells"])]
            return Places("cells", tuple(h3.int_to_str(c) for c in cells), cells=tuple(cells),
                          description=f"in the H3 cells of campaign {campaign!r}", sensitive_wkb=sensitive)
    if region_layer is not None:
        if radius is not None or radius_m is not None:
            raise InvalidInputError("radius= applies to stores= or points=, not to region_layer=")
        consent.check_targetable(engine.store, region_layer)
        rows = _region_rows(engine, region_layer, regions)
        return Places("regions", tuple(rows["region_id"].astype(str)), wkb=tuple(bytes(b) for b in rows["geometry"]),
                      description=f"in {len(rows)} region(s) of layer {region_layer!r}", sensitive_wkb=sensitive)
    if radius is None and radius_m is None:
        raise InvalidInputError("radius: a visit near stores or points needs radius= with a unit, e.g. '200m'")
    metres = parse_radius(radius, radius_m=radius_m)
    if stores is not None:
        frame = _store_centers(engine, stores)
        ids = frame["store_id"].astype(str)
        what = f"{len(frame)} store(s)"
    else:
        if isinstance(points, pd.DataFrame) and "place_id" in points.columns and "point_id" not in points.columns:
            points = points.rename(columns={"place_id": "point_id"})
        frame = _point_centers(points).sort_values("point_id", kind="stable")
        ids = frame["point_id"].astype(str)
        what = f"{len(frame)} place(s)"
    return Places("radius", tuple(ids), lat=tuple(frame["lat"].astype(float)), lng=tuple(frame["lng"].astype(float)),
                  radius_m=float(metres), description=f"within {metres:,.0f} m of {what}", sensitive_wkb=sensitive)


def read_points(source) -> pd.DataFrame:
    """Places from a file or DataFrame of points (e.g. competitors): ``place_id``, ``name``, ``lat``, ``lng``.

    Rows go through the stores' validation (id and location checks); any bad
    row is an error naming it, since a silently dropped place would shrink
    an audience.

    Examples
    --------
    >>> import pandas as pd
    >>> read_points(pd.DataFrame({"id": ["K2", "K1"], "lat": [40.7, 40.8], "lng": [-74.0, -73.9]}))["place_id"].tolist()
    ['K1', 'K2']
    """
    from ..store.database import Store
    from ..store.ingest import ingest_points

    store = Store(":memory:")
    try:
        report = ingest_points(store, source, "stores")
        if report.rejected:
            row = store.frame("SELECT row_number, reason FROM rejects ORDER BY row_number LIMIT 1").iloc[0]
            raise InvalidInputError(f"{report.rejected} place(s) in {report.source} are invalid, e.g. row "
                                    f"{int(row['row_number'])}: {row['reason']}; fix them first")
        if not report.loaded:
            raise InvalidInputError(f"{report.source} holds no places")
        frame = store.frame("SELECT store_id AS place_id, name, lat, lng FROM stores ORDER BY store_id")
    finally:
        store.close()
    return frame


def read_regions(source, *, id_col: str | None = None, name_col: str | None = None) -> Places:
    """Region places from a polygon file or GeoDataFrame, validated as region layers are.

    Examples
    --------
    >>> import geopandas as gpd, shapely
    >>> frame = gpd.GeoDataFrame({"id": ["a"]}, geometry=[shapely.box(-74, 40.7, -73.9, 40.8)], crs="EPSG:4326")
    >>> read_regions(frame).ids
    ('a',)
    """
    from ..store.database import Store
    from ..store.ingest import ingest_regions

    store = Store(":memory:")
    try:
        report = ingest_regions(store, source, layer="places", id_col=id_col, name_col=name_col)
        if not report.loaded:
            raise InvalidInputError(f"{report.source} holds no usable polygons")
        rows = store.frame("SELECT region_id, geometry FROM regions ORDER BY region_id")
    finally:
        store.close()
    return Places("regions", tuple(rows["region_id"].astype(str)), wkb=tuple(bytes(b) for b in rows["geometry"]),
                  description=f"in {len(rows)} region(s) of {report.source}")
