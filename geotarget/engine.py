"""The engine: one object per database, the entry point of the library."""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime

import numpy as np

from geotarget._lazy import lazy_module
from geotarget.audience.index import IndexCache
from geotarget.campaigns import campaign as _campaigns
from geotarget.campaigns.campaign import Campaign
from geotarget.campaigns.promotions import ReverseLookup
from geotarget.errors import NotFoundError, PrivacyError
from geotarget.store.background import as_background_writer
from geotarget.store.database import Store

pd = lazy_module("pandas")  # imported on first use: the one-shot audience path never needs it
_ingest = lazy_module("geotarget.store.ingest")  # the ingest pipeline, loaded by the first write

__all__ = ["Engine"]


class Engine:
    """geotarget's engine over one DuckDB database.

    Create it with :func:`geotarget.open`. It is safe to share between
    threads: each thread gets its own DuckDB cursor, writes are serialized,
    and each query answers from one committed state (see
    :meth:`Store.read_consistent`). Campaigns and the reverse lookup
    (:meth:`stores_near`, :meth:`promotions_at`) are answered by its
    :class:`~geotarget.campaigns.ReverseLookup` part.

    Examples
    --------
    >>> import geotarget, pandas as pd
    >>> eng = geotarget.open(":memory:")
    >>> rep = eng.ingest_customers(pd.DataFrame({"customer_id": ["a", "b"], "lat": [40.7, 91.0], "lng": [-74.0, -74.0]}))
    >>> (rep.read, rep.loaded, rep.rejected)
    (2, 1, 1)
    """

    def __init__(self, store: Store):
        self.store = store
        self._index_cache = IndexCache(store)
        self.lookup = ReverseLookup(store)
        self._lookup = self.lookup.cache
        self._stores_cache = None  # StoreSnapshot of the current data version
        self._pings = None

    # -- lifecycle ---------------------------------------------------------
    @property
    def path(self) -> str:
        """The database file (or ``":memory:"``)."""
        return self.store.path

    def close(self) -> None:
        """Close the database."""
        self.store.close()

    def __enter__(self) -> Engine:
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def __repr__(self) -> str:
        return f"<geotarget.Engine {self.path!r}{' read-only' if self.store.read_only else ''}>"

    # -- ingest ------------------------------------------------------------
    def ingest_customers(
        self,
        source,
        *,
        id_col: str | None = None,
        lat_col: str | None = None,
        lng_col: str | None = None,
        opted_out_col: str | None = None,
        crs=None,
        progress: Callable[[int, int | None], None] | None = None,
        phone_region: str | None = None,
        id_from: str | None = None,
        allow_retype: bool = False,
        swap_check: bool = True,
    ) -> _ingest.IngestReport:
        """Validate, H3-index and upsert customers from a file or DataFrame.

        An upsert is partial: stored customers change only in the columns the
        file carries (an empty cell sets NULL; an absent column keeps its
        value). Consent follows :mod:`geotarget.store.consent` (opt-outs are
        sticky; unrecognised values count as opted out). Emails and phones are
        normalised and hashed (:mod:`geotarget.store.identity`); erased people
        are not loaded.

        Parameters
        ----------
        source : str, path or DataFrame
            CSV, Parquet, GeoParquet, GeoJSON, GeoPackage, Shapefile, or a
            pandas/GeoPandas DataFrame.
        id_col, lat_col, lng_col, opted_out_col : str, optional
            Column names overriding detection (``customer_id``/``id``;
            ``lat``/``latitude``/``y``; ``lng``/``lon``/``long``/``longitude``/``x``;
            ``opted_out``). A point geometry is used when there are no
            coordinate columns.
        crs : optional
            CRS of plain x/y columns (e.g. ``"EPSG:2263"``); they are
            reprojected to EPSG:4326. GeoDataFrames and vector files carry
            their own CRS.
        progress : callable, optional
            Called as ``progress(rows_read, total_rows_or_None)`` per batch.
        phone_region : str, optional
            ISO 3166 country of phone numbers written without a country code
            (default ``"US"``); a ``country`` column overrides it per row.
        id_from : {"row", "hash"}, optional
            For files without a unique id (events): use the row number, or a
            hash of the row's content, as the id.
        allow_retype : bool, default False
            Let a value that does not fit a stored column's type turn that
            column into text, instead of rejecting the row.
        swap_check : bool, default True
            Refuse a file whose points mostly fall south of 60°S (latitude and
            longitude swapped); pass False for real Antarctic data.

        Returns
        -------
        IngestReport
            ``read == loaded + rejected``; rejected rows are in :meth:`rejects`.
        """
        return as_background_writer(  # lookups served meanwhile by other threads go first
            _ingest.ingest_points, self.store, source, "customers", id_col=id_col, lat_col=lat_col,
            lng_col=lng_col, opted_out_col=opted_out_col, crs=crs, progress=progress, phone_region=phone_region,
            id_from=id_from, allow_retype=allow_retype, swap_check=swap_check,
            on_interrupt=self.store.interrupt, lock=self.store.write_lock,
        )

    def ingest_stores(
        self,
        source,
        *,
        id_col: str | None = None,
        name_col: str | None = None,
        lat_col: str | None = None,
        lng_col: str | None = None,
        crs=None,
        progress: Callable[[int, int | None], None] | None = None,
        id_from: str | None = None,
        allow_retype: bool = False,
        swap_check: bool = True,
    ) -> _ingest.IngestReport:
        """Validate, H3-index and upsert stores (``store_id``, ``name``, location).

        Takes the same sources and options as :meth:`ingest_customers`, plus
        ``name_col`` (default: a ``name`` column when present).
        """
        return as_background_writer(
            _ingest.ingest_points, self.store, source, "stores", id_col=id_col, lat_col=lat_col,
            lng_col=lng_col, name_col=name_col, crs=crs, progress=progress, id_from=id_from, allow_retype=allow_retype,
            swap_check=swap_check, on_interrupt=self.store.interrupt,
            lock=self.store.write_lock,
        )

    def ingest_regions(
        self,
        source,
        *,
        layer: str,
        name_col: str | None = None,
        id_col: str | None = None,
        confirm: bool = False,
    ) -> _ingest.IngestReport:
        """Load polygons (e.g. NYC NTAs) as layer ``layer``, replacing it.

        Invalid polygons are repaired with ``shapely.make_valid`` and a
        :class:`GeotargetWarning`; rows without a polygon, or whose ring has
        zero area, land in rejects. Replacing a layer with an empty one, or
        dropping regions that campaigns use, needs ``confirm=True``.
        """
        report = _ingest.ingest_regions(self.store, source, layer=layer, name_col=name_col, id_col=id_col,
                                        confirm=confirm)
        from geotarget.maps.atoms import assign_layer_now

        assign_layer_now(self, layer)  # published heatmaps after this write find the layer's keys ready
        return report

    # -- reading back --------------------------------------------------------
    def stores(self) -> pd.DataFrame:
        """All stores as a DataFrame."""
        return self.store.frame("SELECT * FROM stores ORDER BY store_id")

    def _stores_snapshot(self):
        from geotarget.audience.membership import StoreSnapshot

        version = self.store.data_version
        cached = self._stores_cache
        if cached is None or cached.version != version:
            cached = self._stores_cache = StoreSnapshot(self.store, version)
        return cached

    def _stores_frame(self) -> pd.DataFrame:
        return self._stores_snapshot().frame

    def _store_positions(self) -> dict:
        return self._stores_snapshot().lookup

    def layers(self) -> list[str]:
        """Names of the region layers."""
        return [r[0] for r in self.store.con.execute("SELECT DISTINCT layer FROM regions ORDER BY 1").fetchall()]

    def regions(self, layer: str):
        """The polygons of a layer as a GeoDataFrame (EPSG:4326)."""
        import geopandas as gpd
        import shapely

        df = self.store.frame(
            "SELECT region_id, name, geometry, properties FROM regions WHERE layer = $l ORDER BY region_id",
            {"l": layer},
        )
        if df.empty:
            known = ", ".join(self.layers()) or "none yet"
            raise NotFoundError(f"region layer {layer!r} not found; layers: {known}")
        geoms = shapely.from_wkb(np.asarray([bytes(b) for b in df.pop("geometry")], dtype=object))
        return gpd.GeoDataFrame(df, geometry=geoms, crs="EPSG:4326")

    def rejects(self, *, source: str | None = None, kind: str | None = None) -> pd.DataFrame:
        """Rejected rows with their reasons, optionally for one source file or kind."""
        return self.store.frame(
            "SELECT * FROM rejects WHERE ($s IS NULL OR source = $s) AND ($k IS NULL OR kind = $k) "
            "ORDER BY kind, source, row_number",
            {"s": None if source is None else str(source), "k": kind},
        )

    def info(self) -> dict:
        """Counts per table, bounding box, H3 resolution and rejects per reason."""
        con = self.store.con
        counts = {t: con.execute(f"SELECT count(*) FROM {t}").fetchall()[0][0]
                  for t in ("customers", "stores", "regions", "rejects", "suppressions")}
        bbox = con.execute("SELECT min(lat), min(lng), max(lat), max(lng) FROM customers").fetchall()[0]
        opted = con.execute("SELECT count(*) FROM customers WHERE opted_out").fetchall()[0][0]
        reasons = dict(con.execute(
            "SELECT reason, count(*) FROM rejects GROUP BY reason ORDER BY 2 DESC").fetchall())
        return {
            "path": self.path,
            "schema_version": int(self.store.meta("schema_version")),
            "h3_res": self.store.res,
            "counts": counts,
            "opted_out": opted,
            "customer_bbox": None if bbox[0] is None else dict(zip(("min_lat", "min_lng", "max_lat", "max_lng"), bbox)),
            "layers": self.layers(),
            "rejects_by_reason": reasons,
            "privacy_policy": self.policy().as_dict(),
        }


    # -- audiences ---------------------------------------------------------
    def audience(
        self,
        *,
        stores=None,
        points=None,
        radius: str | None = None,
        radius_m: float | None = None,
        allow_large_radius: bool = False,
        region_layer: str | None = None,
        regions=None,
        ring_cell: str | int | None = None,
        ring_point: tuple[float, float] | None = None,
        k: int = 1,
        res: int | None = None,
        where=None,
        exclude_within=None,
        exclude_regions=None,
        holdout: float | None = None,
        campaign: str | None = None,
        columns: list[str] | None = None,
        min_size: int | None = None,
    ):
        """Build an exact audience: radius, region or hex ring, then exclusions, filters and holdout.

        Give exactly one geography:

        - ``stores=`` (ids, or ``"all"``) or ``points=`` (``[(lat, lng), ...]``
          or a DataFrame with ``lat``, ``lng`` and optional ``point_id``) with
          ``radius="2mi"`` (or ``radius_m=``). A customer is in the audience if
          and only if its WGS84 geodesic distance to a centre is at most the
          radius; each carries its nearest centre and ``distance_m``.
          Radii over 100 km need ``allow_large_radius=True``.
        - ``region_layer=`` with ``regions=`` (names or ids; all when None):
          customers inside the polygons, points on a boundary counted inside.
        - ``ring_cell=`` (an H3 cell) or ``ring_point=(lat, lng)`` with
          ``res=``, and ``k``: customers in the k-ring of that cell.

        Parameters
        ----------
        where : filters, optional
            Segment conditions AND-ed together, e.g. ``[("tier", "==", "gold")]``,
            ``{"tier": ["gold", "platinum"]}`` or ``["age>=30"]``.
        exclude_within : list, optional
            Zones to drop: ``(lat, lng, "500m")`` or ``"lat,lng,500m"``.
        exclude_regions : list, optional
            Regions to drop: ``(layer, name)`` or ``"layer:name"``.
        holdout : float, optional
            Fraction held out as a control group, chosen by a hash of
            ``campaign`` and the customer id (the same split on every run).
        columns : list of str, optional
            Customer columns to carry into rows and exports.
        min_size : int, optional
            Minimum size for exports (default 100).

        Returns
        -------
        Audience

        Examples
        --------
        >>> import geotarget, pandas as pd
        >>> eng = geotarget.open(":memory:")
        >>> _ = eng.ingest_stores(pd.DataFrame({"store_id": ["S1"], "lat": [40.758], "lng": [-73.9855]}))
        >>> _ = eng.ingest_customers(pd.DataFrame({"customer_id": ["a", "b"], "lat": [40.76, 40.9],
        ...                                        "lng": [-73.98, -73.98]}))
        >>> aud = eng.audience(stores=["S1"], radius="2mi")
        >>> len(aud), aud.to_pandas()["customer_id"].tolist()
        (1, ['a'])
        """
        from geotarget.audience.audience import build_audience

        if region_layer is not None:
            self.pings.check_targetable(region_layer)
        return self.store.read_consistent(lambda: build_audience(
            self, stores=stores, points=points, radius=radius, radius_m=radius_m,
            allow_large_radius=allow_large_radius, region_layer=region_layer, regions=regions,
            ring_cell=ring_cell, ring_point=ring_point, k=k, res=res, where=where,
            exclude_within=exclude_within, exclude_regions=exclude_regions, holdout=holdout,
            campaign=campaign, columns=columns,
            min_size=self.policy().min_audience if min_size is None else min_size,
        ))

    def ingest_suppressions(self, values, *, kind: str = "id", phone_region: str = "US") -> int:
        """Add ids, emails or phones to the suppression list; they leave every audience at once.

        Parameters
        ----------
        values : iterable of str, or a path to a CSV/text file (first column; optional header)
        kind : {"id", "email", "phone", "email_sha256", "phone_sha256"}
            Customer ids; raw emails or phones (normalised and hashed before
            storing, so the list never holds a raw identifier); or SHA-256 hex
            digests of normalised emails or E.164 phones.

        Returns
        -------
        int
            How many new entries the list gained.
        """
        from geotarget.store.suppression import add_suppressions

        return add_suppressions(self.store, values, kind=kind, phone_region=phone_region)

    # -- privacy: erasure, consent log, rejects ----------------------------------
    def erase(self, *, ids=None, emails=None, phones=None, phone_region: str = "US"):
        """Forget people: remove them from every table holding personal ids and from every cache.

        Only a salted-hash tombstone stays, so a later ingest of the same id,
        email or phone keeps them out ("erased, not loaded"). One transaction;
        idempotent. See :mod:`geotarget.store.erasure`.

        Examples
        --------
        >>> import geotarget, pandas as pd
        >>> eng = geotarget.open(":memory:")
        >>> _ = eng.ingest_customers(pd.DataFrame({"customer_id": ["a", "b"], "lat": [40.7, 40.8], "lng": [-74.0, -74.0]}))
        >>> eng.erase(ids=["a"]).customers, eng.ingest_customers(pd.DataFrame(
        ...     {"customer_id": ["a"], "lat": [40.7], "lng": [-74.0]})).reasons
        (1, {'erased, not loaded': 1})
        """
        from geotarget.store.erasure import erase

        report = erase(self.store, ids=ids, emails=emails, phones=phones, phone_region=phone_region)
        self._index_cache.clear()
        from geotarget.maps.atoms import forget_atom_keys

        forget_atom_keys(self)  # the heatmap suppression's keys hold coordinates
        self.lookup.cache.clear()
        self._stores_cache = None
        return report

    def fill_hashes(self) -> int:
        """Compute the pending ``email_sha256``/``phone_sha256`` of customers now; returns the values hashed.

        An ingest leaves them pending while nothing could match them; the first
        suppression or erasure fills them anyway (:mod:`geotarget.store.hashes`).

        Examples
        --------
        >>> import geotarget, pandas as pd
        >>> eng = geotarget.open(":memory:")
        >>> _ = eng.ingest_customers(pd.DataFrame({"customer_id": ["a"], "lat": [40.7], "lng": [-74.0],
        ...                                        "email": [" Ann@Example.com"]}))
        >>> eng.fill_hashes(), eng.fill_hashes()
        (1, 0)
        """
        from geotarget.store.hashes import fill_pending_hashes, pending_hashes

        if not pending_hashes(self.store.con):  # nothing to fill: no write, the data version stays
            return 0
        with self.store.transaction() as con:
            return fill_pending_hashes(con)

    def consent_log(self, customer_id: str | None = None) -> pd.DataFrame:
        """Every change of consent (customer, old and new value, raw value, source, time), oldest first.

        Examples
        --------
        >>> import geotarget, pandas as pd
        >>> eng = geotarget.open(":memory:")
        >>> _ = eng.ingest_customers(pd.DataFrame({"customer_id": ["a"], "lat": [40.7], "lng": [-74.0], "opted_out": ["no"]}))
        >>> _ = eng.ingest_customers(pd.DataFrame({"customer_id": ["a"], "lat": [40.7], "lng": [-74.0], "opted_out": ["yes"]}))
        >>> eng.consent_log("a")[["old_value", "new_value", "raw_value"]].values.tolist()
        [[False, True, 'yes']]
        """
        from geotarget.store.consent import consent_log

        return consent_log(self.store, customer_id)

    def purge_rejects(self, *, older_than: str | None = None) -> int:
        """Delete rejected rows (all, or those older than e.g. ``"30d"``, ``"12h"``); returns how many.

        Examples
        --------
        >>> import geotarget, pandas as pd
        >>> eng = geotarget.open(":memory:")
        >>> _ = eng.ingest_customers(pd.DataFrame({"customer_id": ["a", "b"], "lat": [None, 40.7], "lng": [-74.0, -74.0]}))
        >>> eng.purge_rejects(older_than="30d"), eng.purge_rejects()
        (0, 1)
        """
        from geotarget.store.erasure import purge_rejects

        return purge_rejects(self.store, older_than=older_than)

    # -- campaigns -------------------------------------------------------------
    def create_campaign(self, name: str, *, stores=None, radius=None, radius_m: float | None = None,
                        region_layer: str | None = None, regions=None, cells=None, where=None,
                        start: datetime | str | None = None, end: datetime | str | None = None,
                        holdout: float | None = None, metadata: dict | None = None, points=None) -> Campaign:
        """Store a new campaign (a promotion) and return it.

        Parameters
        ----------
        name : str
            Unique name.
        stores, radius, radius_m : optional
            Radius geofence: store ids (or ``"all"``, expanded now) and a
            radius with a unit (``"2mi"``) or ``radius_m`` in metres.
        points : list of (lat, lng), optional
            Radius geofence around places that are not stores, with ``radius``.
        region_layer, regions : optional
            Region geofence: a layer and region names or ids (all when omitted).
        cells : list of str, optional
            Explicit H3 cells (any resolutions).
        where : filters, optional
            Segment, in any form :meth:`audience` accepts; columns must exist.
        start, end : datetime or ISO 8601 text, optional
            Timezone-aware window; ``start`` inclusive, ``end`` exclusive.
        holdout : float, optional
            Control-group fraction in [0, 1), split by the campaign id.
        metadata : dict, optional
            Free-form JSON-able data (offer text, discount).

        Returns
        -------
        Campaign

        Examples
        --------
        >>> import geotarget
        >>> eng = geotarget.open(":memory:")
        >>> c = eng.create_campaign("soho", cells=["872a1072bffffff"], start="2026-05-01T00:00:00+00:00")
        >>> c.geofence, c.start.year
        ({'kind': 'cells', 'cells': ['872a1072bffffff']}, 2026)
        """
        self.pings.check_targetable(region_layer)
        return _campaigns.create_campaign(
            self, name, where=where, start=start, end=end, holdout=holdout, metadata=metadata, stores=stores,
            radius=radius, radius_m=radius_m, region_layer=region_layer, regions=regions, cells=cells,
            **({"points": points} if points is not None else {}))

    def create_campaigns(self, specs: list[dict]) -> list[Campaign]:
        """Create many campaigns in one transaction: all are validated first, and all or none are stored.

        Each item holds the arguments of :meth:`create_campaign`, ``name`` included.

        Examples
        --------
        >>> import geotarget
        >>> eng = geotarget.open(":memory:")
        >>> [c.name for c in eng.create_campaigns([{"name": "a", "cells": ["872a1072bffffff"]},
        ...                                        {"name": "b", "cells": ["872a1072bffffff"]}])]
        ['a', 'b']
        """
        for spec in specs if isinstance(specs, list) else []:
            self.pings.check_targetable(spec.get("region_layer") if isinstance(spec, dict) else None)
        return _campaigns.create_campaigns(self, specs)

    def campaigns(self, *, status: str | None = None) -> list[Campaign]:
        """Every campaign, sorted by name; ``status="active"`` or ``"paused"`` keeps those only."""
        return _campaigns.load_campaigns(self.store.con, status=status)

    def campaign(self, name_or_id: str) -> Campaign:
        """One campaign by id or name; :class:`NotFoundError` when there is none."""
        return _campaigns.find_campaign(self.store.con, name_or_id)

    def update_campaign(self, name_or_id: str, **changes) -> Campaign:
        """Change fields of a campaign and return it.

        Accepts the options of :meth:`create_campaign` plus ``status``. A new
        ``radius`` keeps the stores and new ``regions`` keep the layer; any
        other geofence option replaces the geofence. ``start=None`` or
        ``end=None`` opens that side of the window.

        Examples
        --------
        >>> import geotarget
        >>> eng = geotarget.open(":memory:")
        >>> _ = eng.create_campaign("a", cells=["872a1072bffffff"])
        >>> eng.update_campaign("a", name="b", metadata={"offer": "2 for 1"}).metadata
        {'offer': '2 for 1'}
        """
        self.pings.check_targetable(changes.get("region_layer"))
        return _campaigns.update_campaign(self, name_or_id, changes)

    def pause_campaign(self, name_or_id: str) -> Campaign:
        """Pause a campaign: :meth:`promotions_at` stops returning it."""
        return _campaigns.update_campaign(self, name_or_id, {"status": "paused"})

    def resume_campaign(self, name_or_id: str) -> Campaign:
        """Resume a paused campaign."""
        return _campaigns.update_campaign(self, name_or_id, {"status": "active"})

    def delete_campaign(self, name_or_id: str) -> None:
        """Delete a campaign; :class:`NotFoundError` when there is none."""
        _campaigns.delete_campaign(self, name_or_id)

    def campaign_audience(self, name_or_id: str, **audience_options):
        """The campaign's current audience, with consent, suppression, segment and holdout applied.

        ``audience_options`` may be ``columns``, ``min_size``,
        ``exclude_within`` and ``exclude_regions``; the geography, segment and
        holdout come from the campaign. Paused campaigns and campaigns outside
        their time window still have an audience. Exports keep the minimum
        audience size.

        Returns
        -------
        Audience
        """
        chosen = self.campaign(name_or_id)
        self.pings.check_targetable(chosen.geofence.get("layer"))
        return _campaigns.campaign_audience(self, chosen, audience_options)

    # -- reverse lookup ------------------------------------------------------------
    def stores_near(self, lat: float, lng: float, radius: str | None = "2mi", *, radius_m: float | None = None,
                    limit: int | None = None) -> list[dict]:
        """Stores within a radius of a point, nearest first by exact WGS84 geodesic distance.

        Answered from an in-memory index refreshed after each write; safe to
        call from many threads.

        Parameters
        ----------
        lat, lng : float
            The point in degrees.
        radius : str, default "2mi"
            With a unit; or give ``radius_m`` (metres) instead. At most 100 km.
        limit : int, optional
            Return at most this many (the nearest).

        Returns
        -------
        list of dict
            ``store_id``, ``name``, ``lat``, ``lng``, ``distance_m``; ties by store id.

        Examples
        --------
        >>> import geotarget, pandas as pd
        >>> eng = geotarget.open(":memory:")
        >>> _ = eng.ingest_stores(pd.DataFrame({"store_id": ["S1", "S2"], "lat": [40.758, 40.9], "lng": [-73.9855, -73.9]}))
        >>> [(s["store_id"], round(s["distance_m"])) for s in eng.stores_near(40.76, -73.98)]
        [('S1', 515)]
        """
        return self.lookup.stores_near(lat, lng, radius, radius_m=radius_m, limit=limit)

    def promotions_at(self, lat: float, lng: float, *, at: datetime | str | None = None,
                      customer_id: str | None = None) -> list[Campaign]:
        """Active campaigns whose geofence holds the point at time ``at``, sorted by name.

        A campaign applies when it is not paused, ``start <= at < end``
        (``at`` timezone-aware, default now) and the point is inside its
        geofence under the exact audience rules (geodesic radius, region
        boundary inside, the containing cell for cells). With ``customer_id``, only
        the campaigns that may target that customer: none for an opted-out or
        suppressed customer; a segment filter must match the customer's row
        (an unknown id matches no filter); the holdout control group is held
        back, exactly as in :meth:`campaign_audience`.

        Answered from in-memory indexes refreshed after each write; an answer
        reflects one committed state. Safe to call from many threads.

        Examples
        --------
        >>> import geotarget, pandas as pd
        >>> eng = geotarget.open(":memory:")
        >>> _ = eng.ingest_stores(pd.DataFrame({"store_id": ["S1"], "lat": [40.758], "lng": [-73.9855]}))
        >>> _ = eng.create_campaign("near S1", stores=["S1"], radius="500m")
        >>> [c.name for c in eng.promotions_at(40.76, -73.985)], eng.promotions_at(40.77, -73.985)
        (['near S1'], [])
        """
        return self.lookup.promotions_at(lat, lng, at=at, customer_id=customer_id)

    def _segments(self, snap):
        return self.lookup.segments(snap)

    # -- heatmaps and maps ---------------------------------------------------
    def heatmap(self, res: int = 8, metric="count", *, audience=None, region_layer: str | None = None,
                k_min: int | str | None = "policy", allow_no_floor: bool = False):
        """Aggregate customers per H3 cell (res 0-15) or per region, above a k-anonymity floor.

        ``metric`` is ``count``, ``sum:COL``, ``mean:COL``, ``median:COL``,
        ``penetration:LAYER:COL``, or ``share`` / ``index`` of the segment given
        as ``audience`` against all customers. Cells or regions with fewer than
        ``k_min`` customers are left out; ``k_min`` defaults to the database
        policy's floor (``"policy"``), and a lower one needs
        ``allow_no_floor=True`` (the explicit override).
        See :func:`geotarget.maps.heatmap.heatmap`; ``.to_map()`` draws the result.
        """
        from geotarget.maps.heatmap import heatmap

        floor = self.policy().k_min
        if isinstance(k_min, str) and k_min == "policy":
            k_min = floor
        if isinstance(k_min, int) and 2 <= k_min < floor and not allow_no_floor:
            raise PrivacyError(f"k_min={k_min} is below this database's policy floor of {floor}; pass "
                               "allow_no_floor=True (CLI --no-privacy-floor) if you mean it")
        return self.store.read_consistent(lambda: heatmap(
            self, res, metric, audience=audience, region_layer=region_layer, k_min=k_min,
            allow_no_floor=allow_no_floor))

    def coverage(self, stores="all", radius="2mi", *, res: int | None = None, k_min: int | None = 10,
                 allow_no_floor: bool = False):
        """What the geodesic rings of ``radius`` around ``stores`` cover, and whom they miss.

        See :func:`geotarget.maps.coverage.coverage`; ``.to_map()`` draws it.
        """
        from geotarget.maps.coverage import coverage

        return self.store.read_consistent(
            lambda: coverage(self, stores, radius, res=res, k_min=k_min, allow_no_floor=allow_no_floor))

    # -- trade areas and site planning (geotarget.trade) -----------------------
    def trade_areas(self, stores=None, **options):
        """Customer-derived trade areas: the nearest cells holding a share of each store's customers.

        See :func:`geotarget.trade.trade_areas` for the options (``share``,
        ``res``, ``home_store_col``, ``brand_col``/``brand``,
        ``region_layer``/``population_col``, ``smooth``).

        Examples
        --------
        >>> import geotarget, pandas as pd
        >>> eng = geotarget.open(":memory:")
        >>> _ = eng.ingest_stores(pd.DataFrame({"store_id": ["S1", "S2"], "lat": [40.75, 40.70], "lng": [-73.99, -73.95]}))
        >>> _ = eng.ingest_customers(pd.DataFrame({"customer_id": ["a", "b", "c"], "lat": [40.751, 40.752, 40.701],
        ...                                        "lng": [-73.99, -73.98, -73.95], "home": ["S1", "S2", "S2"]}))
        >>> eng.trade_areas("S1", share=0.5).areas[["store_id", "share", "customers"]].values.tolist()
        [['S1', 0.5, 1]]
        """
        from .trade import trade_areas

        return self.store.read_consistent(lambda: trade_areas(self, stores, **options))

    def huff(self, **options):
        """The Huff gravity model of the stores over demand cells; see :func:`geotarget.trade.huff`.

        Examples
        --------
        >>> import geotarget, pandas as pd
        >>> eng = geotarget.open(":memory:")
        >>> _ = eng.ingest_stores(pd.DataFrame({"store_id": ["S1", "S2"], "lat": [40.75, 40.70], "lng": [-73.99, -73.95]}))
        >>> _ = eng.ingest_customers(pd.DataFrame({"customer_id": ["a", "b", "c"], "lat": [40.751, 40.752, 40.701],
        ...                                        "lng": [-73.99, -73.98, -73.95], "home": ["S1", "S2", "S2"]}))
        >>> round(float(eng.huff(res=8).stores["expected_customers"].sum()), 6)
        3.0
        """
        from .trade import huff

        return self.store.read_consistent(lambda: huff(self, **options))

    def calibrate_huff(self, *, home_store_col: str, **options):
        """Fit Huff's alpha and beta by maximum likelihood from a customer column of chosen stores.

        See :func:`geotarget.trade.calibrate_huff`.

        Examples
        --------
        >>> import geotarget, pandas as pd
        >>> eng = geotarget.open(":memory:")
        >>> _ = eng.ingest_stores(pd.DataFrame({"store_id": ["S1", "S2"], "lat": [40.75, 40.70], "lng": [-73.99, -73.95]}))
        >>> _ = eng.ingest_customers(pd.DataFrame({"customer_id": ["a", "b", "c"], "lat": [40.751, 40.752, 40.701],
        ...                                        "lng": [-73.99, -73.98, -73.95], "home": ["S1", "S2", "S2"]}))
        >>> fit = eng.calibrate_huff(home_store_col="home")
        >>> fit.beta > 0, fit.observations
        (True, 3.0)
        """
        from .trade import calibrate_huff

        return self.store.read_consistent(lambda: calibrate_huff(self, home_store_col=home_store_col, **options))

    def market_share(self, model, region_layer: str, *, population_col: str | None = None):
        """Market share per brand and penetration per region; see :func:`geotarget.trade.region_shares`.

        Examples
        --------
        >>> import geotarget, pandas as pd
        >>> eng = geotarget.open(":memory:")
        >>> _ = eng.ingest_stores(pd.DataFrame({"store_id": ["S1", "S2"], "lat": [40.75, 40.70], "lng": [-73.99, -73.95]}))
        >>> _ = eng.ingest_customers(pd.DataFrame({"customer_id": ["a", "b", "c"], "lat": [40.751, 40.752, 40.701],
        ...                                        "lng": [-73.99, -73.98, -73.95], "home": ["S1", "S2", "S2"]}))
        >>> import shapely, geopandas as gpd
        >>> _ = eng.ingest_regions(gpd.GeoDataFrame({"name": ["box"], "pop": [1000]},
        ...                        geometry=[shapely.box(-74.1, 40.6, -73.9, 40.8)], crs=4326), layer="l")
        >>> eng.market_share(eng.huff(), "l", population_col="pop")[["customers", "penetration", "share"]].values.tolist()
        [[3.0, 0.003, 1.0]]
        """
        from .trade import region_shares

        return self.store.read_consistent(
            lambda: region_shares(self, model, region_layer, population_col=population_col))

    def rank_sites(self, candidates, **options):
        """Rank candidate sites by net gain, and optionally pick k by maximal covering.

        See :func:`geotarget.trade.rank_sites`.

        Examples
        --------
        >>> import geotarget, pandas as pd
        >>> eng = geotarget.open(":memory:")
        >>> _ = eng.ingest_stores(pd.DataFrame({"store_id": ["S1", "S2"], "lat": [40.75, 40.70], "lng": [-73.99, -73.95]}))
        >>> _ = eng.ingest_customers(pd.DataFrame({"customer_id": ["a", "b", "c"], "lat": [40.751, 40.752, 40.701],
        ...                                        "lng": [-73.99, -73.98, -73.95], "home": ["S1", "S2", "S2"]}))
        >>> eng.rank_sites(pd.DataFrame({"lat": [40.72], "lng": [-73.97]}))[["rank", "site_id"]].values.tolist()
        [[1, 'C1']]
        """
        from .trade import rank_sites

        return self.store.read_consistent(lambda: rank_sites(self, candidates, **options))

    # -- measurement (geotarget.measure) -------------------------------------
    def ingest_outcomes(self, source, *, id_col: str | None = None, time_col: str | None = None,
                        value_col: str | None = None, kind_col: str | None = None,
                        outcome_id_col: str | None = None,
                        progress: Callable[[int, int | None], None] | None = None) -> _ingest.IngestReport:
        """Validate and load outcomes (orders, visits, clicks) for lift readouts.

        Columns: ``customer_id``, a timezone-aware ``timestamp``, and
        optionally ``value`` (revenue), ``kind`` and ``outcome_id`` (names
        detected, or given by the ``*_col`` options). Bad rows go to
        :meth:`rejects`; a row whose ``outcome_id`` is already stored
        replaces it, so loading a file twice changes nothing. See
        :mod:`geotarget.measure.outcomes`.

        Examples
        --------
        >>> import geotarget, pandas as pd
        >>> eng = geotarget.open(":memory:")
        >>> rep = eng.ingest_outcomes(pd.DataFrame({"customer_id": ["a", "b"], "value": [12.5, 3.0],
        ...                                         "timestamp": ["2026-05-01T09:00:00-04:00", "2026-05-01 09:00"]}))
        >>> rep.loaded, rep.reasons
        (1, {'timestamp has no timezone; add an offset or Z (e.g. 2026-05-01T09:30:00Z)': 1})
        """
        from geotarget.measure.outcomes import ingest_outcomes

        return ingest_outcomes(self.store, source, id_col=id_col, time_col=time_col, value_col=value_col,
                               kind_col=kind_col, outcome_id_col=outcome_id_col, progress=progress)

    def launch_campaign(self, name_or_id: str, *, at=None):
        """Freeze the campaign's treatment and control groups as they are now, for its lift readout.

        Call it when the campaign goes out (or its audience is exported). The
        first call writes the snapshot; later calls return it unchanged, so
        later ingests never rewrite who was in which group. ``at`` is the
        launch time (default: the campaign's start, else now).

        Returns
        -------
        geotarget.measure.Launch

        Examples
        --------
        >>> import geotarget, pandas as pd
        >>> from geotarget.sample import sample_customers
        >>> eng = geotarget.open(":memory:")
        >>> _ = eng.ingest_customers(sample_customers(500, seed=1))  # 487 consenting
        >>> _ = eng.create_campaign("spring", cells=["832a10fffffffff"], holdout=0.25, start="2026-05-01T00:00Z")
        >>> launch = eng.launch_campaign("spring")
        >>> launch.treatment_n + launch.control_n, 80 < launch.control_n < 160
        (487, True)
        """
        from geotarget.measure.assignment import freeze_assignment

        return freeze_assignment(self, self.campaign(name_or_id), at=at)

    def campaign_assignment(self, name_or_id: str) -> pd.DataFrame:
        """The frozen assignment of a launched campaign: ``customer_id``, ``group``, ``store_id``.

        Examples
        --------
        >>> import geotarget
        >>> eng = geotarget.open(":memory:")
        >>> _ = eng.create_campaign("soho", cells=["872a1072bffffff"], holdout=0.1)
        >>> eng.campaign_assignment("soho")
        Traceback (most recent call last):
        geotarget.errors.NotFoundError: campaign 'soho' has no frozen assignment yet; launch it first with eng.launch_campaign('soho') (CLI: geotarget campaign launch 'soho')
        """
        from geotarget.measure.assignment import require_launch

        c = self.campaign(name_or_id)
        require_launch(self.store, c)
        return self.store.frame("SELECT customer_id, grp AS \"group\", store_id FROM campaign_assignments "
                                "WHERE campaign_id = $c ORDER BY customer_id", {"c": c.id})

    def lift(self, campaign: str, *, start=None, end=None, metric: str = "conversion", by: str | None = None,
             kind: str | None = None, k_min: int = 10, alpha: float = 0.05, cuped: bool = True,
             memory_limit: str | None = "1GB"):
        """The lift readout of a launched campaign: treatment against its frozen holdout.

        Parameters
        ----------
        campaign : str
            Name or id of a campaign frozen with :meth:`launch_campaign`.
        start, end : datetime or ISO 8601 text, optional
            The window (timezone-aware); default from the launch to after the
            last outcome. The pre-period of the same length feeds CUPED.
        metric : {"conversion", "revenue"}
            Share of customers with an outcome, or outcome value per customer.
        by : str, optional
            Breakdown: ``"store"``, ``"h3_RES"`` (e.g. ``"h3_8"``), a region
            layer or a customer column. Cells with fewer than ``k_min``
            customers in a group get no readout; q-values are
            Benjamini-Hochberg.
        kind : str, optional
            Count outcomes of this kind only (e.g. ``"order"``).
        cuped : bool, default True
            Also report the CUPED-adjusted figures (``*_adj``), which reads
            the pre-period's outcomes too; False skips that work.
        memory_limit : str or None, default "1GB"
            DuckDB's memory limit while the readout runs (restored after;
            see :mod:`geotarget.measure.budget`); None leaves it as it is.

        Returns
        -------
        geotarget.measure.LiftResult
            ``to_dict()`` holds ``treatment_n``, ``control_n``,
            ``treatment_rate``, ``control_rate``, ``abs_lift``, ``rel_lift``,
            ``ci_low``, ``ci_high``, ``p_value`` and their CUPED ``*_adj``.

        The analysis is intent-to-treat: customers stay in the group they
        were assigned at launch, whatever they did since (opting out
        included); see :mod:`geotarget.measure.readout`.

        Examples
        --------
        >>> import geotarget, pandas as pd
        >>> from geotarget.sample import sample_customers
        >>> eng = geotarget.open(":memory:")
        >>> _ = eng.ingest_customers(sample_customers(500, seed=1))  # 487 consenting
        >>> _ = eng.create_campaign("spring", cells=["832a10fffffffff"], holdout=0.25, start="2026-05-01T00:00Z")
        >>> _ = eng.launch_campaign("spring")
        >>> a = eng.campaign_assignment("spring")
        >>> buyers = a.loc[a["group"] == "treatment", "customer_id"][:60]
        >>> _ = eng.ingest_outcomes(pd.DataFrame({"customer_id": buyers, "timestamp": "2026-05-03T12:00:00Z"}))
        >>> r = eng.lift("spring")
        >>> r["treatment_n"] + r["control_n"], r["control_rate"], r["p_value"] < 0.001
        (487, 0.0, True)
        """
        from geotarget.measure.readout import lift

        c = self.campaign(campaign)
        return self.store.read_consistent(lambda: lift(
            self, c, start=start, end=end, metric=metric, by=by, kind=kind, k_min=k_min, alpha=alpha, cuped=cuped,
            memory_limit=memory_limit))

    def plan_holdout(self, campaign: str, *, baseline_rate: float, mde: float, power: float = 0.8,
                     alpha: float = 0.05, daily_customers: float | None = None):
        """The control fraction needed to detect ``baseline_rate -> baseline_rate + mde`` in a campaign.

        The audience is the frozen assignment of a launched campaign, else
        its current audience. Warns (:class:`GeotargetWarning`) when the
        audience is too small ever to detect the effect. With
        ``daily_customers`` the plan gives the days needed as well.

        Returns
        -------
        geotarget.measure.HoldoutPlan

        Examples
        --------
        >>> import geotarget, pandas as pd
        >>> from geotarget.sample import sample_customers
        >>> eng = geotarget.open(":memory:")
        >>> _ = eng.ingest_customers(sample_customers(500, seed=1))  # 487 consenting
        >>> _ = eng.create_campaign("spring", cells=["832a10fffffffff"], holdout=0.25, start="2026-05-01T00:00Z")
        >>> plan = eng.plan_holdout("spring", baseline_rate=0.1, mde=0.2)
        >>> plan.audience_n, plan.control_n, round(plan.achieved_power, 2)
        (487, 32, 0.81)
        """
        from geotarget.measure import plan_holdout_for
        from geotarget.measure.assignment import load_launch

        c = self.campaign(campaign)
        launch = load_launch(self.store, c.id)
        n = launch.treatment_n + launch.control_n if launch is not None else len(self.campaign_audience(c.id))
        return plan_holdout_for(n, baseline_rate=baseline_rate, mde=mde, power=power, alpha=alpha,
                                daily_customers=daily_customers)

    # -- privacy policy and disclosure control -----------------------------------------------------
    def policy(self):
        """The privacy policy stored in the database; see :mod:`geotarget.store.policy`.

        Examples
        --------
        >>> import geotarget
        >>> geotarget.open(":memory:").policy().k_min
        10
        """
        from geotarget.store.policy import load_policy

        return load_policy(self.store)

    def set_policy(self, **changes):
        """Change privacy-policy settings (e.g. ``k_min=20``, ``min_exclusion_m="2000ft"``); the new policy.

        Examples
        --------
        >>> import geotarget
        >>> eng = geotarget.open(":memory:")
        >>> eng.set_policy(k_min=20, heatmap_res="7,8").heatmap_res, eng.policy().k_min
        ((7, 8), 20)
        """
        from geotarget.store.policy import save_policy

        return save_policy(self.store, **changes)

    def disclosure(self, *, key_id: str = "library", admin: bool = False, pii: bool = False):
        """Heatmaps, counts and promotions with the rules the HTTP service applies to one key.

        See :class:`geotarget.disclosure.Disclosure`.

        Examples
        --------
        >>> import geotarget
        >>> guard = geotarget.open(":memory:").disclosure(key_id="partner-a")
        >>> guard.heatmap(8).summary()
        '0 cells of customers from 0 customers; 0 cells holding 0 customers suppressed below k=10'
        """
        from geotarget.disclosure import Disclosure

        return Disclosure(self, key_id=key_id, admin=admin, pii=pii)



    # -- device pings (geotarget.pings) ------------------------------------------
    @property
    def pings(self):
        """The device pings beside this database (:class:`geotarget.pings.Pings`).

        Examples
        --------
        >>> import geotarget
        >>> eng = geotarget.open(":memory:")
        >>> eng.pings.files()
        []
        """
        if self._pings is None:
            from .pings import Pings

            self._pings = Pings(self)
        return self._pings

    def ingest_pings(self, source, *, device_col: str | None = None, time_col: str | None = None,
                     lat_col: str | None = None, lng_col: str | None = None, accuracy_col: str | None = None,
                     consent_col: str | None = None, max_accuracy_m: float = 100.0,
                     progress: Callable[[int, int | None], None] | None = None):
        """Validate and append device pings (``device_id``, aware ``timestamp``, ``lat``, ``lng``, accuracy).

        Pings are appended, never upserted, to Parquet partitioned by UTC day
        and H3 parent beside the database (:mod:`geotarget.pings.dataset`).
        Rows with a bad location, a timestamp without a timezone, an accuracy
        worse than ``max_accuracy_m``, a consent value other than yes, or an
        opted-out device land in :meth:`rejects` (kind ``'pings'``).

        Examples
        --------
        >>> import geotarget, pandas as pd
        >>> eng = geotarget.open(":memory:")
        >>> rep = eng.ingest_pings(pd.DataFrame({
        ...     "device_id": ["d1", "d1", "d2"], "lat": [40.758, 40.758, 40.7], "lng": [-73.9855, -73.9855, -74.0],
        ...     "timestamp": ["2026-03-02T12:00:00Z", "2026-03-02T12:20:00Z", "2026-03-02 12:00:00"]}))
        >>> (rep.read, rep.loaded, rep.rejected)
        (3, 2, 1)
        """
        return self.pings.ingest(source, device_col=device_col, time_col=time_col, lat_col=lat_col,
                                 lng_col=lng_col, accuracy_col=accuracy_col, consent_col=consent_col,
                                 max_accuracy_m=max_accuracy_m, progress=progress)

    def visitors(self, *, stores=None, points=None, radius=None, radius_m=None, region_layer=None, regions=None,
                 campaign=None, exclude: dict | None = None, start=None, end=None, min_dwell_minutes: float = 0.0,
                 min_days: int = 1, max_gap_minutes: float = 30.0, hours=None, days_of_week=None,
                 tz: str = "UTC") -> pd.DataFrame:
        """A visitation audience: devices seen at places, one row per device.

        Places are ``stores=`` or ``points=`` (e.g. competitors' locations, for
        conquesting) with ``radius=``, ``region_layer=``/``regions=``, or a
        ``campaign=``'s geofence. A device qualifies with visits (runs of pings
        with no gap over ``max_gap_minutes``) of at least ``min_dwell_minutes``
        on at least ``min_days`` distinct days (in ``tz``), counting only pings
        in ``[start, end)``, at ``hours`` of the day and on ``days_of_week``.
        ``exclude=`` takes the same place options: its visitors are dropped
        (e.g. your own stores' regulars from a conquesting audience). Pings
        in sensitive layers and opted-out devices never count.

        Examples
        --------
        >>> import geotarget, pandas as pd
        >>> eng = geotarget.open(":memory:")
        >>> _ = eng.ingest_stores(pd.DataFrame({"store_id": ["S1"], "lat": [40.758], "lng": [-73.9855]}))
        >>> _ = eng.ingest_pings(pd.DataFrame({"device_id": ["d1", "d1", "d2"], "lat": [40.758, 40.7581, 40.8],
        ...     "lng": [-73.9855, -73.9855, -74.0],
        ...     "timestamp": ["2026-03-02T12:00:00Z", "2026-03-02T12:20:00Z", "2026-03-02T12:00:00Z"]}))
        >>> eng.visitors(stores=["S1"], radius="100m", min_dwell_minutes=15)[["device_id", "visits", "dwell_minutes"]]
          device_id  visits  dwell_minutes
        0        d1       1           20.0
        """
        where = {"stores": stores, "points": points, "radius": radius, "radius_m": radius_m,
                 "region_layer": region_layer, "regions": regions, "campaign": campaign}
        return self.pings.visitors(where=where, exclude=exclude, start=start, end=end,
                                   min_dwell_minutes=min_dwell_minutes, min_days=min_days,
                                   max_gap_minutes=max_gap_minutes, hours=hours, days_of_week=days_of_week, tz=tz)

    def visits(self, *, stores=None, points=None, radius=None, radius_m=None, region_layer=None, regions=None,
               campaign=None, start=None, end=None, min_dwell_minutes: float = 0.0, max_gap_minutes: float = 30.0,
               hours=None, days_of_week=None, tz: str = "UTC") -> pd.DataFrame:
        """Each visit at the places (device, place, start, end, dwell, pings, distance); options as :meth:`visitors`.

        Examples
        --------
        >>> import geotarget, pandas as pd
        >>> eng = geotarget.open(":memory:")
        >>> _ = eng.ingest_pings(pd.DataFrame({"device_id": ["d1"], "lat": [40.758], "lng": [-73.9855],
        ...                                    "timestamp": ["2026-03-02T12:00:00Z"]}))
        >>> v = eng.visits(points=[(40.7585, -73.9855)], radius="100m")
        >>> v["place_id"].tolist(), round(float(v["distance_m"].iloc[0]), 1)
        (['P1'], 55.5)
        """
        where = {"stores": stores, "points": points, "radius": radius, "radius_m": radius_m,
                 "region_layer": region_layer, "regions": regions, "campaign": campaign}
        return self.pings.visits(where=where, start=start, end=end, min_dwell_minutes=min_dwell_minutes,
                                 max_gap_minutes=max_gap_minutes, hours=hours, days_of_week=days_of_week, tz=tz)

    def footfall(self, res: int = 9, *, k_min: int | None = 10, allow_no_floor: bool = False, start=None, end=None,
                 tz: str = "UTC"):
        """Unique devices per H3 cell (``latlng_to_cell``) per day, cells under ``k_min`` left out.

        Examples
        --------
        >>> import geotarget, pandas as pd
        >>> eng = geotarget.open(":memory:")
        >>> _ = eng.ingest_pings(pd.DataFrame({"device_id": ["d1", "d2"], "lat": [40.758, 40.758],
        ...     "lng": [-73.9855, -73.9855], "timestamp": ["2026-03-02T12:00:00Z", "2026-03-02T13:00:00Z"]}))
        >>> eng.footfall(9, k_min=2).frame[["day", "h3", "devices"]]
                  day               h3  devices
        0  2026-03-02  892a100d67bffff        2
        """
        return self.pings.footfall(res, k_min=k_min, allow_no_floor=allow_no_floor, start=start, end=end, tz=tz)

    def opt_out_devices(self, device_ids) -> int:
        """Opt devices out of every visitation audience and footfall count (stored hashed).

        Examples
        --------
        >>> import geotarget
        >>> eng = geotarget.open(":memory:")
        >>> eng.opt_out_devices(["d1", "d2"])
        2
        """
        return self.pings.opt_out(device_ids)

    def erase_devices(self, device_ids) -> dict:
        """Erase devices: their pings and ping rejects are deleted and future pings rejected.

        Examples
        --------
        >>> import geotarget, pandas as pd
        >>> eng = geotarget.open(":memory:")
        >>> _ = eng.ingest_pings(pd.DataFrame({"device_id": ["d1"], "lat": [40.758], "lng": [-73.9855],
        ...                                    "timestamp": ["2026-03-02T12:00:00Z"]}))
        >>> eng.erase_devices(["d1"])
        {'pings': 1, 'rejects': 0}
        """
        return self.pings.erase(device_ids)

    def mark_sensitive(self, layer: str) -> None:
        """Mark a region layer sensitive: never targeted, and pings inside it never counted.

        Examples
        --------
        >>> import geotarget, geopandas as gpd, shapely
        >>> eng = geotarget.open(":memory:")
        >>> _ = eng.ingest_regions(gpd.GeoDataFrame({"region_id": ["k1"]}, crs="EPSG:4326",
        ...                        geometry=[shapely.box(-74.0, 40.75, -73.98, 40.76)]), layer="clinics")
        >>> eng.mark_sensitive("clinics")
        >>> eng.visitors(region_layer="clinics")  # doctest: +ELLIPSIS
        Traceback (most recent call last):
        ...
        geotarget.errors.PrivacyError: region layer 'clinics' is marked sensitive and can never be targeted ...
        """
        self.pings.mark_sensitive(layer)
