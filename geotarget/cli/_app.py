"""The typer application and what every command shares: --db, errors, output, help text."""

from __future__ import annotations

import importlib
import os
import re
import sys
import warnings
from pathlib import Path

import typer

from geotarget.errors import GeotargetError

app = typer.Typer(
    name="geotarget",
    help="Exact hyperlocal audiences, heatmaps and promotions from an embedded DuckDB store.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
    rich_markup_mode=None,  # plain help: option names never truncated, [brackets] in help kept as written
)


class Printer:
    """Where the CLI prints: plain text straight to the stream, everything else through rich.

    A one-shot command prints a line or two of plain text; rich's console
    (about 20 ms to import) is loaded only for tables, progress bars and
    styled text (``[bold red]error:[/]``). Both ways print the same bytes:
    lines are never hard-wrapped (the output is often a pipe or a file), and
    nothing in the text is turned into colour or emoji.
    """

    def __init__(self, *, stderr: bool = False, markup: bool = False) -> None:
        self._stderr = stderr
        self._markup = markup  # False: data text may hold [brackets]
        self._rich = None

    @property
    def rich(self):
        """The rich console behind this printer (created on first use)."""
        if self._rich is None:
            from rich.console import Console

            self._rich = Console(stderr=self._stderr, highlight=False, markup=self._markup, emoji=False,
                                 soft_wrap=True)
        return self._rich

    def __getattr__(self, name: str):  # print_json, is_terminal, width, ...: rich's own
        if name.startswith("_"):
            raise AttributeError(name)
        return getattr(self.rich, name)

    def print(self, *objects, **options) -> None:
        plain = all(isinstance(o, str) for o in objects) and set(options) <= {"soft_wrap"}
        if plain and not (self._markup and any("[" in o for o in objects)):
            stream = sys.stderr if self._stderr else sys.stdout  # looked up now: callers may redirect it
            stream.write(" ".join(objects) + "\n")
            return
        self.rich.print(*objects, **options)


console = Printer()
err_console = Printer(stderr=True, markup=True)


def escape(text: str) -> str:
    """``text`` with rich markup escaped, to print literally through :data:`err_console`."""
    from rich.markup import escape as rich_escape

    return rich_escape(text)


class _State:
    db: str | None = None
    wait_s: float = 10.0
    #: Set while a running server answers a command handed to it (geotarget.cli._handoff_server.Handoff).
    handoff = None


state = _State()

