"""Exact audiences: radius around stores or points, regions, hex rings.

Every query runs in three steps:

1. **Cover.** H3 cells that can never miss a member (a conservative disk or
   polygon covering) become integer ranges over the customer snapshot, which
   is sorted by fine cell (:mod:`geotarget.audience.index`).
2. **Refine.** Candidates are tested exactly: WGS84 geodesic distance for
   radius queries (:func:`geotarget.geo.geodesy.within_radius`), point-in-polygon
   with boundary points inside (``shapely.intersects_xy``) for regions, the
   cell itself for hex rings.
3. **Narrow.** Exclusion zones, segment filters (bound parameters, evaluated
   by DuckDB), and the holdout split.

Opted-out and suppressed customers are not in the snapshot, so they can never
reach an audience.
"""

from __future__ import annotations

import uuid

import numpy as np
import pyarrow as pa

from geotarget._lazy import lazy_module
from geotarget.audience import budget as _budget
from geotarget.audience.filters import compile_filters, parse_filters
from geotarget.audience.index import CustomerIndex
from geotarget.audience.membership import (  # noqa: F401  (re-exported for campaigns and the service)
    _check_latlng,
    _chosen_regions,
    _disk_ranges,
    _filter_positions,
    _in_polygons,
    _parse_region_ref,
    _parse_zone,
    _point_centers,
    _polygon_ranges,
    _radius_members,
    _region_of,
    _region_positions,
    _regions,
    _ring_positions,
    _store_center_columns,
    _store_centers,
    parse_zone_text,
)
from geotarget.audience.nearest import _nearest, within_counts
from geotarget.audience.privacy import holdout_groups
from geotarget.errors import InvalidInputError
from geotarget.geo.cells import cell_column_res, cells_to_str, latlng_to_cells
from geotarget.geo.geodesy import within_radius
from geotarget.units import parse_radius

pd = lazy_module("pandas")  # imported on first use: the one-shot audience path never needs it

__all__ = ["Audience", "build_audience"]


