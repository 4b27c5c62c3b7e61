"""What every route reads from the application: the engine, the limits, the download folder."""

from __future__ import annotations

from fastapi import Request

from ..engine import Engine
from ._config import ServiceSettings
from ._downloads import DownloadStore


def engine(request: Request) -> Engine:
    """The one engine of this server process, shared by every request thread."""
    return request.app.state.engine


def settings(request: Request) -> ServiceSettings:
    """This server's limits."""
    return request.app.state.settings


def downloads(request: Request) -> DownloadStore:
    """This server's folder of audience files."""
    return request.app.state.downloads
