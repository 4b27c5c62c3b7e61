"""The typer application and what every command shares: --db, errors, output."""

from __future__ import annotations

import sys
from pathlib import Path

import typer
from rich.console import Console
from rich.markup import escape

from geotarget.errors import GeotargetError

app = typer.Typer(
    name="geotarget",
    help="Exact hyperlocal audiences, heatmaps and promotions from an embedded DuckDB store.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)

console = Console(highlight=False, markup=False)  # data text may hold [brackets]
err_console = Console(stderr=True, highlight=False)


class _State:
    db: str | None = None


state = _State()


@app.callback()
def _main(
    db: str = typer.Option(
        None, "--db", metavar="PATH", envvar="GEOTARGET_DB",
        help="DuckDB database file [default: $GEOTARGET_DB or ./geotarget.duckdb].",
    ),
) -> None:
    state.db = db


def engine(*, read_only: bool = False):
    """Open the engine on the database chosen by --db."""
    from geotarget.connect import open as open_engine

    return open_engine(state.db, read_only=read_only)


def fail(message: str, code: int = 2) -> None:
    """Print one line saying what is wrong and what to do, then exit."""
    err_console.print(f"[bold red]error:[/] {escape(str(message))}", soft_wrap=True)
    raise typer.Exit(code)


def output_path(path: str) -> Path:
    out = Path(path)
    if out.parent and not out.parent.exists():
        out.parent.mkdir(parents=True, exist_ok=True)
    return out


def run() -> None:
    """Entry point: user errors become one line on stderr and exit code 2, never a traceback."""
    try:  # typer >= 0.20 carries its own copy of click
        from typer._click import exceptions as click
    except ImportError:  # pragma: no cover - older typer
        from click import exceptions as click

    try:
        code = app(standalone_mode=False)
        # without standalone mode, typer.Exit raised by a command comes back as its code
        if isinstance(code, int) and code:
            if code == 130:  # typer turns Ctrl-C into exit code 130, silently
                err_console.print("[bold red]interrupted:[/] nothing was written by the interrupted step")
            sys.exit(code)
    except typer.Exit as exc:
        sys.exit(exc.exit_code)
    except getattr(click, "NoArgsIsHelpError", ()) as exc:
        console.print(exc.ctx.get_help())
        sys.exit(0)
    except click.UsageError as exc:
        where = f" (see `{exc.ctx.command_path} --help`)" if exc.ctx is not None else ""
        err_console.print(f"[bold red]error:[/] {escape(exc.format_message() + where)}", soft_wrap=True)
        sys.exit(2)
    except GeotargetError as exc:
        err_console.print(f"[bold red]error:[/] {escape(str(exc))}", soft_wrap=True)
        sys.exit(2)
    except (KeyboardInterrupt, typer.Abort):
        err_console.print("[bold red]interrupted:[/] nothing was written by the interrupted step")
        sys.exit(130)
    except PermissionError as exc:
        err_console.print(f"[bold red]error:[/] permission denied: {escape(str(exc.filename or exc))}; choose another path")
        sys.exit(2)
    except FileNotFoundError as exc:
        err_console.print(f"[bold red]error:[/] no such file or folder: {escape(str(exc.filename or exc))}; check the path")
        sys.exit(2)
