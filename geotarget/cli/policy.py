"""``geotarget policy show|set``: the privacy policy kept in the database."""

from __future__ import annotations

import json

import typer
from rich.table import Table

from ._app import app, console, engine, fail

policy_app = typer.Typer(help="Show or change the privacy policy stored in the database.", no_args_is_help=True)
app.add_typer(policy_app, name="policy")


def policy_rows(policy: dict) -> list[tuple[str, str]]:
    """The policy as (setting, text) rows, for `info` and `policy show`."""
    def text(name, value) -> str:
        if isinstance(value, list):
            return ", ".join(map(str, value))
        if name == "min_exclusion_m":
            return f"{value:,.2f} m"
        return f"{value:g}" if isinstance(value, float) else str(value)

    return [(name, text(name, value)) for name, value in policy.items()]


def _print(policy: dict, as_json: bool) -> None:
    if as_json:
        console.print_json(json.dumps(policy))
        return
    table = Table(title="privacy policy", show_header=False)
    for name, text in policy_rows(policy):
        table.add_row(name, text)
    console.print(table)


@policy_app.command("show")
def show(as_json: bool = typer.Option(False, "--json", help="Print JSON.")) -> None:
    """Print the policy (the defaults for settings never changed)."""
    with engine(read_only=True) as eng:
        _print(eng.policy().as_dict(), as_json)


@policy_app.command("set")
def set_(
    settings: list[str] = typer.Argument(..., metavar="NAME=VALUE...", help=(
        "Settings to change: k_min=10, min_audience=100, min_exclusion_m=1850ft, heatmap_res=7,8, "
        "count_step=10, dp_budget=10, sensitive_columns=income,birth_date")),
    as_json: bool = typer.Option(False, "--json", help="Print JSON."),
) -> None:
    """Change settings of the policy; the service and the library enforce it from the next request."""
    changes = {}
    for item in settings:
        name, sep, value = item.partition("=")
        if not sep or not name.strip():
            fail(f"setting {item!r} must be NAME=VALUE, e.g. k_min=20")
        changes[name.strip()] = value.strip()
    with engine() as eng:
        _print(eng.set_policy(**changes).as_dict(), as_json)