# -- the result ----------------------------------------------------------------
class Audience:
    """The customers of one audience query, with exports.

    ``len(aud)`` is the audience size (treatment and control together).
    Rows are materialized only by :meth:`to_pandas` and the exports.
    """

    def __init__(self, engine, index: CustomerIndex, positions: np.ndarray, *, kind: str, description: str,
                 distance_m: np.ndarray | None = None, center_ids: np.ndarray | None = None,
                 centers=None, center_label: str | None = None, radius_m: float | None = None,
                 within_counts: np.ndarray | None = None, groups: np.ndarray | None = None,
                 campaign: str | None = None, columns: list[str] | None = None, min_size: int | None = None,
                 region_codes: np.ndarray | None = None, region_table: pd.DataFrame | None = None,
                 center_columns: dict | None = None):
        self._engine = engine
        self._index = index
        self.positions = positions
        self.kind = kind
        self.description = description
        self.distance_m = distance_m
        self.center_ids = center_ids
        # the centres as a DataFrame, or a function making it on first use (see :attr:`centers`)
        self._centers = centers
        if center_columns is None and centers is not None and not callable(centers):
            center_columns = {c: centers[c].to_numpy() for c in centers.columns}
        self._center_columns = center_columns  # name -> numpy array: what queries and CSV exports read
        self.center_label = center_label
        self.radius_m = radius_m
        self._within_counts = within_counts
        self._narrowed = False  # set when exclusions or filters removed customers after the radius step
        self._center_codes = None
        self.groups = groups
        self.campaign = campaign
        self.columns = list(columns or [])
        self.min_size = min_size
        self.region_codes = region_codes  # per customer: row of region_table holding it (the first asked for)
        self.region_table = region_table  # region_id, name of the regions of a region audience
        #: Called once an export of this audience is allowed (a campaign freezes its groups then).
        self.on_export = None

    def __len__(self) -> int:
        return int(self.positions.size)

    def __repr__(self) -> str:
        extra = f", {self.control_count:,} control" if self.groups is not None else ""
        return f"<Audience {self.description}: {len(self):,} customers{extra}>"

    @property
    def centers(self) -> pd.DataFrame | None:
        """The stores or points of a radius audience (id, lat, lng, name for stores); None otherwise."""
        if callable(self._centers):
            self._centers = self._centers()
        elif self._centers is None and self._center_columns is not None:
            self._centers = pd.DataFrame(self._center_columns)
        return self._centers

    @property
    def center_count(self) -> int:
        """How many stores or points a radius audience is around (0 for other audiences)."""
        return 0 if self._center_columns is None else int(len(self._center_columns[self.center_label]))

    @property
    def treatment_count(self) -> int:
        """Customers in the treatment group (all of them without a holdout)."""
        return len(self) if self.groups is None else int((self.groups == "treatment").sum())

    @property
    def control_count(self) -> int:
        """Customers held out as the control group."""
        return 0 if self.groups is None else int((self.groups == "control").sum())

    def counts(self) -> pd.DataFrame:
        """Per store (or point): customers within the radius, and those it is nearest for.

        ``within`` counts a customer for every queried store in range;
        ``assigned`` counts it once, for its nearest store, and sums to
        ``len(aud)``. Both count only the audience's customers, after
        exclusions and segment filters, so ``within`` equals the diagonal
        of :meth:`overlap`.
        """
        if self.centers is None:
            raise InvalidInputError("per-store counts exist only for radius audiences around stores or points")
        label = self.center_label
        ids = self.centers[label].to_numpy()
        assigned = pd.Series(self.center_ids).value_counts() if len(self) else pd.Series(dtype="int64")
        out = pd.DataFrame({label: ids, "within": self._within().astype("int64")})
        out["assigned"] = out[label].map(assigned).fillna(0).astype("int64")
        if "name" in self.centers.columns:
            out.insert(1, "name", self.centers["name"].to_numpy())
        return out

    def _members_of(self, k: int) -> np.ndarray:
        """Positions in the audience (after exclusions and filters) within the radius of centre ``k``."""
        clat, clng = self._center_columns["lat"][k], self._center_columns["lng"][k]
        pos = _radius_members(self._index, clat, clng, self.radius_m)[0]
        return pos[np.isin(pos, self.positions, assume_unique=True)] if pos.size else pos

    def _within(self) -> np.ndarray:
        """Per centre, the audience's customers within its radius: the overlap matrix's diagonal."""
        if not self._narrowed or self.radius_m is None:
            if self._within_counts is None:  # computed on first use: an audience of many stores needs no counts
                self._within_counts = within_counts(self._index, self._center_columns["lat"],
                                                    self._center_columns["lng"], self.radius_m)
            return self._within_counts
        return np.array([self._members_of(k).size for k in range(self.center_count)], dtype=np.int64)

    def overlap(self) -> pd.DataFrame:
        """Square matrix: customers within the radius of both stores (the cannibalization view).

        The diagonal holds each store's ``within`` count.
        """
        if self.centers is None or self.radius_m is None:
            raise InvalidInputError("an overlap matrix exists only for radius audiences")
        from scipy import sparse

        rows, cols = [], []
        for k in range(len(self.centers)):
            pos = self._members_of(k)  # exclusions and filters apply to the overlap too
            rows.append(pos)
            cols.append(np.full(pos.size, k))
        n = len(self.centers)
        r = np.concatenate(rows) if rows else np.zeros(0, dtype=np.int64)
        c = np.concatenate(cols) if cols else np.zeros(0, dtype=np.int64)
        m = sparse.csr_matrix((np.ones(r.size, dtype=np.int32), (r, c)), shape=(len(self._index), n))
        shared = (m.T @ m).toarray()
        labels = self.centers[self.center_label].to_numpy()
        return pd.DataFrame(shared, index=pd.Index(labels, name=self.center_label), columns=labels)

    def to_pandas(self, columns: list[str] | None = None) -> pd.DataFrame:
        """The audience rows: customer_id, lat, lng (+ distance_m, store_id, region_id and region, group,
        attributes).

        In a region audience (or a radius one narrowed to regions), ``region_id``
        and ``region`` name the region holding each customer; where regions
        overlap, the first of those asked for.
        """
        pos = self.positions
        frame = pd.DataFrame({
            "customer_id": self._index.take_ids(pos).to_pandas(),
            "lat": self._index.lat[pos],
            "lng": self._index.lng[pos],
        })
        if self.distance_m is not None:
            frame["distance_m"] = self.distance_m
        if self.center_ids is not None:
            frame[self.center_label] = pd.Categorical.from_codes(
                self._center_codes, categories=self.center_labels()
            ) if self._center_codes is not None else self.center_ids
        if self.region_codes is not None:
            ids = self.region_table["region_id"].astype(str).to_numpy()
            names = self.region_table["name"].astype(object).to_numpy()
            frame["region_id"] = pd.Categorical.from_codes(self.region_codes, categories=pd.unique(ids)) \
                if len(set(ids)) == len(ids) else ids[self.region_codes]
            frame["region"] = names[self.region_codes]
        if self.groups is not None:
            frame["group"] = self.groups
        wanted = list(dict.fromkeys((columns or []) + self.columns))
        cells = _cell_columns(self._engine, wanted)
        wanted = [c for c in wanted if c not in cells]
        if wanted and len(frame):
            frame = _attach_columns(self._engine, frame, wanted)
        for name, res in cells.items():  # the cell containing each customer, as h3-py's latlng_to_cell names it
            frame[name] = cells_to_str(latlng_to_cells(frame["lat"].to_numpy(), frame["lng"].to_numpy(), res))
        return frame

    def center_labels(self) -> np.ndarray:
        """The ids of the centres (store or point ids) as strings, in :attr:`centers` order."""
        return np.array([str(v) for v in self._center_columns[self.center_label]], dtype=object)

    def to_geodataframe(self, columns: list[str] | None = None):
        """The rows as a GeoDataFrame of points (EPSG:4326)."""
        import geopandas as gpd

        frame = self.to_pandas(columns)
        return gpd.GeoDataFrame(frame, geometry=gpd.points_from_xy(frame["lng"], frame["lat"]), crs="EPSG:4326")

    def summary(self) -> dict:
        """Size, groups and query, as a dict (what the CLI and service print)."""
        out = {"description": self.description, "customers": len(self), "treatment": self.treatment_count,
               "control": self.control_count}
        if self.centers is not None:
            out["per_store"] = self.counts().to_dict(orient="records")
        return out

    # exports live in geotarget.audience.export; these are thin doors to them
    def to_csv(self, path, *, columns=None, allow_small: bool = False):
        """Write a CSV; refused below the minimum audience size unless ``allow_small``."""
        from geotarget.audience.export import write_audience

        return write_audience(self, path, "csv", columns=columns, allow_small=allow_small)

    def to_parquet(self, path, *, columns=None, allow_small: bool = False):
        """Write Parquet; refused below the minimum audience size unless ``allow_small``."""
        from geotarget.audience.export import write_audience

        return write_audience(self, path, "parquet", columns=columns, allow_small=allow_small)

    def to_geoparquet(self, path, *, columns=None, allow_small: bool = False):
        """Write GeoParquet (point geometry); refused below the minimum size unless ``allow_small``."""
        from geotarget.audience.export import write_audience

        return write_audience(self, path, "geoparquet", columns=columns, allow_small=allow_small)

    def to_geojson(self, path, *, columns=None, allow_small: bool = False):
        """Write GeoJSON points; refused below the minimum size unless ``allow_small``."""
        from geotarget.audience.export import write_audience

        return write_audience(self, path, "geojson", columns=columns, allow_small=allow_small)

    def to_customer_match(self, path, *, platform: str = "google", allow_small: bool = False,
                          include_control: bool = False):
        """Write hashed emails/phones for ad-platform customer matching (no raw identifiers)."""
        from geotarget.audience.export import write_customer_match

        return write_customer_match(self, path, platform=platform, allow_small=allow_small,
                                    include_control=include_control)


