"""The ``geotarget`` command line: a thin layer over the library."""

from __future__ import annotations

from . import audience, ingest  # noqa: F401  (registers commands)
from . import maps  # noqa: F401  (registers heatmap and map commands)
from . import serve  # noqa: F401  (registers the serve command)
from . import campaign  # noqa: F401  (registers the campaign commands)
from ._app import app, run

__all__ = ["app", "run"]
