"""Campaigns (promotions with a geofence, segment, window and holdout) and the reverse lookup."""

from __future__ import annotations

from geotarget.campaigns.campaign import Campaign
from geotarget.campaigns.promotions import ReverseLookup

__all__ = ["Campaign", "ReverseLookup"]
