"""Each loop step's outcome as one INFO line in the flow run's log, so a person can watch a campaign in the UI.

The lines are read back from the database and the step's return value (never
from anything the flow keeps), e.g.::

    fit · iteration 3: gp on 24 results (model version 3); y: cross-validated RMSE 0.012 V, 95 % interval ...
                       coverage 0.93 (ideal 0.95)
    select · iteration 3: batch 12 of 8 candidates, best acquisition 0.53 (candidate 17: explore: high std)
    gate · iteration 3: batch 12 needs a person's approval (policy manual): `matloop approve NAME --by NAME` or ...
    dispatch · iteration 3: 8 jobs submitted: 8 to lab (simlab) (batch 12)
    wait · iteration 3: 8 of 8 jobs done after 5 polls: 1 failed, 7 succeeded, failed because: precursor clogged

A sync line is written only when there were open jobs to poll.

Writing a line never fails a step: a line that cannot be composed is replaced by a short note.
"""

from __future__ import annotations

import logging
from collections import Counter
from typing import Any

from sqlalchemy import select

from agent.loop.context import LoopContext
from agent.store.models import BatchItemRecord, BatchRecord, JobRecord, MeasurementRecord, ModelVersionRecord
from flows.artifacts import METRIC_WORDS, ArtifactPublisher, fmt, units_of, with_units

log = logging.getLogger(__name__)

#: Step names whose line is not worth a person's attention (their effect shows in the next step's line).
QUIET_STEPS = frozenset({"open_iteration"})


def run_logger() -> logging.Logger | logging.LoggerAdapter:
    """Prefect's logger of the current flow run (its lines reach the UI), or this module's outside a run."""
    from prefect.exceptions import MissingContextError
    from prefect.logging import get_run_logger

    try:
        return get_run_logger()
    except MissingContextError:
        return log


def _sync(ctx: LoopContext, report: Any) -> str | None:
    if not report.polled:
        return None  # nothing out: a line per iteration saying so would only hide the lines that matter
    statuses = dict(report.statuses)
    text = f"{report.polled} open jobs polled; {report.finished} finished"
    if report.finished:
        failed = statuses.get("failed", 0)
        parts = [f"{report.measurements} measurements stored"]
        if failed:
            with ctx.db.reading() as session:
                errors = list(session.scalars(
                    select(JobRecord.error)
                    .where(JobRecord.campaign_id == ctx.campaign_id, JobRecord.status == "failed")
                    .order_by(JobRecord.finished_at.desc(), JobRecord.id.desc())
                    .limit(failed)
                ))
            reasons = "; ".join(sorted({(e or "no reason given")[:120] for e in errors}))
            parts.append(f"{failed} failed ({reasons})")
        if report.resubmitted:
            parts.append(f"{report.resubmitted} lost jobs to be submitted again")
        text += ": " + ", ".join(parts)
    return text


def _fit(ctx: LoopContext, outcome: Any) -> str:
    if outcome.model_version_id is None:
        return f"no model yet — {outcome.reason}"
    with ctx.db.reading() as session:
        version = session.get(ModelVersionRecord, outcome.model_version_id)
        if version is None:
            return f"model version {outcome.model_version_id}"
        kind, n_train, metrics = version.kind, version.n_train, dict(version.metrics or {})
    from agent.loop.state import modelled_properties

    props = modelled_properties(ctx.campaign)
    parts = [f"{kind} on {n_train} results (model version {outcome.model_version_id})"]
    for key, values in sorted(metrics.items()):
        if not isinstance(values, dict):
            continue
        prop = props[int(key)] if key.isdigit() and int(key) < len(props) else key
        units = units_of(ctx, prop)
        said = [f"{METRIC_WORDS['rmse'][0]} {with_units(values.get('rmse'), units)}"]
        if "cov95" in values:
            said.append(f"95 % interval coverage {fmt(values.get('cov95'))} (ideal 0.95)")
        parts.append(f"{prop}: " + ", ".join(said))
    return "; ".join(parts)


def _generate(ctx: LoopContext, pool: Any) -> str:
    try:
        origins = Counter(getattr(c, "origin", None) or "?" for c in pool)
    except TypeError:
        return "candidate pool ready"
    by = ", ".join(f"{n} from {o}" for o, n in origins.most_common())
    return f"pool of {sum(origins.values())} new candidates" + (f" ({by})" if by else "")


def _select(ctx: LoopContext, batch_id: int) -> str:
    with ctx.db.reading() as session:
        batch = session.get(BatchRecord, batch_id)
        if batch is None:
            return f"batch {batch_id}"
        items = list(batch.items)
    text = f"batch {batch_id} of {len(items)} candidates"
    scored = [i for i in items if i.acquisition_value is not None]
    if scored:
        top = max(scored, key=lambda i: i.acquisition_value)  # type: ignore[arg-type, return-value]
        text += f", best acquisition {fmt(top.acquisition_value)} (candidate {top.candidate_id}: {top.reason})"
    elif items:
        text += f" ({items[0].reason})"
    return text


def _gate(ctx: LoopContext, batch_id: int, decision: Any) -> str:
    policy = ctx.campaign.approval.policy
    if decision is None:
        return (f"batch {batch_id} needs a person's approval (policy {policy}): "
                f"`matloop approve {ctx.campaign.name} --by NAME` or the form of this run in the Prefect UI")
    verb = "approved" if decision.approve else "rejected"
    by = "automatically" if decision.approver.startswith("policy:") else f"by {decision.approver}"
    return f"batch {batch_id} {verb} {by} (policy {policy})"


