"""`geotarget ingest outcomes`, `geotarget campaign launch`, `geotarget lift`, `geotarget plan-holdout`."""

from __future__ import annotations

import json
import warnings

import typer
from ._app import escape

from ._app import app, console, engine, err_console, output_path
from .campaign import campaign_app
from .ingest import _print_report, _with_progress, ingest_app


@ingest_app.command("outcomes")
def ingest_outcomes(
    file: str = typer.Argument(..., help="CSV or Parquet: customer_id, timestamp, [value, kind, outcome_id]."),
    id_col: str = typer.Option(None, "--id-col", help="Customer id column (default: detected)."),
    time_col: str = typer.Option(None, "--time-col", help="Timestamp column, with a timezone (default: detected)."),
    value_col: str = typer.Option(None, "--value-col", help="Revenue column (default: value, revenue, amount)."),
    kind_col: str = typer.Option(None, "--kind-col", help="Kind column: order, visit, click (default: kind)."),
    outcome_id_col: str = typer.Option(None, "--outcome-id-col", help="Unique outcome id (default: outcome_id)."),
) -> None:
    """Load outcomes for lift readouts; bad rows go to rejects, a known outcome_id is replaced."""
    with engine() as eng:
        report = _with_progress("outcomes", lambda p: eng.ingest_outcomes(
            file, id_col=id_col, time_col=time_col, value_col=value_col, kind_col=kind_col,
            outcome_id_col=outcome_id_col, progress=p))
    _print_report(report)


@campaign_app.command("launch")
def launch(
    name: str = typer.Argument(..., help="Campaign name or id."),
    at: str = typer.Option(None, "--at", help="Launch time, ISO 8601 with an offset (default: the start, else now)."),
) -> None:
    """Freeze who is in treatment and who in control now, for the lift readout (once; later calls keep it)."""
    with engine() as eng:
        frozen = eng.launch_campaign(name, at=at)
    console.print_json(json.dumps(frozen.to_dict()))


@app.command("lift")
def lift(
    campaign: str = typer.Option(..., "--campaign", help="Campaign name or id (launched)."),
    metric: str = typer.Option("conversion", "--metric", help="conversion or revenue."),
    by: str = typer.Option(None, "--by", help="Breakdown: store, a customer COLUMN, h3_8 (any h3_RES) or a LAYER."),
    start: str = typer.Option(None, "--start", help="Window start, ISO 8601 with an offset (default: the launch)."),
    end: str = typer.Option(None, "--end", help="Window end, exclusive (default: after the last outcome)."),
    kind: str = typer.Option(None, "--kind", help="Only outcomes of this kind, e.g. order."),
    k_min: int = typer.Option(10, "--k-min", help="No readout for a group or breakdown cell under this size."),
    no_cuped: bool = typer.Option(False, "--no-cuped", help="Skip the CUPED adjustment (reads no pre-period)."),
    as_json: bool = typer.Option(False, "--json", help="Print JSON."),
    map_out: str = typer.Option(None, "--map", help="Write the lift map of the breakdown (HTML)."),
    png_out: str = typer.Option(None, "--png", help="Write the lift map of the breakdown (PNG)."),
    cumulative: str = typer.Option(None, "--cumulative", help="Write cumulative conversion by group (.png or .html)."),
) -> None:
    """Lift of a launched campaign against its holdout (intent-to-treat), with CUPED and breakdowns."""
    if (map_out or png_out) and by is None:
        from geotarget.errors import InvalidInputError

        raise InvalidInputError("--map and --png draw a breakdown: add --by store (or h3_8, a layer, a column)")
    with engine(read_only=True) as eng:
        result = eng.lift(campaign, start=start, end=end, metric=metric, by=by, kind=kind, k_min=k_min,
                          cuped=not no_cuped)
        written = []
        if map_out:
            written.append(result.to_map().save(str(output_path(map_out))) or map_out)
        if png_out:
            written.append(result.to_png(output_path(png_out)))
        if cumulative:
            out = output_path(cumulative)
            written.append(result.cumulative_html(out) if out.suffix.lower() in (".html", ".htm")
                           else result.cumulative_png(out))
    if as_json:
        console.print_json(json.dumps(result.to_dict()))
    else:
        console.print(str(result))
        if result.breakdown is not None:
            shown = result.breakdown[~result.breakdown["suppressed"]]
            cols = [by, "treatment_n", "control_n", "treatment_rate", "control_rate", "abs_lift", "p_value", "q_value"]
            console.print(shown[cols].to_string(index=False))
    for path in written:
        err_console.print(f"wrote {path}")


@app.command("plan-holdout")
def plan_holdout(
    campaign: str = typer.Option(..., "--campaign", help="Campaign name or id."),
    baseline_rate: float = typer.Option(..., "--baseline-rate", help="Conversion rate without the campaign (0.05)."),
    mde: float = typer.Option(..., "--mde", help="Smallest change worth detecting, absolute, e.g. 0.01."),
    power: float = typer.Option(0.8, "--power", help="Wanted power."),
    alpha: float = typer.Option(0.05, "--alpha", help="Significance level (two-sided)."),
    daily: float = typer.Option(None, "--daily-customers", help="Customers entering the audience per day: gives days."),
    as_json: bool = typer.Option(False, "--json", help="Print JSON."),
) -> None:
    """Holdout fraction (and days) needed to detect an effect; warns when the audience is too small."""
    with engine(read_only=True) as eng, warnings.catch_warnings():
        warnings.simplefilter("ignore")  # said once below, as one line
        plan = eng.plan_holdout(campaign, baseline_rate=baseline_rate, mde=mde, power=power, alpha=alpha,
                                daily_customers=daily)
    if not plan.detectable:
        err_console.print(f"[bold yellow]warning:[/] {escape(plan.message)}", soft_wrap=True)
    if as_json:
        console.print_json(json.dumps(plan.to_dict()))
    elif plan.detectable:
        console.print(plan.message)
