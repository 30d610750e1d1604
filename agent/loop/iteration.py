"""Iteration bookkeeping: opening the iteration to work on, completing it, stopping the campaign."""

from __future__ import annotations

import math
from datetime import UTC, datetime
from typing import Any

from agent.loop.context import LoopContext
from agent.loop.state import best_value, latest_iteration, observations, progress
from agent.policy.stopping import CampaignProgress, stop_reason
from agent.store.events import record_event
from agent.store.models import CampaignRecord, IterationRecord


def _finite_or_none(best: float | None) -> float | None:
    """The best value as stored: None until a finite value was measured (JSON has no -inf, and it means nothing)."""
    return best if best is not None and math.isfinite(best) else None


def open_iteration(ctx: LoopContext) -> IterationRecord:
    """The unfinished iteration to resume, or a new one after the last complete one (one transaction)."""
    with ctx.db.transaction() as session:
        return _open(session, ctx, latest_iteration(session, ctx.campaign_id))


def complete_iteration(ctx: LoopContext, iteration_id: int) -> float | None:
    """Mark the iteration complete and store the best value so far (for the no-improvement rule)."""
    with ctx.db.transaction() as session:
        return _complete(session, ctx, iteration_id)


def next_iteration(ctx: LoopContext) -> IterationRecord:
    """:func:`complete_iteration` of a latest iteration that was dispatched, then :func:`open_iteration`, in one
    transaction: for a caller whose next ask is the moment the previous batch is done (the ask/tell API), the
    two are one unit of work, so a crash leaves either both or neither."""
    with ctx.db.transaction() as session:
        last = latest_iteration(session, ctx.campaign_id)
        if last is not None and last.step == "dispatched":
            _complete(session, ctx, last.id)
        return _open(session, ctx, last)


def _open(session: Any, ctx: LoopContext, last: IterationRecord | None) -> IterationRecord:
    """:func:`open_iteration` in ``session``, after ``last``, the campaign's latest iteration (``None``: none yet)."""
    if last is not None and last.step != "complete":
        return last
    number = 1 if last is None else last.number + 1
    iteration = IterationRecord(campaign_id=ctx.campaign_id, number=number, step="started", info={})
    session.add(iteration)
    campaign = session.get(CampaignRecord, ctx.campaign_id)
    assert campaign is not None
    campaign.status = "running"
    session.flush()
    record_event(session, "iteration_started", campaign_id=ctx.campaign_id, iteration_id=iteration.id,
                 payload={"number": number})
    return iteration


def _complete(session: Any, ctx: LoopContext, iteration_id: int) -> float | None:
    """:func:`complete_iteration` in ``session``."""
    iteration = session.get(IterationRecord, iteration_id)
    assert iteration is not None
    best, who = best_value(ctx.campaign, observations(session, ctx.campaign, ctx.campaign_id))
    best = _finite_or_none(best)
    if iteration.step != "complete":
        iteration.step = "complete"
        iteration.finished_at = datetime.now(UTC)
        iteration.info = {**(iteration.info or {}), "best": best,
                          "best_candidate": None if who is None else who.fingerprint}
        record_event(session, "iteration_complete", campaign_id=ctx.campaign_id, iteration_id=iteration_id,
                     payload={"number": iteration.number, "best": best})
    return best


def check_stop(ctx: LoopContext) -> tuple[str | None, CampaignProgress]:
    """Whether the campaign should stop now, and the progress the decision was made on."""
    with ctx.db.reading() as session:
        snapshot = progress(session, ctx.campaign, ctx.campaign_id)
    return stop_reason(ctx.campaign, snapshot), snapshot


def finish_campaign(ctx: LoopContext, reason: str, status: str = "stopped") -> None:
    """Store why the campaign ended (one transaction); an unstarted open iteration is closed with it."""
    with ctx.db.transaction() as session:
        campaign = session.get(CampaignRecord, ctx.campaign_id)
        assert campaign is not None
        campaign.status = status
        campaign.stop_reason = reason
        last = latest_iteration(session, ctx.campaign_id)
        if last is not None and last.step in ("started", "fitted", "generated"):
            last.info = {**(last.info or {}), "closed": reason}
            last.step = "complete"
            last.finished_at = datetime.now(UTC)
            best, _ = best_value(ctx.campaign, observations(session, ctx.campaign, ctx.campaign_id))
            last.info["best"] = _finite_or_none(best)
        record_event(session, "campaign_stopped" if status == "stopped" else f"campaign_{status}",
                     campaign_id=ctx.campaign_id, payload={"reason": reason})