def _decision(ctx: LoopContext, batch_id: int, status: Any) -> str:
    with ctx.db.reading() as session:
        batch = session.get(BatchRecord, batch_id)
        if batch is None:
            return f"batch {batch_id} {status}"
        dropped = [i.candidate_id for i in batch.items if i.dropped]
        text = f"batch {batch_id} {status} by {batch.approver}"
        note = batch.note
    if dropped:
        text += f", dropped candidates {dropped}"
    return text + (f" — {note}" if note else "")


def _dispatch(ctx: LoopContext, batch_id: int, submitted: Any) -> str:
    with ctx.db.reading() as session:
        adapters = Counter(session.scalars(
            select(JobRecord.adapter).join(BatchItemRecord, BatchItemRecord.id == JobRecord.batch_item_id)
            .where(BatchItemRecord.batch_id == batch_id)
        ))
    where = ", ".join(
        f"{n} to {name} ({getattr(ctx.campaign.adapters.get(name), 'type', '?')})" for name, n in adapters.items()
    )
    return f"{_plural(submitted, 'job')} submitted" + (f": {where}" if where else "") + f" (batch {batch_id})"


def _plural(n: int, word: str) -> str:
    return f"{n} {word}" if n == 1 else f"{n} {word}s"


def _wait(ctx: LoopContext, iteration_id: int | None, outcome: Any) -> str:
    """How many jobs are done, how they ended and why any failed: results come in while waiting (each poll syncs).

    A failure's reason is the job's error, or its measurement's (a lab answer that was not a valid value makes a
    failed measurement of a job the lab calls succeeded).
    """
    text = f"{outcome.done} of {_plural(outcome.total, 'job')} done after {_plural(outcome.polls, 'poll')}"
    if iteration_id is None:
        return text
    of_iteration = (
        select(JobRecord.id)
        .join(BatchItemRecord, BatchItemRecord.id == JobRecord.batch_item_id)
        .join(BatchRecord, BatchRecord.id == BatchItemRecord.batch_id)
        .where(BatchRecord.iteration_id == iteration_id)
    )
    with ctx.db.reading() as session:
        jobs = session.execute(select(JobRecord.status, JobRecord.error).where(JobRecord.id.in_(of_iteration))).all()
        failed_measurements = session.execute(
            select(MeasurementRecord.property, MeasurementRecord.error)
            .where(MeasurementRecord.job_id.in_(of_iteration), MeasurementRecord.failed.is_(True))
        ).all()
    statuses = Counter(status for status, _ in jobs)
    reasons = {error for status, error in jobs if status == "failed" and error}
    reasons |= {error for _, error in failed_measurements if error}
    parts = [f"{n} {status}" for status, n in sorted(statuses.items())]
    if failed_measurements:
        parts.append(f"{_plural(len(failed_measurements), 'failed measurement')}")
    if reasons:
        parts.append("failed because: " + "; ".join(sorted(r[:120] for r in reasons)))
    elif statuses.get("failed"):
        parts.append("no reason given")
    return text + (": " + ", ".join(parts) if parts else "")


def _complete(ctx: LoopContext, best: Any) -> str:
    prop = ctx.campaign.objectives[0].property
    return "iteration complete" + ("" if best is None else f"; best {prop} {with_units(best, units_of(ctx, prop))}")


def _final(ctx: LoopContext) -> str:
    from agent.loop.state import latest_recommendation, model_label

    with ctx.db.reading() as session:
        pick = latest_recommendation(session, ctx.campaign_id)
    if not pick:
        return "no model's pick (too few results for a model)"
    prop = ctx.campaign.objectives[0].property
    units = units_of(ctx, prop)
    return (f"model's pick ({model_label(pick)}): {pick.get('label') or pick.get('candidate')}, "
            f"predicted {with_units(pick.get('mean'), units)} ± {fmt(pick.get('std'))}, "
            f"measured {with_units(pick.get('measured'), units)}")


def step_line(ctx: LoopContext, name: str, number: int, args: tuple[Any, ...], result: Any) -> str | None:
    """The sentence for step ``name`` of iteration ``number`` that returned ``result`` (None: nothing to say)."""
    if name in QUIET_STEPS:
        return None
    if name == "sync":
        body = _sync(ctx, result)
        if body is None:
            return None
    elif name == "fit":
        body = _fit(ctx, result)
    elif name == "generate":
        body = _generate(ctx, result)
    elif name == "select":
        body = _select(ctx, result)
    elif name == "gate":
        body = _gate(ctx, args[1], result)
    elif name == "record_decision":
        body = _decision(ctx, args[1], result)
    elif name == "dispatch":
        body = _dispatch(ctx, args[1], result)
    elif name in ("wait", "drain"):
        body = _wait(ctx, args[1], result)
    elif name == "complete_iteration":
        body = _complete(ctx, result)
    elif name == "final_recommendation":
        body = _final(ctx)
    elif name == "stop":
        body = f"campaign stopped — {args[1]}"
    elif name == "submit_pending":
        if not result:
            return None
        body = f"{result} jobs an interrupted dispatch had left unsent are submitted"
    else:
        body = "done" if result is None else fmt(result)
    return f"{name} · iteration {number}: {body}"


def step_finished(ctx: LoopContext, name: str, number: int, args: tuple[Any, ...], result: Any) -> None:
    """After a step committed: its line in the run's log; after the decision (and at dispatch), the batch view."""
    try:
        line = step_line(ctx, name, number, args, result)
    except Exception as exc:  # noqa: BLE001 - a log line must not fail the step that already committed
        line = f"{name} · iteration {number}: done (its summary could not be composed: {type(exc).__name__})"
    if line is not None:
        run_logger().info(line)
    if name in ("record_decision", "dispatch"):  # dispatch too: a decision `matloop approve` stored while no run waited
        ArtifactPublisher().decided(ctx, args[1])
