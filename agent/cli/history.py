"""``matloop campaigns``, ``matloop show`` and ``matloop history``: what happened and why."""

from __future__ import annotations

import sys
from enum import StrEnum

import pandas as pd
import typer

from agent.cli.campaign_files import summary_table
from agent.cli.common import console, open_database, plain_store_errors
from agent.cli.tables import TableLayout, print_frame
from agent.store.campaigns import get_campaign, load_spec
from agent.store.history import campaign_history, campaigns_overview


class OutputFormat(StrEnum):
    table = "table"
    csv = "csv"
    json = "json"


def emit(frame: pd.DataFrame, fmt: OutputFormat, title: str, layout: TableLayout) -> None:
    """Print ``frame`` as a rich table fitted to the terminal, or CSV or JSON (every column; ISO timestamps)."""
    if fmt is OutputFormat.csv:
        frame.to_csv(sys.stdout, index=False)
    elif fmt is OutputFormat.json:
        sys.stdout.write(frame.to_json(orient="records", date_format="iso", indent=2) + "\n")
    else:
        print_frame(console, frame, title, layout)


def campaigns(fmt: OutputFormat = typer.Option(OutputFormat.table, "--format", "-f")) -> None:
    """List the campaigns in the database."""
    db = open_database()
    with plain_store_errors(), db.reading() as session:
        frame = campaigns_overview(session)
    if frame.empty and fmt is OutputFormat.table:
        console.print(f"no campaigns yet in {db.display_url}")
        return
    emit(frame, fmt, f"campaigns in {db.display_url}", CAMPAIGNS_LAYOUT)


def show(name: str = typer.Argument(..., help="campaign name")) -> None:
    """Show a campaign: its spec, status, and where it stands."""
    db = open_database()
    with plain_store_errors(), db.reading() as session:
        record = get_campaign(session, name)
        spec = load_spec(record)
        overview = campaigns_overview(session)
    row = overview[overview["name"] == name].iloc[0]
    console.print(summary_table(spec))
    status = f"status: [bold]{record.status}[/]"
    if record.stop_reason:
        status += f" — {record.stop_reason}"
    console.print(status)
    console.print(
        f"iterations: {row['iterations']}, experiments: {row['experiments']}, measurements: {row['measurements']}"
    )


HISTORY_COLUMNS = [
    "iteration", "rank", "candidate", "acquisition_value", "posterior_mean", "posterior_std", "reason",
    "batch_status", "approver", "model_version", "job_status", "property", "value", "error",
]
#: In a narrow terminal: what was tried and what came of it first, then why it was chosen, then who
#: approved it with which model, then the bookkeeping.
HISTORY_LAYOUT = TableLayout(
    order=HISTORY_COLUMNS,
    priority=["iteration", "rank", "candidate", "property", "value", "error", "posterior_mean", "posterior_std",
              "reason", "approver", "model_version", "job_status", "acquisition_value", "batch_status"],
    labels={"iteration": "iter", "acquisition_value": "acq", "posterior_mean": "mean", "posterior_std": "std",
            "model_version": "model", "batch_status": "batch", "job_status": "job"},
    folding={"candidate": 24, "error": 16, "reason": 20},
    always=("iteration", "candidate"),
    drop_when_empty=("error",),
)
CAMPAIGNS_LAYOUT = TableLayout(
    order=["name", "status", "stop_reason", "iterations", "experiments", "measurements", "created_at", "updated_at"],
    priority=["name", "status", "iterations", "experiments", "stop_reason", "updated_at", "measurements",
              "created_at"],
    labels={"stop_reason": "stop reason", "iterations": "iter", "experiments": "exp", "measurements": "meas",
            "created_at": "created", "updated_at": "updated"},
    folding={"name": 16, "stop_reason": 24},
    always=("name",),
    drop_when_empty=("stop_reason",),
)


def history(
    name: str = typer.Argument(..., help="campaign name"),
    fmt: OutputFormat = typer.Option(OutputFormat.table, "--format", "-f", help="table, csv or json"),
    prop: str | None = typer.Option(None, "--property", "-p", help="only this measured property"),
    since: int | None = typer.Option(None, "--since", help="only iterations from this number on"),
) -> None:
    """What was proposed, approved (by whom), dispatched and measured, with which model version."""
    db = open_database()
    with plain_store_errors(), db.reading() as session:
        frame = campaign_history(session, name, prop=prop, since_iteration=since)
    emit(frame, fmt, f"history of {name}", HISTORY_LAYOUT)


def register(app: typer.Typer) -> None:
    app.command()(campaigns)
    app.command()(show)
    app.command()(history)



