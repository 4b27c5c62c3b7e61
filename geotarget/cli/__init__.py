"""The ``geotarget`` command line: a thin layer over the library.

Commands are registered lazily: ``geotarget audience ...`` imports only the
module of the ``audience`` command, so a one-shot command starts at once.
``geotarget --help`` (or no command, or an unknown one) loads them all.
``geotarget.cli.app`` is the typer application with every command.
"""

from __future__ import annotations

import importlib

from . import _app
from ._app import run

# command name -> the modules under geotarget/cli that register it (``ingest pings`` lives in pings)
_COMMAND_MODULES = {
    "audience": ("audience",), "suppress": ("audience",),
    "campaign": ("campaign", "measure"),
    "ingest": ("ingest", "pings", "measure"), "info": ("ingest",), "rejects": ("ingest",), "sample": ("ingest",),
    "stores": ("listings",), "regions": ("listings",), "columns": ("listings",),
    "heatmap": ("maps",), "map": ("maps",),
    "lift": ("measure",), "plan-holdout": ("measure",),
    "visits": ("pings",), "footfall": ("pings",), "pings": ("pings",),
    "policy": ("policy",),
    "erase": ("privacy",), "consent": ("privacy",),
    "serve": ("serve",),
    "spark": ("spark",),
    "trade-area": ("trade",), "huff": ("trade",), "sites": ("trade",),
}
#: Every command module, in the order --help lists their commands.
_ALL_MODULES = ("audience", "campaign", "ingest", "listings", "maps", "measure", "pings", "policy", "privacy",
                "serve", "spark", "trade")
_GLOBAL_OPTIONS_WITH_VALUE = ("--db", "--wait")


def _command_of(argv: list[str]) -> str | None:
    """The command name in ``argv`` (after the global options), or None."""
    args = iter(argv)
    for arg in args:
        if arg in _GLOBAL_OPTIONS_WITH_VALUE:
            next(args, None)
        elif not arg.startswith("-"):
            return arg
    return None


def _load_commands(argv: list[str] | None = None) -> None:
    """Import the command modules needed for ``argv`` (all of them when argv is None or names none)."""
    name = None if argv is None else _command_of(argv)
    for module in _COMMAND_MODULES.get(name, _ALL_MODULES):
        importlib.import_module(f"{__name__}.{module}")


_app.command_loader = _load_commands


def __getattr__(name: str):
    if name == "app":  # the whole application, every command registered
        _load_commands()
        return _app.app
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


__all__ = ["app", "run"]
