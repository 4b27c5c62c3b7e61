"""The ``geotarget`` command line: a thin layer over the library.

Commands are registered lazily: ``geotarget audience ...`` imports only the
module of the ``audience`` command, so a one-shot command starts at once.
``geotarget --help`` (or no command, or an unknown one) loads them all.
``geotarget.cli.app`` is the typer application with every command.

When a ``geotarget serve`` runs on the same database, a plain audience,
heatmap or coverage map is handed to it before the CLI framework is even imported (see
:mod:`geotarget.cli._handoff`); everything else runs here.
"""

from __future__ import annotations

import os
import sys


def run() -> None:
    """Entry point of the ``geotarget`` command (``python -m geotarget`` too); it ends the process.

    Set ``GEOTARGET_SERVER=off`` to never hand a command to a running server.

    Examples
    --------
    >>> import subprocess, sys
    >>> done = subprocess.run([sys.executable, "-m", "geotarget", "--help"], capture_output=True, text=True)
    >>> done.returncode, done.stdout.splitlines()[0]
    (0, 'Usage: geotarget [OPTIONS] COMMAND [ARGS]...')
    """
    if os.environ.get("GEOTARGET_SERVER", "auto").lower() != "off":
        from ._handoff import ask_server

        code = ask_server(sys.argv[1:])
        if code is not None:
            os._exit(code)  # the answer is written and flushed; nothing else was started
    from ._app import run as run_here

    run_here()


def __getattr__(name: str):
    if name == "app":  # the whole application, every command registered
        from ._app import app, load_commands

        load_commands()
        return app
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


__all__ = ["app", "run"]
