"""The reverse lookup: which stores and which promotions apply at a point, and for which customer.

:class:`ReverseLookup` answers from the in-memory geofence index of
:mod:`geotarget.campaigns.lookup` (rebuilt after each write) and from the
per-customer checks of :mod:`geotarget.campaigns.segments`. The engine holds
one and delegates :meth:`geotarget.Engine.stores_near` and
:meth:`geotarget.Engine.promotions_at` to it.
"""

from __future__ import annotations

import time
from datetime import datetime

from geotarget.audience.audience import _check_latlng as _point
from geotarget.campaigns.campaign import Campaign
from geotarget.campaigns.lookup import LookupCache
from geotarget.campaigns.options import parse_when
from geotarget.campaigns.segments import build_segments, check_customer_id
from geotarget.errors import InvalidInputError
from geotarget.units import parse_radius

__all__ = ["ReverseLookup"]


class ReverseLookup:
    """Stores near a point and promotions at a point, over one store.

    Thread-safe: every answer comes from one immutable snapshot.
    """

    def __init__(self, store):
        self.store = store
        self.cache = LookupCache(store)

    def stores_near(self, lat: float, lng: float, radius: str | None = "2mi", *, radius_m: float | None = None,
                    limit: int | None = None) -> list[dict]:
        """Stores within a radius of a point, nearest first; see :meth:`geotarget.Engine.stores_near`."""
        lat, lng = _point(lat, lng)
        metres = parse_radius(None if radius_m is not None else radius, radius_m=radius_m)
        if limit is not None and (isinstance(limit, bool) or not isinstance(limit, int) or limit < 1):
            raise InvalidInputError(f"limit must be a positive whole number, got {limit!r}")
        snap = self.cache.get()
        found = snap.stores_within(lat, lng, metres)
        if limit is not None:
            found = found[:limit]
        return [{"store_id": snap.store_ids[i], "name": snap.store_names[i], "lat": snap.store_lat[i],
                 "lng": snap.store_lng[i], "distance_m": d} for d, i in found]

    def promotions_at(self, lat: float, lng: float, *, at: datetime | str | None = None,
                      customer_id: str | None = None) -> list[Campaign]:
        """Active campaigns whose geofence holds the point; see :meth:`geotarget.Engine.promotions_at`."""
        lat, lng = _point(lat, lng)
        ts = time.time() if at is None else parse_when(at, "at").timestamp()
        cid = None if customer_id is None else check_customer_id(customer_id)
        attempt = 0
        while True:  # never behind the write lock: a long ingest holds it for its whole transaction
            snap = self.cache.get()
            hits = snap.campaigns_at(lat, lng, ts)
            if cid is None:
                return [snap.campaigns[i] for i in hits]
            segments = self.segments(snap)
            if segments is not None:
                return [snap.campaigns[i] for i in segments.allowed(cid, hits)]
            attempt += 1  # a commit landed between the two reads: read both again once it is done
            if attempt > 8:
                time.sleep(0.005)

    def segments(self, snap):
        """The customer checks at the snapshot's version, or None when the database has moved on."""
        segments = snap.extra.get("segments")
        if segments is None:
            with self.cache._lock:
                segments = snap.extra.get("segments")
                if segments is None:
                    segments = build_segments(self.store, snap.campaigns, self.cache.last_segments)
                    if segments.version != snap.version:
                        return None
                    snap.extra["segments"] = segments
                    self.cache.last_segments = segments
        return segments
