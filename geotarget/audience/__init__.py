"""Who is in an audience: the customer index, cover-and-refine membership, filters, privacy rules, exports."""

from __future__ import annotations

from geotarget.audience.audience import Audience, build_audience
from geotarget.audience.budget import work_budget
from geotarget.audience.filters import parse_filters
from geotarget.audience.privacy import holdout_groups

__all__ = ["Audience", "build_audience", "holdout_groups", "parse_filters", "work_budget"]
