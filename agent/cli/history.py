"""``matloop campaigns``, ``matloop show`` and ``matloop history``: what happened and why."""

from __future__ import annotations

import math
import sys
from enum import StrEnum
from typing import Any

import pandas as pd
import typer
from rich.table import Table

from agent.cli.campaign_files import summary_table
from agent.cli.common import console, open_database, plain_store_errors
from agent.store.campaigns import get_campaign, load_spec
from agent.store.history import campaign_history, campaigns_overview


class OutputFormat(StrEnum):
    table = "table"
    csv = "csv"
    json = "json"


def _cell(value: Any) -> str:
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return ""
    if isinstance(value, float):
        return f"{value:.4g}"
    if isinstance(value, pd.Timestamp) or hasattr(value, "strftime"):
        return value.strftime("%Y-%m-%d %H:%M:%S")
    return str(value)


def frame_table(frame: pd.DataFrame, title: str, columns: list[str] | None = None,
                labels: dict[str, str] | None = None) -> Table:
    """``frame``'s ``columns`` as a rich table; ``labels`` gives shorter headers (CSV and JSON keep the names)."""
    table = Table(title=title, title_justify="left")
    columns = columns or list(frame.columns)
    for c in columns:
        table.add_column((labels or {}).get(c, c), overflow="fold")
    for row in frame[columns].itertuples(index=False):
        table.add_row(*(_cell(v) for v in row))
    return table


def emit(frame: pd.DataFrame, fmt: OutputFormat, title: str, table_columns: list[str] | None = None,
         labels: dict[str, str] | None = None) -> None:
    """Print ``frame`` as a rich table, CSV or JSON (records, ISO timestamps) on stdout."""
    if fmt is OutputFormat.csv:
        frame.to_csv(sys.stdout, index=False)
    elif fmt is OutputFormat.json:
        sys.stdout.write(frame.to_json(orient="records", date_format="iso", indent=2) + "\n")
    else:
        console.print(frame_table(frame, title, table_columns, labels))


def campaigns(fmt: OutputFormat = typer.Option(OutputFormat.table, "--format", "-f")) -> None:
    """List the campaigns in the database."""
    db = open_database()
    with plain_store_errors(), db.reading() as session:
        frame = campaigns_overview(session)
    if frame.empty and fmt is OutputFormat.table:
        console.print(f"no campaigns yet in {db.display_url}")
        return
    emit(frame, fmt, f"campaigns in {db.display_url}")


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


HISTORY_TABLE_COLUMNS = [
    "iteration", "rank", "candidate", "acquisition_value", "posterior_mean", "posterior_std", "reason",
    "batch_status", "approver", "model_version", "job_status", "property", "value", "error",
]
#: Which of those a narrow terminal keeps first: what was tried and what came of it, then why it was
#: chosen, then who approved it with which model, then the bookkeeping.
HISTORY_COLUMN_PRIORITY = [
    "iteration", "rank", "candidate", "property", "value", "error", "posterior_mean", "posterior_std", "reason",
    "approver", "model_version", "job_status", "acquisition_value", "batch_status",
]
#: Table headers for the long names (the names stay in CSV and JSON, and in the "left out" hint).
HISTORY_LABELS = {
    "iteration": "iter", "acquisition_value": "acq", "posterior_mean": "mean", "posterior_std": "std",
    "model_version": "model", "batch_status": "batch", "job_status": "job",
}
#: The free-text columns may fold onto several lines, down to these widths (padding included).
FOLDING_MIN_WIDTH = {"candidate": 24, "error": 16, "reason": 20}


def _natural_width(frame: pd.DataFrame, column: str) -> int:
    """Characters a column needs unfolded: its header or its longest cell, plus rich's padding and border."""
    cells = [len(_cell(v)) for v in frame[column]] if len(frame) else [0]
    return max(len(HISTORY_LABELS.get(column, column)), *cells) + 3


def columns_that_fit(frame: pd.DataFrame, width: int) -> list[str]:
    """The history columns, in table order, that fit ``width`` without folding every cell into slivers.

    Fourteen columns folded into an 80-column terminal (or a pipe, which rich treats as 80 wide) left one
    or two characters per line in each cell. Columns are taken by :data:`HISTORY_COLUMN_PRIORITY` while
    they fit, the free-text ones folding down to :data:`FOLDING_MIN_WIDTH`; an empty ``error`` column is
    left out. The caller says which were left out and how to see them.
    """
    keep: list[str] = []
    used = 1
    for column in HISTORY_COLUMN_PRIORITY:
        if column == "error" and not frame[column].map(_cell).any():
            continue
        need = min(_natural_width(frame, column), FOLDING_MIN_WIDTH.get(column, 10**6))
        if keep and used + need > width and column not in ("iteration", "candidate"):
            continue
        keep.append(column)
        used += need
    return [c for c in HISTORY_TABLE_COLUMNS if c in keep]


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
    if fmt is not OutputFormat.table:
        emit(frame, fmt, f"history of {name}")
        return
    shown = columns_that_fit(frame, console.width)
    emit(frame, fmt, f"history of {name}", shown, HISTORY_LABELS)
    hidden = [c for c in HISTORY_TABLE_COLUMNS if c not in shown and (c != "error" or frame[c].map(_cell).any())]
    if hidden:
        console.print(f"({console.width} columns wide: left out {', '.join(hidden)}; "
                      "a wider terminal or --format csv shows every column)", highlight=False)


def register(app: typer.Typer) -> None:
    app.command()(campaigns)
    app.command()(show)
    app.command()(history)



