"""Prefect events a campaign emits, for automations (a notification when a batch waits for a person).

A waiting batch can wait for days; nobody watches a UI that long.  The event
names the campaign as its resource, so a Prefect automation can match one
campaign (``matloop.campaign.NAME``) or all of them (``matloop.campaign.*``) and
send a notification (docs/running.md shows one).  Emitting never fails the run.
"""

from __future__ import annotations

import logging
from typing import Any

from agent.loop.context import LoopContext
from agent.loop.gate import batch_cost
from agent.store.models import BatchRecord

log = logging.getLogger(__name__)

AWAITING_APPROVAL = "matloop.batch.awaiting-approval"


def campaign_resource_id(name: str) -> str:
    return f"matloop.campaign.{name}"


def awaiting_approval_event(ctx: LoopContext, batch_id: int, flow_run_id: str | None) -> dict[str, Any]:
    """The event's fields: the campaign as resource, the flow run as related resource, the batch in the payload."""
    with ctx.db.reading() as session:
        batch = session.get(BatchRecord, batch_id)
        if batch is None:
            raise LookupError(f"no batch {batch_id}")
        size = sum(1 for item in batch.items if not item.dropped)
    name = ctx.campaign.name
    related = []
    if flow_run_id:
        related.append({"prefect.resource.id": f"prefect.flow-run.{flow_run_id}", "prefect.resource.role": "flow-run"})
    return {
        "event": AWAITING_APPROVAL,
        "resource": {"prefect.resource.id": campaign_resource_id(name), "prefect.resource.name": name,
                     "matloop.campaign": name},
        "related": related,
        "payload": {
            "campaign": name, "batch_id": batch_id, "size": size, "cost": batch_cost(ctx, batch_id),
            "flow_run_id": flow_run_id, "approve": f"matloop approve {name} --by NAME",
        },
    }


def emit_awaiting_approval(ctx: LoopContext, batch_id: int, flow_run_id: str | None) -> None:
    """Emit ``matloop.batch.awaiting-approval`` for the batch (logged and skipped if it cannot be sent)."""
    from prefect.events import emit_event

    try:
        emit_event(**awaiting_approval_event(ctx, batch_id, flow_run_id))
    except Exception as exc:  # noqa: BLE001 - a notification must not stop the approval it announces
        log.warning("could not emit the %s event: %s", AWAITING_APPROVAL, exc)


def approval_notification(block_document_id: Any, campaign: str = "*", name: str | None = None) -> Any:
    """A Prefect automation that sends a notification (through a saved notification block) when a batch waits.

    ``campaign`` matches one campaign by name, or every campaign with ``"*"``.  The message names the
    campaign, the batch, its size and cost, and the command that approves it; ``.create()`` saves it on the
    Prefect server (docs/running.md shows it in use).
    """
    from prefect.automations import Automation
    from prefect.events.actions import SendNotification
    from prefect.events.schemas.automations import EventTrigger, Posture

    return Automation(
        name=name or f"matloop: batch awaiting approval ({campaign})",
        description="notify a person when a matloop batch waits for a decision",
        trigger=EventTrigger(
            expect={AWAITING_APPROVAL}, match={"prefect.resource.id": campaign_resource_id(campaign)},
            posture=Posture.Reactive, threshold=1,
        ),
        actions=[SendNotification(
            block_document_id=block_document_id,
            subject="matloop: {{ event.payload.campaign }} waits for approval",
            body=("batch {{ event.payload.batch_id }} of {{ event.payload.campaign }}: {{ event.payload.size }} "
                  "candidates, cost {{ event.payload.cost }}. Decide with `{{ event.payload.approve }}` or the "
                  "form of flow run {{ event.payload.flow_run_id }} in the Prefect UI."),
        )],
    )
