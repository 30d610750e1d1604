"""``matloop budget NAME``: what a campaign has spent, by fidelity, adapter and iteration, and what is left.

Everything comes from the campaign's ledger (``agent/store/ledger.py``) and its progress, read in one
transaction; nothing is written, and a database that is not there is not created.
"""

from __future__ import annotations

import json
import math
import sys
from dataclasses import asdict, dataclass
from datetime import timedelta
from typing import Any

import typer
from pydantic import ValidationError
from rich.markup import escape
from rich.table import Table

from agent.loop.state import progress
from agent.store.campaigns import get_campaign, load_spec
from agent.store.ledger import LedgerTotals, SpendRow, ledger_totals
from cli.common import console, fail, open_database, plain_store_errors
from cli.history import OutputFormat


@dataclass
class Limit:
    """One budget limit: how much of it is used, and what is left (None where the budget sets no such limit)."""

    limit: str
    used: float | int | str
    of: float | int | str | None
    left: float | int | str | None


def _limits(spec: Any, snap: Any) -> list[Limit]:
    b = spec.budget
    out = [
        Limit("experiments", snap.experiments, b.max_experiments,
              None if b.max_experiments is None else max(b.max_experiments - snap.experiments, 0)),
        Limit(f"cost ({b.currency})", round(snap.cost, 12), b.max_cost,
              None if b.max_cost is None else round(snap.remaining_cost(spec), 12)),
        Limit("iterations", snap.completed_iterations, b.max_iterations,
              None if b.max_iterations is None else max(b.max_iterations - snap.completed_iterations, 0)),
    ]
    elapsed = timedelta(seconds=int(snap.elapsed.total_seconds()))
    left = None if b.wall_clock is None else max(b.wall_clock - elapsed, timedelta(0))
    out.append(Limit("wall clock", str(elapsed), None if b.wall_clock is None else str(b.wall_clock),
                     None if left is None else str(left)))
    return out


def _rows_json(rows: list[SpendRow], key: str) -> list[dict[str, Any]]:
    return [{key: r.key, "jobs": r.jobs, "charged": r.charged, "refunded": r.refunded, "spent": r.net} for r in rows]


def budget_report(totals: LedgerTotals, limits: list[Limit], name: str, currency: str, on_failure: str,
                  experiments_left: float) -> dict[str, Any]:
    """The JSON answer: totals, each limit, and the spend three ways."""
    return {
        "campaign": name, "currency": currency, "on_failure": on_failure,
        "spent": totals.net, "charged": totals.charged, "refunded": totals.refunded, "jobs": totals.jobs,
        "experiments_left": None if math.isinf(experiments_left) else int(experiments_left),
        "limits": [asdict(limit) for limit in limits],
        "by_fidelity": _rows_json(totals.by_fidelity, "fidelity"),
        "by_adapter": _rows_json(totals.by_adapter, "adapter"),
        "by_iteration": _rows_json(totals.by_iteration, "iteration"),
    }


def _num(value: float | int | str | None) -> str:
    if value is None:
        return "—"
    return f"{value:g}" if isinstance(value, float) else escape(str(value))


def _spend_table(title: str, label: str, rows: list[SpendRow]) -> Table:
    table = Table(title=title, title_justify="left")
    table.add_column(label)
    for column in ("jobs", "charged", "refunded", "spent"):
        table.add_column(column, justify="right")
    for r in rows:
        table.add_row(escape(r.key), str(r.jobs), f"{r.charged:g}", f"{r.refunded:g}", f"{r.net:g}")
    return table


def budget(
    name: str = typer.Argument(..., help="campaign name"),
    fmt: OutputFormat = typer.Option(OutputFormat.table, "--format", "-f", help="table or json"),
) -> None:
    """What a campaign has spent (by fidelity, adapter and iteration, from its ledger) and what is left."""
    if fmt is OutputFormat.csv:
        raise fail("budget prints --format table or json (its answer is several tables, not one)")
    db = open_database()
    with plain_store_errors(), db.reading() as session:
        record = get_campaign(session, name)
        try:
            spec = load_spec(record)
        except ValidationError:
            raise fail(f"campaign {name!r} was stored by another version of matloop and its spec cannot be read "
                       "here; use the matloop that ran it") from None
        snap = progress(session, spec, record.id)
        totals = ledger_totals(session, record.id)
    db.dispose()
    limits = _limits(spec, snap)
    currency = spec.budget.currency
    if fmt is OutputFormat.json:
        report = budget_report(totals, limits, name, currency, spec.budget.on_failure,
                               snap.remaining_experiments(spec))
        sys.stdout.write(json.dumps(report, indent=2) + "\n")
        return
    console.print(
        f"[bold]{escape(name)}[/]: spent {totals.net:g} {escape(currency)} on {totals.jobs} jobs "
        f"(charged {totals.charged:g}, refunded {totals.refunded:g}; failed jobs: {spec.budget.on_failure})",
        highlight=False,
    )
    table = Table(title="budget limits", title_justify="left")
    for column, justify in (("limit", "left"), ("used", "right"), ("of", "right"), ("left", "right")):
        table.add_column(column, justify=justify)  # type: ignore[arg-type]
    for limit in limits:
        table.add_row(escape(limit.limit), _num(limit.used), _num(limit.of), _num(limit.left))
    console.print(table)
    if not totals.jobs:
        console.print("nothing charged yet: no job has been dispatched")
        return
    console.print(_spend_table(f"spend by fidelity ({escape(currency)})", "fidelity", totals.by_fidelity))
    console.print(_spend_table(f"spend by adapter ({escape(currency)})", "adapter", totals.by_adapter))
    console.print(_spend_table(f"spend by iteration ({escape(currency)})", "iteration", totals.by_iteration))


def register(app: typer.Typer) -> None:
    app.command()(budget)
