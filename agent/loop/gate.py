"""Step 5, gate: who lets the batch go out, and storing that decision (who, when, what was dropped)."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from agent.loop.context import LoopContext
from agent.loop.state import spending
from agent.policy.approval import Decision, automatic_decision
from agent.store import Database
from agent.store.events import record_event
from agent.store.models import BatchRecord, CampaignRecord, IterationRecord


class DecisionError(ValueError):
    """A decision that cannot apply to this batch (unknown candidate ids, already decided otherwise)."""


def batch_cost(ctx: LoopContext, batch_id: int, session: Any | None = None) -> float:
    """What the batch's kept items cost (read in ``session`` if given)."""
    if session is None:
        with ctx.db.reading() as session:
            return batch_cost(ctx, batch_id, session)
    batch = session.get(BatchRecord, batch_id)
    assert batch is not None
    fidelities = [item.fidelity for item in batch.items if not item.dropped]
    return ctx.campaign.batch_cost(fidelities)


def policy_decision(ctx: LoopContext, batch_id: int) -> Decision | None:
    """The approval policy's decision on the batch, or ``None`` when a person must decide.

    What is left of the budget is read from the ledger, so ``auto_below_cost`` never lets out a batch the
    campaign cannot pay for.
    """
    with ctx.db.reading() as session:
        left = spending(session, ctx.campaign_id).remaining_cost(ctx.campaign)
        cost = batch_cost(ctx, batch_id, session)
    return automatic_decision(ctx.campaign.approval, cost, left, ctx.campaign.budget.currency)


def request_approval(
    db: Database, batch_id: int, *, flow_run_id: str | None, approval_key: str | None, api_url: str | None = None
) -> None:
    """Record that the batch waits for a person (and which flow run to resume), in one transaction."""
    with db.transaction() as session:
        batch = session.get(BatchRecord, batch_id)
        assert batch is not None
        campaign = session.get(CampaignRecord, batch.campaign_id)
        assert campaign is not None
        campaign.status = "waiting"
        record_event(
            session, "approval_requested", campaign_id=batch.campaign_id, iteration_id=batch.iteration_id,
            payload={"batch": batch_id, "flow_run_id": flow_run_id, "key": approval_key, "api_url": api_url},
        )


def apply_decision(db: Database, batch_id: int, decision: Decision) -> str:
    """Store ``decision`` on the batch (one transaction); returns the batch's new status.

    Idempotent: applying the decision a batch already carries changes nothing,
    so a flow resumed after storing it (or the CLI and the flow both applying
    it) is harmless.  A different decision on a decided batch is refused.
    """
    with db.transaction() as session:
        batch = session.get(BatchRecord, batch_id)
        if batch is None:
            raise DecisionError(f"no batch {batch_id}")
        if batch.status != "proposed":
            if batch.approver == decision.approver:
                return batch.status
            raise DecisionError(
                f"batch {batch_id} was already decided ({batch.status}) by {batch.approver} at "
                f"{batch.decided_at:%Y-%m-%d %H:%M:%S} UTC"
            )
        items_by_candidate = {item.candidate_id: item for item in batch.items}
        unknown = sorted(set(decision.drop) - set(items_by_candidate))
        if unknown:
            raise DecisionError(
                f"candidates {unknown} are not in batch {batch_id}; its candidates are {sorted(items_by_candidate)}"
            )
        for cid in decision.drop:
            items_by_candidate[cid].dropped = True
        kept = [item for item in batch.items if not item.dropped]
        if not decision.approve or not kept:
            status = "rejected"
        else:
            status = "edited" if decision.drop else "approved"
        batch.status = status
        batch.approver = decision.approver
        batch.note = decision.note
        batch.decided_at = datetime.now(UTC)
        iteration = session.get(IterationRecord, batch.iteration_id)
        campaign = session.get(CampaignRecord, batch.campaign_id)
        assert iteration is not None and campaign is not None
        # approved → dispatch next; rejected → back to choosing, without the rejected candidates
        iteration.step = "approved" if status != "rejected" else "started"
        campaign.status = "running"
        payload: dict[str, Any] = {"batch": batch_id, "status": status, "dropped": sorted(decision.drop),
                                   "note": decision.note}
        record_event(session, "batch_decided", campaign_id=batch.campaign_id, iteration_id=batch.iteration_id,
                     actor=decision.approver, payload=payload)
        return status