def _cell_columns(engine, wanted: list[str]) -> dict[str, int]:
    """Wanted columns ``h3_<res>`` that no stored customer column shadows, with their resolutions."""
    out = {c: cell_column_res(c) for c in wanted if cell_column_res(c) is not None}
    if out:
        stored = {c.lower() for c in engine.store.columns("customers")}
        out = {c: r for c, r in out.items() if c.lower() not in stored}
    return out


def _attach_columns(engine, frame: pd.DataFrame, wanted: list[str]) -> pd.DataFrame:
    available = engine.store.columns("customers")
    lookup = {c.lower(): c for c in available}
    real = []
    for col in wanted:
        if col.lower() not in lookup:
            raise InvalidInputError(f"unknown customer column {col!r}; available columns: {', '.join(available)}, "
                                    "or h3_0 to h3_15 for the cell containing each customer")
        if lookup[col.lower()] not in frame.columns:
            real.append(lookup[col.lower()])
    if not real:
        return frame
    name = f"_ids_{uuid.uuid4().hex[:10]}"
    con = engine.store.con
    con.register(name, pa.table({"customer_id": pa.array(frame["customer_id"].astype(str).tolist(), pa.string())}))
    try:
        select = ", ".join('c."' + c.replace('"', '""') + '"' for c in real)
        attrs = con.sql(f"SELECT c.customer_id, {select} FROM customers c JOIN {name} USING (customer_id)"
                        ).to_arrow_table().to_pandas()
    finally:
        con.unregister(name)
    return frame.merge(attrs.astype({"customer_id": frame["customer_id"].dtype}), on="customer_id", how="left")


