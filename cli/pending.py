"""``matloop pending``: every batch that waits for a person's decision, across campaigns.

A batch waits when it is its campaign's newest batch, still ``proposed``, and a
run asked a person about it (the ``approval_requested`` event the gate records,
with the flow run that waits).  A proposed batch nobody was asked about yet is
not listed: the next run applies the approval policy to it first.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

import pandas as pd
import typer
from pydantic import ValidationError
from sqlalchemy import func, select
from sqlalchemy.orm import Session

from agent.store.campaigns import load_spec
from agent.store.models import BatchRecord, CampaignRecord, EventRecord
from cli.common import console, open_database, plain_store_errors
from cli.history import OutputFormat, emit
from cli.tables import TableLayout

PENDING_COLUMNS = ["campaign", "batch", "size", "cost", "fidelity", "waiting_since", "flow_run_id", "approve"]
PENDING_LAYOUT = TableLayout(
    order=PENDING_COLUMNS,
    priority=["campaign", "batch", "approve", "size", "cost", "fidelity", "waiting_since", "flow_run_id"],
    labels={"waiting_since": "waiting since (UTC)", "flow_run_id": "flow run", "approve": "to decide"},
    folding={"campaign": 16, "approve": 30, "flow_run_id": 12, "fidelity": 16},
    always=("campaign", "batch"),
    drop_when_empty=("flow_run_id", "fidelity"),
)


def waiting_batches(session: Session) -> pd.DataFrame:
    """One row per batch awaiting a decision: campaign, batch, size, cost, since when, which flow run waits."""
    newest = (
        select(BatchRecord.campaign_id, func.max(BatchRecord.id).label("batch_id"))
        .group_by(BatchRecord.campaign_id)
        .subquery()
    )
    rows = session.execute(
        select(CampaignRecord, BatchRecord)
        .join(newest, newest.c.campaign_id == CampaignRecord.id)
        .join(BatchRecord, BatchRecord.id == newest.c.batch_id)
        .where(BatchRecord.status == "proposed")
        .order_by(CampaignRecord.name)
    ).all()
    out: list[dict[str, Any]] = []
    for campaign, batch in rows:
        asked = _approval_request(session, campaign.id, batch.id)
        if asked is None:
            continue
        fidelities = [item.fidelity for item in batch.items if not item.dropped]
        out.append({
            "campaign": campaign.name, "batch": batch.id, "size": len(fidelities), "cost": _cost(campaign, fidelities),
            "fidelity": _fidelities(campaign, fidelities),
            "waiting_since": asked.created_at, "flow_run_id": (asked.payload or {}).get("flow_run_id"),
            "approve": f"matloop approve {campaign.name} --by NAME",
        })
    return pd.DataFrame(out, columns=PENDING_COLUMNS)


def _cost(campaign: CampaignRecord, fidelities: list[str | None]) -> float | None:
    """What the batch would cost (each pick at its fidelity); unknown (None) for a stored spec this version cannot
    read, rather than a crash."""
    try:
        return load_spec(campaign).batch_cost(fidelities)
    except ValidationError:
        return None


def _fidelities(campaign: CampaignRecord, fidelities: list[str | None]) -> str | None:
    """How many picks go to each fidelity (``"coarse 3, fine 1"``), cheapest first; None for a single-fidelity
    campaign (or a stored spec this version cannot read). An initial-design pick names no fidelity: it is
    measured at every one."""
    try:
        spec = load_spec(campaign)
    except ValidationError:
        return None
    if not spec.is_multifidelity:
        return None
    counts = {f: fidelities.count(f) for f in spec.fidelities if fidelities.count(f)}
    parts = [f"{f} {n}" for f, n in counts.items()]
    if None in fidelities:
        parts.append(f"every fidelity {fidelities.count(None)}")
    return ", ".join(parts)


def _approval_request(session: Session, campaign_id: int, batch_id: int) -> EventRecord | None:
    """The newest ``approval_requested`` event of the campaign if it asks about ``batch_id``."""
    event = session.scalar(
        select(EventRecord)
        .where(EventRecord.campaign_id == campaign_id, EventRecord.kind == "approval_requested")
        .order_by(EventRecord.id.desc())
        .limit(1)
    )
    return event if event is not None and (event.payload or {}).get("batch") == batch_id else None


def pending(fmt: OutputFormat = typer.Option(OutputFormat.table, "--format", "-f", help="table, csv or json")) -> None:
    """List the batches waiting for a decision, in every campaign, with how to approve each."""
    db = open_database()
    with plain_store_errors(), db.reading() as session:
        frame = waiting_batches(session)
    if frame.empty and fmt is OutputFormat.table:
        console.print(f"no batch waits for a decision in {db.display_url}")
        return
    if fmt is not OutputFormat.table:
        frame["waiting_since"] = frame["waiting_since"].map(
            lambda t: t.isoformat() if isinstance(t, datetime) else t
        )
    emit(frame, fmt, f"batches waiting for a decision in {db.display_url}", PENDING_LAYOUT)


def register(app: typer.Typer) -> None:
    app.command()(pending)
