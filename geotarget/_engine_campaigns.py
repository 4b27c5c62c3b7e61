"""The engine's campaign and reverse-lookup methods (mixed into :class:`geotarget.Engine`)."""

from __future__ import annotations

import time
from datetime import datetime

from . import campaigns as _campaigns
from ._campaign_input import parse_when
from ._segments import build_segments, check_customer_id
from .audience import _check_latlng as _point
from .units import parse_radius


class CampaignMethods:
    """Campaign storage and the reverse lookup, as :class:`geotarget.Engine` methods."""

    # -- campaigns -------------------------------------------------------------
    def create_campaign(self, name: str, *, stores=None, radius=None, radius_m: float | None = None,
                        region_layer: str | None = None, regions=None, cells=None, where=None,
                        start: datetime | str | None = None, end: datetime | str | None = None,
                        holdout: float | None = None, metadata: dict | None = None) -> _campaigns.Campaign:
        """Store a new campaign (a promotion) and return it.

        Parameters
        ----------
        name : str
            Unique name.
        stores, radius, radius_m : optional
            Radius geofence: store ids (or ``"all"``, expanded now) and a
            radius with a unit (``"2mi"``) or ``radius_m`` in metres.
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
        return _campaigns.create_campaign(
            self, name, where=where, start=start, end=end, holdout=holdout, metadata=metadata, stores=stores,
            radius=radius, radius_m=radius_m, region_layer=region_layer, regions=regions, cells=cells)

    def create_campaigns(self, specs: list[dict]) -> list[_campaigns.Campaign]:
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
        return _campaigns.create_campaigns(self, specs)

    def campaigns(self, *, status: str | None = None) -> list[_campaigns.Campaign]:
        """Every campaign, sorted by name; ``status="active"`` or ``"paused"`` keeps those only."""
        return _campaigns.load_campaigns(self.store.con, status=status)

    def campaign(self, name_or_id: str) -> _campaigns.Campaign:
        """One campaign by id or name; :class:`NotFoundError` when there is none."""
        return _campaigns.find_campaign(self.store.con, name_or_id)

    def update_campaign(self, name_or_id: str, **changes) -> _campaigns.Campaign:
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
        return _campaigns.update_campaign(self, name_or_id, changes)

    def pause_campaign(self, name_or_id: str) -> _campaigns.Campaign:
        """Pause a campaign: :meth:`promotions_at` stops returning it."""
        return _campaigns.update_campaign(self, name_or_id, {"status": "paused"})

    def resume_campaign(self, name_or_id: str) -> _campaigns.Campaign:
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
        return _campaigns.campaign_audience(self, self.campaign(name_or_id), audience_options)

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
        lat, lng = _point(lat, lng)
        metres = parse_radius(None if radius_m is not None else radius, radius_m=radius_m)
        if limit is not None and (isinstance(limit, bool) or not isinstance(limit, int) or limit < 1):
            from .errors import InvalidInputError

            raise InvalidInputError(f"limit must be a positive whole number, got {limit!r}")
        snap = self._lookup.get()
        found = snap.stores_within(lat, lng, metres)
        if limit is not None:
            found = found[:limit]
        return [{"store_id": snap.store_ids[i], "name": snap.store_names[i], "lat": snap.store_lat[i],
                 "lng": snap.store_lng[i], "distance_m": d} for d, i in found]

    def promotions_at(self, lat: float, lng: float, *, at: datetime | str | None = None,
                      customer_id: str | None = None) -> list[_campaigns.Campaign]:
        """Active campaigns whose geofence holds the point at time ``at``, sorted by name.

        A campaign applies when it is not paused, ``start <= at < end``
        (``at`` timezone-aware, default now) and the point is inside its
        geofence under the exact audience rules (geodesic radius, region
        boundary inside, H3 hierarchy for cells). With ``customer_id``, only
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
        lat, lng = _point(lat, lng)
        ts = time.time() if at is None else parse_when(at, "at").timestamp()
        cid = None if customer_id is None else check_customer_id(customer_id)
        for _attempt in range(8):
            snap = self._lookup.get()
            hits = snap.campaigns_at(lat, lng, ts)
            if cid is None:
                return [snap.campaigns[i] for i in hits]
            segments = self._segments(snap)
            if segments is not None:
                return [snap.campaigns[i] for i in segments.allowed(cid, hits)]
        with self.store.write_lock:  # writes keep landing: answer from a state they cannot move
            snap = self._lookup.get()
            segments = self._segments(snap)
            return [snap.campaigns[i] for i in segments.allowed(cid, snap.campaigns_at(lat, lng, ts))]

    def _segments(self, snap):
        """The customer checks at the snapshot's version, or None when the database has moved on."""
        segments = snap.extra.get("segments")
        if segments is None:
            with self._lookup._lock:
                segments = snap.extra.get("segments")
                if segments is None:
                    segments = build_segments(self.store, snap.campaigns, self._lookup.last_segments)
                    if segments.version != snap.version:
                        return None
                    snap.extra["segments"] = segments
                    self._lookup.last_segments = segments
        return segments
