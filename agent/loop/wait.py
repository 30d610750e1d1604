"""Waiting for results: poll the adapters with backoff, store results as they come, move on early.

The next iteration may start when ``stopping.min_results_fraction`` of the
batch is back, rather than waiting for stragglers; their results are stored by
later syncs (stragglers are pending points for the next selection meanwhile).
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass

from sqlalchemy import func, select

from agent.loop.context import LoopContext
from agent.loop.dispatch import submit_pending
from agent.loop.state import OPEN_JOB_STATUSES
from agent.loop.sync import sync
from agent.store.models import BatchItemRecord, BatchRecord, JobRecord


@dataclass
class WaitOutcome:
    done: int
    total: int
    polls: int


def _counts(ctx: LoopContext, iteration_id: int | None) -> tuple[int, int]:
    with ctx.db.reading() as session:
        query = select(JobRecord.status, func.count()).where(JobRecord.campaign_id == ctx.campaign_id)
        if iteration_id is not None:
            query = (
                query.join(BatchItemRecord, BatchItemRecord.id == JobRecord.batch_item_id)
                .join(BatchRecord, BatchRecord.id == BatchItemRecord.batch_id)
                .where(BatchRecord.iteration_id == iteration_id)
            )
        rows = session.execute(query.group_by(JobRecord.status)).all()
    total = sum(n for _, n in rows)
    open_ = sum(n for status, n in rows if status in OPEN_JOB_STATUSES)
    return total - open_, total


def wait_for_results(
    ctx: LoopContext,
    iteration_id: int | None,
    fraction: float,
    *,
    sleep: Callable[[float], None] = time.sleep,
    on_poll: Callable[[int, int], None] | None = None,
    deadline: float | None = None,
) -> WaitOutcome:
    """Sync until ``fraction`` of the iteration's jobs (all open jobs when ``iteration_id`` is None) are done."""
    polls = 0
    delays = ctx.backoff.delays()
    while True:
        sync(ctx)
        submit_pending(ctx)  # lost jobs that sync replaced by a new attempt
        polls += 1
        done, total = _counts(ctx, iteration_id)
        if on_poll is not None:
            on_poll(done, total)
        if total == 0 or done >= fraction * total - 1e-9:
            return WaitOutcome(done=done, total=total, polls=polls)
        if deadline is not None and time.monotonic() >= deadline:
            return WaitOutcome(done=done, total=total, polls=polls)
        sleep(next(delays))