# -- lazy registration: `geotarget audience ...` imports only the module of the `audience` command ------
#: command name -> the modules under geotarget/cli that register it (``ingest pings`` lives in pings)
COMMAND_MODULES = {
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
ALL_MODULES = ("audience", "campaign", "ingest", "listings", "maps", "measure", "pings", "policy", "privacy",
               "serve", "spark", "trade")
GLOBAL_OPTIONS_WITH_VALUE = ("--db", "--wait")


def command_of(argv: list[str]) -> str | None:
    """The command name in ``argv`` (after the global options), or None."""
    args = iter(argv)
    for arg in args:
        if arg in GLOBAL_OPTIONS_WITH_VALUE:
            next(args, None)
        elif not arg.startswith("-"):
            return arg
    return None


def load_commands(argv: list[str] | None = None) -> None:
    """Register the commands ``argv`` needs (all of them when argv is None or names none).

    The command modules import this one; they are loaded by name, so that a
    one-shot command imports only its own module.
    """
    name = None if argv is None else command_of(argv)
    for module in COMMAND_MODULES.get(name, ALL_MODULES):
        importlib.import_module(f"geotarget.cli.{module}")


@app.callback()
def _main(
    db: str = typer.Option(
        None, "--db", metavar="PATH", envvar="GEOTARGET_DB",
        help="DuckDB database file [default: $GEOTARGET_DB or ./geotarget.duckdb].",
    ),
    wait: float = typer.Option(
        10.0, "--wait", metavar="SECONDS", min=0,
        help="How long to wait while another process holds the database (a `geotarget serve` holds it only "
             "while it writes).",
    ),
) -> None:
    state.db = db
    state.wait_s = wait


def engine(*, read_only: bool = False):
    """Open the engine on the database chosen by --db (in a server answering a hand-off: the server's own)."""
    if state.handoff is not None:
        import contextlib

        return contextlib.nullcontext(state.handoff.engine)  # the server's copy: not closed by the command
    from geotarget.connect import open as open_engine
    from geotarget.errors import DatabaseLockedError

    try:
        return open_engine(state.db, read_only=read_only, lock_timeout=state.wait_s)
    except DatabaseLockedError:
        from geotarget.store.database import default_db_path

        fail(f"database {state.db or default_db_path()!r} is held by another process that keeps it open "
             f"(waited {state.wait_s:g} s); wait longer with --wait SECONDS, or let that program close it: "
             "`geotarget serve` holds it only while it writes")


#: Library keyword arguments and the options that set them, so that errors speak the CLI's words.
OPTION_OF = {
    "stores": "--store", "points": "--lat/--lng (or --points)", "radius": "--radius", "radius_m": "--radius",
    "region_layer": "--region-layer", "regions": "--region", "ring_cell": "--ring-cell",
    "ring_point": "--lat/--lng", "res": "--res", "k": "--k", "where": "--where", "holdout": "--holdout",
    "campaign": "--campaign", "columns": "--column", "min_size": "--min-size", "exclude_within": "--exclude-within",
    "exclude_regions": "--exclude-region", "allow_large_radius": "--allow-large-radius", "id_col": "--id-col",
    "lat_col": "--lat-col", "lng_col": "--lng-col", "name_col": "--name-col", "opted_out_col": "--opted-out-col",
    "crs": "--crs", "layer": "--layer", "k_min": "--k-min", "allow_no_floor": "--no-privacy-floor",
    "cells": "--cell", "metric": "--metric", "limit": "--limit", "at": "--at", "customer_id": "--customer",
    "allow_large": "--allow-large-radius", "allow_small": "--no-min-size",
}
_SAID_TWICE = re.compile(r"(--[\w-]+) \(CLI:? \1\)")
_KWARG = re.compile(r"\b(" + "|".join(sorted(OPTION_OF, key=len, reverse=True)) + r")=(True\b)?")


def cli_words(message: str) -> str:
    """A library message with its keyword arguments (``stores=``) named as CLI options (``--store``).

    Examples
    --------
    >>> cli_words("give exactly one of: stores= (with radius), points= (with radius)")
    'give exactly one of: --store (with radius), --lat/--lng (or --points) (with radius)'
    >>> cli_words("radii over 100 km need allow_large_radius=True")
    'radii over 100 km need --allow-large-radius'
    >>> cli_words("pass allow_small=True (CLI --no-min-size) for internal use")
    'pass --no-min-size for internal use'
    >>> cli_words("filter tier=gold is fine")
    'filter tier=gold is fine'
    >>> cli_words("k_min=5 is below this database's policy floor of 10")
    "--k-min 5 is below this database's policy floor of 10"
    """
    def option(m: re.Match) -> str:
        name, rest = OPTION_OF[m.group(1)], m.string[m.end():m.end() + 1]
        return name + " " if not m.group(2) and rest and not rest.isspace() and rest not in ",;)" else name

    return _SAID_TWICE.sub(r"\1", _KWARG.sub(option, str(message)))


def error_line(message: str) -> None:
    """Print one error line on stderr (never wrapped, markup in the message left as text)."""
    text = " ".join(cli_words(message).split())
    err_console.print(f"[bold red]error:[/] {escape(text)}")


def fail(message: str, code: int = 2) -> None:
    """Print one line saying what is wrong and what to do, then exit."""
    error_line(message)
    raise typer.Exit(code)


def local_path(path: str) -> Path:
    """The file the user means by ``path``: relative to their working folder.

    That is the process's own, except in a server answering a command handed
    to it, which writes where the command was typed.
    """
    if state.handoff is None:
        return Path(path)
    return state.handoff.resolve(path)


def output_path(path: str) -> Path:
    """The file to write for ``path`` (see :func:`local_path`), its folder created when missing."""
    out = local_path(path)
    if out.parent and not out.parent.exists():
        out.parent.mkdir(parents=True, exist_ok=True)
    return out


def shown(path) -> str:
    """``path`` as the command prints it: as the user wrote it, also when a server wrote the file."""
    return str(path) if state.handoff is None else state.handoff.shown(path)


def plain_table(frame, *, max_width: int = 60) -> str:
    """A DataFrame as aligned plain text: a header, one line per row, long cells cut with an ellipsis."""
    def cell(v) -> str:
        text = "" if v is None or (isinstance(v, float) and v != v) else " ".join(str(v).split())
        return text if len(text) <= max_width else text[: max_width - 1] + "…"

    rows = [[str(c) for c in frame.columns]] + [[cell(v) for v in row] for row in frame.itertuples(index=False)]
    widths = [max(len(r[i]) for r in rows) for i in range(len(rows[0]))]
    return "\n".join("  ".join(v.ljust(w) for v, w in zip(r, widths)).rstrip() for r in rows)


# -- help text -----------------------------------------------------------------------------------
#: Metavars by option name, where the name alone does not say what to type.
_METAVARS = {"output": "FILE", "png": "FILE", "cells_out": "FILE", "points_file": "FILE", "keys_file": "FILE",
             "store": "ID", "region": "NAME", "region_layer": "LAYER", "layer": "LAYER", "cell": "CELL",
             "ring_cell": "CELL", "lat": "DEG", "lng": "DEG", "radius": "DISTANCE", "where": "FILTER",
             "exclude_within": "LAT,LNG,RADIUS", "exclude_region": "LAYER:NAME", "column": "COLUMN",
             "fmt": "FORMAT", "when": "TIME", "start": "TIME", "end": "TIME", "meta": "KEY=VALUE"}


def polish(command) -> None:
    """Plain, complete help for every command: metavars that say what to type, no ``<str>`` types."""
    for param in getattr(command, "params", ()):
        if getattr(param, "is_flag", False) or getattr(param, "count", False):
            continue
        if param.metavar is None:
            param.metavar = _METAVARS.get(param.name, param.name.upper().replace("_", "-"))
        if param.param_type_name == "argument":
            # typer shows an argument's Python type (<str>) and braces; plain NAME reads as a CLI user expects
            param.display_type_rich = lambda ctx: None
            # and in the usage line, a required NAME without typer's braces ({NAME}), an optional one as [NAME]
            name = param.metavar
            param.get_usage_pieces = (lambda ctx, n=name, p=param: [n if p.required else f"[{n}]"])
    if hasattr(command, "rich_markup_mode"):
        command.rich_markup_mode = None
    for sub in getattr(command, "commands", {}).values():
        polish(sub)


def command():
    """The click command of the whole CLI, its help polished."""
    from typer.main import get_command

    cmd = get_command(app)
    polish(cmd)
    return cmd


def _one_line_warnings() -> None:
    """Python warnings as one clean line on stderr: no source path, no code line."""
    def show(message, category, filename, lineno, file=None, line=None):
        err_console.print(f"[yellow]warning:[/] {escape(' '.join(str(message).split()))}")

    warnings.showwarning = show


_INTERRUPTED = 130  # the shell's code for a process stopped by Ctrl-C (128 + SIGINT)


def main(argv: list[str] | None = None) -> int:
    """Run the CLI on ``argv``; returns the exit code. User errors are one line on stderr, never a traceback."""
    try:  # typer >= 0.20 carries its own copy of click
        from typer._click import exceptions as click
    except ImportError:  # pragma: no cover - older typer
        from click import exceptions as click

    if state.handoff is None:  # in a server, warnings are the server's (see geotarget.cli._handoff_server)
        _one_line_warnings()
    load_commands(sys.argv[1:] if argv is None else list(argv))
    cmd = command()
    try:
        code = cmd.main(args=argv, prog_name="geotarget", standalone_mode=False)
        # without standalone mode, typer.Exit raised by a command comes back as its code
        code = code if isinstance(code, int) else 0
        if code == _INTERRUPTED:  # typer turns Ctrl-C into a silent exit code 130
            err_console.print("[bold red]interrupted:[/] nothing was written by the interrupted step")
        return code
    except typer.Exit as exc:
        return exc.exit_code
    except getattr(click, "NoArgsIsHelpError", ()) as exc:
        console.print(exc.ctx.get_help())
        return 0
    except click.UsageError as exc:
        where = f" (see `{exc.ctx.command_path} --help`)" if exc.ctx is not None else ""
        error_line(exc.format_message() + where)
        return 2
    except GeotargetError as exc:
        error_line(str(exc))
        return 2
    except (KeyboardInterrupt, typer.Abort):
        err_console.print("[bold red]interrupted:[/] nothing was written by the interrupted step")
        return _INTERRUPTED
    except PermissionError as exc:
        error_line(f"permission denied: {exc.filename or exc}; choose another path")
        return 2
    except FileNotFoundError as exc:
        error_line(f"no such file or folder: {exc.filename or exc}; check the path")
        return 2
    except BrokenPipeError:  # `geotarget ... | head`: the reader left; not an error
        sys.stderr.close()
        return 0
    except Exception as exc:  # a bug or an unforeseen failure: still one line, the details on request
        if type(exc).__name__ == "InterruptException":  # DuckDB's answer to Ctrl-C inside a query
            err_console.print("[bold red]interrupted:[/] nothing was written by the interrupted step")
            return _INTERRUPTED
        if os.environ.get("GEOTARGET_DEBUG"):
            raise
        error_line(f"{type(exc).__name__}: {exc} (set GEOTARGET_DEBUG=1 to see where it happened)")
        return 2


def run() -> None:
    """Entry point of the ``geotarget`` command.

    The process leaves as soon as the command is done. Every command has
    closed its database (``with engine()``) and its files by then, so
    tearing down the interpreter (numpy, DuckDB, Arrow and their objects)
    would only cost time: 30-45 ms of every one-shot command. A Spark job
    leaves the normal way, so that pyspark's exit hooks stop the JVM.
    Ctrl-C may land while worker threads (H3 indexing, DuckDB) are inside
    native code; finalising then could abort the process, so an interrupted
    command (its write rolled back, its message out) leaves at once too.
    """
    code = main()
    for stream in (sys.stdout, sys.stderr):
        try:
            stream.flush()
        except (OSError, ValueError):  # the reader left (`| head`) and main() closed stderr: not an error
            pass
    if "pyspark" in sys.modules and code != _INTERRUPTED:
        sys.exit(code)
    if "logging" in sys.modules:
        sys.modules["logging"].shutdown()  # what the logging module's exit hook would do
    os._exit(code)