# -- the query -------------------------------------------------------------------
def build_audience(engine, *, stores=None, points=None, radius=None, radius_m=None, allow_large_radius=False,
                   region_layer=None, regions=None, ring_cell=None, ring_point=None, k=1, res=None,
                   where=None, exclude_within=None, exclude_regions=None, holdout=None, campaign=None,
                   columns=None, min_size=None) -> Audience:
    """Run one audience query (see :meth:`geotarget.Engine.audience`)."""
    radial = stores is not None or points is not None
    modes = [stores is not None, points is not None, region_layer is not None and not radial,
             ring_cell is not None or ring_point is not None]
    segment_only = sum(modes) == 0 and bool(where)
    if sum(modes) != 1 and not segment_only:
        raise InvalidInputError(
            "give exactly one of: stores= (with radius), points= (with radius), region_layer= (with regions), "
            "ring_cell= or ring_point= (with k); region_layer= may also narrow a radius audience, and where= "
            "alone selects the matching customers everywhere")
    if region_layer is None and regions is not None:
        raise InvalidInputError("regions= needs region_layer=, the layer they belong to")
    if where:  # fail early on a malformed filter, or a value that does not fit its column, before any work
        compile_filters(where, engine.store.columns("customers"))
    index = engine._index_cache.get()
    extra: dict = {}
    chosen = region_geoms = None
    if region_layer is not None:
        chosen = _chosen_regions(engine, region_layer, regions)
        region_geoms = _regions(engine, region_layer, regions)
    if segment_only:
        positions = np.arange(len(index), dtype=np.int64)
        _budget.charge_candidates(positions.size)
        desc = "matching " + " and ".join(str(c) for c in parse_filters(where)) + ", everywhere"
    elif stores is not None or points is not None:
        metres = parse_radius(radius, radius_m=radius_m, allow_large=allow_large_radius)
        if stores is not None:
            (cols, centers), label = _store_center_columns(engine, stores), "store_id"
        else:
            centers, label = _point_centers(points), "point_id"
            cols = {c: centers[c].to_numpy() for c in centers.columns}
        members, which, dist, within = _nearest(index, cols["lat"], cols["lng"], metres)
        order = np.argsort(members, kind="stable")
        positions = members[order]
        extra = dict(distance_m=dist[order], center_ids=cols[label][which[order]], centers=centers,
                     center_columns=cols, center_label=label, radius_m=metres, within_counts=within,
                     codes=which[order])
        n_centers = len(cols[label])
        what = f"stores {', '.join(str(v) for v in cols[label][:5])}{'...' if n_centers > 5 else ''}" \
            if label == "store_id" else f"{n_centers} point(s)"
        desc = f"within {metres:,.0f} m of {what}"
        if region_layer is not None:
            desc += f" and in {len(region_geoms)} region(s) of layer {region_layer!r}"
    elif region_layer is not None:
        positions = _region_positions(index, region_geoms)
        desc = f"in {len(region_geoms)} region(s) of layer {region_layer!r}"
    else:
        positions, desc = _ring_positions(index, ring_cell, ring_point, k, res)
    keep = np.ones(positions.size, dtype=bool)
    region_codes = None
    if region_geoms is not None:
        region_codes = _region_of(index, positions, region_geoms)
        keep &= region_codes >= 0
    for zone in (exclude_within or []):
        zlat, zlng, zr = _parse_zone(zone)
        if positions.size:
            keep &= ~within_radius(index.lat[positions], index.lng[positions], zlat, zlng, zr)
    for item in (exclude_regions or []):
        layer, name = _parse_region_ref(item)
        keep &= ~_in_polygons(index, positions, _regions(engine, layer, [name]))
    if where:
        keep &= _filter_positions(engine, index, positions, where)
    if not keep.all():
        positions = positions[keep]
        if region_codes is not None:
            region_codes = region_codes[keep]
        for key in ("distance_m", "center_ids", "codes"):
            if key in extra:
                extra[key] = extra[key][keep]
    groups = None
    if holdout:
        groups = holdout_groups(index.take_ids(positions).to_pylist(), holdout, campaign)
    codes = extra.pop("codes", None)
    kind = "radius" if extra else "region" if region_layer else "segment" if segment_only else "ring"
    aud = Audience(engine, index, positions, kind=kind, description=desc, groups=groups, campaign=campaign,
                   columns=columns, min_size=min_size, region_codes=region_codes,
                   region_table=None if chosen is None else chosen[["region_id", "name"]].reset_index(drop=True),
                   **extra)
    aud._center_codes = codes
    aud._narrowed = not bool(keep.all())
    return aud


