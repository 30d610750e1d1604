"""The loop itself: iterations of sync → fit → generate → select → gate → dispatch → wait → stop?.

:func:`run_campaign` drives the plain step functions; how each step is run
(directly, or as a Prefect task with retries) and how a person is asked (a
Prefect pause, a test's callback) are injected, so the same driver serves the
Prefect flow, the tests and any other orchestrator.  It holds no state of its
own: every decision is read back from the database, which is why a killed
campaign resumes from its last committed step.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from sqlalchemy.orm import Session

from agent.loop.context import LoopContext
from agent.loop.dispatch import dispatch, submit_pending
from agent.loop.fit import FitOutcome, final_recommendation, fit
from agent.loop.gate import apply_decision, policy_decision
from agent.loop.generate import generate
from agent.loop.iteration import check_stop, complete_iteration, finish_campaign, open_iteration
from agent.loop.outage import read_through_outage, through_outage
from agent.loop.select import NothingToSelect, select_batch_step
from agent.loop.state import current_batch, latest_iteration, step_index
from agent.loop.sync import sync
from agent.loop.wait import wait_for_results
from agent.policy.approval import Decision
from agent.store.models import IterationRecord

StepRunner = Callable[..., Any]
"""``run_step(name, function, *args)`` → the function's result (Prefect wraps it in a task)."""

AskPerson = Callable[[LoopContext, int], Decision]
"""Asked with (context, batch id) when the approval policy wants a person; returns their decision."""


def direct(name: str, function: Callable[..., Any], *args: Any, **kwargs: Any) -> Any:
    return function(*args, **kwargs)


def never_ask(ctx: LoopContext, batch_id: int) -> Decision:
    raise RuntimeError(f"batch {batch_id} needs a person's approval and no one can be asked here")


@dataclass
class RunOutcome:
    """How a run ended: ``stopped`` with the campaign's stop reason, or ``paused`` after --max-iterations."""

    status: str
    reason: str | None
    iterations_run: int


@dataclass
class Hooks:
    """Called after steps, for progress display and Prefect artifacts; never needed for correctness."""

    on_batch: Callable[[LoopContext, int, FitOutcome | None], None] | None = None
    on_iteration: Callable[[LoopContext, int], None] | None = None
    on_poll: Callable[[int, int], None] | None = None


def run_campaign(
    ctx: LoopContext,
    *,
    run_step: StepRunner = direct,
    ask_person: AskPerson = never_ask,
    max_iterations: int | None = None,
    hooks: Hooks | None = None,
) -> RunOutcome:
    """Run (or resume) the campaign until it stops, or until ``max_iterations`` more iterations are done."""
    hooks = hooks or Hooks()
    run_step("submit_pending", submit_pending, ctx)  # finish a dispatch a crash interrupted
    done = 0
    while True:
        last_step = read_through_outage(ctx.db, lambda session: _last_step(session, ctx.campaign_id))
        resuming = last_step is not None and last_step != "complete"
        if not resuming:
            run_step("sync", sync, ctx)
            reason, _ = through_outage(lambda: check_stop(ctx))
            if reason is not None:
                return _stop(ctx, run_step, reason, done, hooks)
            if max_iterations is not None and done >= max_iterations:
                return RunOutcome(status="paused", reason=f"ran {done} iteration(s) as asked", iterations_run=done)
        iteration = run_step("open_iteration", open_iteration, ctx)
        try:
            _iterate(ctx, iteration.id, run_step, ask_person, hooks)
        except NothingToSelect as exc:
            return _stop(ctx, run_step, f"nothing left to select: {exc}", done, hooks)
        done += 1
        if hooks.on_iteration is not None:
            hooks.on_iteration(ctx, iteration.id)


def _last_step(session: Session, campaign_id: int) -> str | None:
    last = latest_iteration(session, campaign_id)
    return None if last is None else last.step


def _step_of(ctx: LoopContext, iteration_id: int) -> str:
    def read(session: Session) -> str:
        iteration = session.get(IterationRecord, iteration_id)
        assert iteration is not None
        return iteration.step

    return read_through_outage(ctx.db, read)


def _batch_id(ctx: LoopContext, iteration_id: int) -> int:
    def read(session: Session) -> int:
        batch = current_batch(session, iteration_id)
        assert batch is not None, "an iteration past 'selected' must have a batch"
        return batch.id

    return read_through_outage(ctx.db, read)


def _iterate(ctx: LoopContext, iteration_id: int, run_step: StepRunner, ask_person: AskPerson, hooks: Hooks) -> None:
    """One iteration from wherever it stands: each branch runs only the steps not yet committed."""
    while True:
        step = _step_of(ctx, iteration_id)
        if step_index(step) < step_index("selected"):
            run_step("sync", sync, ctx)
            fitted = run_step("fit", fit, ctx, iteration_id)
            pool = run_step("generate", generate, ctx, iteration_id, fitted)
            batch_id = run_step("select", select_batch_step, ctx, iteration_id, fitted, pool)
            if hooks.on_batch is not None:
                hooks.on_batch(ctx, batch_id, fitted)
            continue
        if step == "selected":
            batch_id = _batch_id(ctx, iteration_id)
            decision = run_step("gate", policy_decision, ctx, batch_id)
            if decision is None:
                decision = ask_person(ctx, batch_id)
            run_step("record_decision", apply_decision, ctx.db, batch_id, decision)
            continue  # approved → dispatch; rejected → back to choosing without the rejected candidates
        if step == "approved":
            run_step("dispatch", dispatch, ctx, _batch_id(ctx, iteration_id))
            continue
        if step == "dispatched":
            run_step("wait", wait_for_results, ctx, iteration_id, ctx.campaign.stopping.min_results_fraction,
                     on_poll=hooks.on_poll)
            run_step("complete_iteration", complete_iteration, ctx, iteration_id)
            continue
        if step == "complete":
            return
        raise RuntimeError(f"iteration {iteration_id} is at unknown step {step!r}")


def _stop(ctx: LoopContext, run_step: StepRunner, reason: str, done: int, hooks: Hooks) -> RunOutcome:
    """Stop: wait for every job still out (nothing measured is lost), pick on every result, store the reason."""
    run_step("drain", wait_for_results, ctx, None, 1.0, on_poll=hooks.on_poll)
    run_step("final_recommendation", final_recommendation, ctx)
    run_step("stop", finish_campaign, ctx, reason)
    return RunOutcome(status="stopped", reason=reason, iterations_run=done)
