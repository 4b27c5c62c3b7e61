"""The ``geotarget`` command line: a thin layer over the library."""

from __future__ import annotations

from . import (  # noqa: F401  (registers commands)
    audience,
    campaign,  # noqa: F401  (registers the campaign commands)
    ingest,
    listings,  # noqa: F401  (registers stores, regions and columns)
    maps,  # noqa: F401  (registers heatmap and map commands)
    measure,  # noqa: F401  (registers outcomes, launch, lift and plan-holdout)
    pings,  # noqa: F401  (registers ingest pings, visits, footfall and the pings commands)
    policy,  # noqa: F401  (registers the policy commands)
    serve,  # noqa: F401  (registers the serve command)
    spark,  # noqa: F401  (registers the spark commands)
    trade,  # noqa: F401  (registers trade-area, huff and sites)
)
from ._app import app, run

__all__ = ["app", "run"]
