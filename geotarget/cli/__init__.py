"""The ``geotarget`` command line: a thin layer over the library."""

from __future__ import annotations

from . import (  # noqa: F401  (registers commands)
    audience,
    campaign,  # noqa: F401  (registers the campaign commands)
    ingest,
    maps,  # noqa: F401  (registers heatmap and map commands)
    privacy,  # noqa: F401  (registers erase and consent log)
    serve,  # noqa: F401  (registers the serve command)
)
from ._app import app, run

__all__ = ["app", "run"]
