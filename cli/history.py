"""``matloop campaigns``, ``matloop show`` and ``matloop history``: what happened and why."""

from __future__ import annotations

import sys
from enum import StrEnum
from typing import TYPE_CHECKING

import typer

from agent.store import history as store_history
from agent.store.history import campaigns_overview, effective_approval, iter_history, recent_history
from agent.store.history_csv import iter_history_csv_lines
from cli.common import console, fail, open_database, plain_store_errors
from cli.output import write_csv, write_csv_lines, write_json
from cli.tables import TableLayout, print_frame

if TYPE_CHECKING:  # imported for tables only: `history --format csv` streams without it
    import pandas as pd

#: The largest value an integer option may take: SQL integers are 32- or 64-bit, and a larger Python int
#: reached the driver as an OverflowError traceback (``--since 99999999999999999999``).
MAX_INT_OPTION = 2**31 - 1
#: Rows the history table shows unless told otherwise (the newest); CSV and JSON stream every row.
DEFAULT_TABLE_ROWS = 50


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
    """Show a campaign: its spec, status, where it stands, and the approval policy its latest run used."""
    # here, not at the top: they import the campaign spec's models, which `matloop history` never needs
    from agent.store.campaigns import get_campaign, load_spec
    from cli.campaign_files import summary_table

    db = open_database()
    with plain_store_errors(), db.reading() as session:
        record = get_campaign(session, name)
        spec = load_spec(record)
        overview = campaigns_overview(session)
        approval = effective_approval(session, record.id, spec.approval.policy)
    row = overview[overview["name"] == name].iloc[0]
    console.print(summary_table(spec))
    console.print(f"approval: [bold]{approval}[/]", highlight=False)
    status = f"status: [bold]{record.status}[/]"
    if record.stop_reason:
        status += f" — {record.stop_reason}"
    console.print(status)
    console.print(
        f"iterations: {row['iterations']}, experiments: {row['experiments']}, measurements: {row['measurements']}"
    )


HISTORY_COLUMNS = [
    "iteration", "rank", "candidate", "dropped", "acquisition_value", "posterior_mean", "posterior_std", "reason",
    "decision", "approver", "note", "batch_status", "model_version", "job_status", "fidelity", "property", "value",
    "error",
]
#: In a narrow terminal: what was tried and what came of it first, then why it was chosen, then who
#: decided on it (and what they said) with which model, then the bookkeeping.
HISTORY_LAYOUT = TableLayout(
    order=HISTORY_COLUMNS,
    priority=["iteration", "rank", "candidate", "fidelity", "property", "value", "error", "dropped", "posterior_mean",
              "posterior_std", "reason", "decision", "approver", "note", "model_version", "job_status",
              "acquisition_value", "batch_status"],
    labels={"iteration": "iter", "acquisition_value": "acq", "posterior_mean": "mean", "posterior_std": "std",
            "model_version": "model", "batch_status": "batch", "job_status": "job"},
    folding={"candidate": 24, "error": 16, "reason": 20, "note": 16},
    always=("iteration", "candidate"),
    drop_when_empty=("error", "dropped", "note", "fidelity"),
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
    since: int | None = typer.Option(None, "--since", min=0, max=MAX_INT_OPTION,
                                     help="only iterations from this number on"),
    limit: int | None = typer.Option(None, "--limit", "-n", min=1, max=MAX_INT_OPTION,
                                     help=f"only the newest N rows (the table's default: {DEFAULT_TABLE_ROWS})"),
    all_rows: bool = typer.Option(False, "--all", help="every row in the table too"),
) -> None:
    """What was proposed, decided (by whom, with which note), dispatched and measured, with which model version.

    The table shows the newest rows and says how many there are; CSV and JSON stream every row (or --limit).
    """
    if all_rows and limit is not None:
        raise fail("give either --limit or --all, not both")
    if fmt is OutputFormat.table:
        import pandas as pd
    db = open_database()
    with plain_store_errors(), db.reading() as session:
        if fmt is OutputFormat.table and not all_rows:
            rows, total = recent_history(session, name, limit or DEFAULT_TABLE_ROWS, prop=prop, since_iteration=since)
            print_history_table(pd.DataFrame(rows, columns=store_history.HISTORY_COLUMNS), name, total,
                                store_history.has_fidelities(session, name))
        elif fmt is OutputFormat.table:
            rows = list(iter_history(session, name, prop=prop, since_iteration=since))
            print_history_table(pd.DataFrame(rows, columns=store_history.HISTORY_COLUMNS), name, len(rows),
                                store_history.has_fidelities(session, name))
        elif fmt is OutputFormat.csv and not limit:  # every row as CSV text the database mostly renders itself
            write_csv_lines(sys.stdout, store_history.HISTORY_COLUMNS,
                            iter_history_csv_lines(session, name, prop=prop, since_iteration=since))
        else:
            stream = recent_history(session, name, limit, prop=prop, since_iteration=since)[0] if limit else \
                iter_history(session, name, prop=prop, since_iteration=since)
            (write_csv if fmt is OutputFormat.csv else write_json)(sys.stdout, store_history.HISTORY_COLUMNS, stream)


def print_history_table(frame: pd.DataFrame, name: str, total: int, fidelities: bool = False) -> None:
    """The history table, then how many rows it leaves out and how to see them.

    The ``fidelity`` column only where the campaign measures at several fidelities (``fidelities``): a
    single-fidelity campaign's one fidelity name says nothing a reader needs.
    """
    frame = frame.assign(dropped=frame["dropped"].map(lambda d: "dropped" if d else ""))
    if not fidelities:
        frame = frame.assign(fidelity=None)
    print_frame(console, frame, f"history of {name} ({total:,} rows)", HISTORY_LAYOUT)
    if len(frame) < total:
        console.print(f"showing the newest {len(frame):,} of {total:,} rows; --limit N, --all or --format csv "
                      "for more", highlight=False)


def register(app: typer.Typer) -> None:
    app.command()(campaigns)
    app.command()(show)
    app.command()(history)



