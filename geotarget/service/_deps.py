"""What every route reads from the application: the engine, the limits, the download folder.

These dependencies are ``async``: they only read attributes, and FastAPI runs
an async dependency inline, where a plain ``def`` one would cost a hop to
the thread pool on every request.
"""

from __future__ import annotations

from fastapi import Request

from geotarget.engine import Engine

from ._config import ServiceSettings
from ._downloads import DownloadStore


async def engine(request: Request) -> Engine:
    """The one engine of this server process, shared by every request thread."""
    return request.app.state.engine


async def settings(request: Request) -> ServiceSettings:
    """This server's limits."""
    return request.app.state.settings


async def downloads(request: Request) -> DownloadStore:
    """This server's folder of audience files."""
    return request.app.state.downloads
