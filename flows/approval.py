"""The approval pause, and sending a decision to a paused run (what ``matloop approve`` does).

The flow records in the database which flow run waits and on which Prefect
API, then pauses (in-process run: the process waits) or suspends (a run from a
deployment: no worker is held while a person takes hours or days).  A decision
is sent with ``resume_flow_run(id, run_input=...)``; when no run is waiting any
more (its process died), the decision is written to the database directly and
the next ``matloop run --resume`` dispatches it.
"""

from __future__ import annotations

from dataclasses import dataclass
from uuid import UUID

from sqlalchemy import select

from agent.loop.context import LoopContext
from agent.loop.gate import apply_decision, request_approval
from agent.policy.approval import Decision
from agent.store import Database, StoreError
from agent.store.campaigns import get_campaign
from agent.store.models import BatchRecord, EventRecord
from flows.approval_form import batch_form
from flows.events import emit_awaiting_approval
from flows.inputs import ApprovalInput, batch_approval_input

#: How long a paused run waits for a person before its pause times out (the campaign stays resumable).
APPROVAL_TIMEOUT_SECONDS = 7 * 24 * 3600
APPROVAL_POLL_SECONDS = 2


def approval_key(batch_id: int) -> str:
    return f"approve-batch-{batch_id}"


def _ui_url() -> str | None:
    """The Prefect UI's address, for absolute links in the form (``None``: links stay relative to the UI)."""
    from prefect.settings import get_current_settings

    try:
        url = get_current_settings().ui_url
    except Exception:  # noqa: BLE001 - links are a convenience
        return None
    return str(url) if url else None


def _current_api_url() -> str | None:
    from prefect.client.orchestration import get_client

    try:
        with get_client(sync_client=True) as client:
            return str(client.api_url)
    except Exception:  # noqa: BLE001 - only a hint for `matloop approve`
        return None


def ask_person_in_prefect(ctx: LoopContext, batch_id: int) -> Decision:
    """Wait in Prefect for a person's decision on ``batch_id`` (pause, or suspend when deployed).

    The form is built for this batch: its description shows the batch (ids, candidates, predictions, reasons,
    cost, budget left, links), and its "drop" choices are the batch's own candidate ids.  The hint with the exact
    command goes to the run's log at INFO, so it reaches the UI's log tab (``PREFECT_LOGGING_LEVEL``, see
    ``cli/running.py``); ``print`` would depend on ``log_prints`` and on the terminal.
    """
    from prefect import get_run_logger
    from prefect.flow_runs import pause_flow_run, suspend_flow_run
    from prefect.runtime import deployment, flow_run

    key = approval_key(batch_id)
    form = batch_form(ctx, batch_id, ui_url=_ui_url())
    wait_for = batch_approval_input(form.candidate_ids, form.markdown)
    request_approval(ctx.db, batch_id, flow_run_id=str(flow_run.id), approval_key=key, api_url=_current_api_url())
    emit_awaiting_approval(ctx, batch_id, str(flow_run.id))  # flows/events.py: for automations (notifications)
    get_run_logger().info(
        "batch %s waits for approval: `matloop approve %s --by NAME` (add `--drop ID` to leave a candidate out, "
        "or `--reject`), or press Resume on this flow run in the Prefect UI and answer its form (candidates %s)",
        batch_id, ctx.campaign.name, ", ".join(str(i) for i in form.candidate_ids),
    )
    if deployment.id:
        answer = suspend_flow_run(wait_for_input=wait_for, key=key, timeout=APPROVAL_TIMEOUT_SECONDS)
    else:
        answer = pause_flow_run(
            wait_for_input=wait_for, key=key, timeout=APPROVAL_TIMEOUT_SECONDS, poll_interval=APPROVAL_POLL_SECONDS
        )
    assert answer is not None
    return answer.to_decision()


@dataclass
class Waiting:
    """A batch waiting for a decision, and the flow run (and API) waiting with it."""

    batch_id: int
    flow_run_id: str | None
    api_url: str | None


def waiting_batch(db: Database, campaign: str) -> Waiting:
    """The campaign's batch awaiting a decision; a :class:`StoreError` when there is none."""
    with db.reading() as session:
        record = get_campaign(session, campaign)
        batch = session.scalar(
            select(BatchRecord).where(BatchRecord.campaign_id == record.id).order_by(BatchRecord.id.desc()).limit(1)
        )
        if batch is None or batch.status != "proposed":
            state = "no batch yet" if batch is None else f"its latest batch {batch.id} is {batch.status}"
            raise StoreError(f"campaign {campaign!r} has no batch waiting for approval ({state})")
        event = session.scalar(
            select(EventRecord)
            .where(EventRecord.campaign_id == record.id, EventRecord.kind == "approval_requested")
            .order_by(EventRecord.id.desc())
            .limit(1)
        )
        payload = (event.payload or {}) if event is not None and event.payload.get("batch") == batch.id else {}
        return Waiting(batch_id=batch.id, flow_run_id=payload.get("flow_run_id"), api_url=payload.get("api_url"))


def _paused_run_id(flow_run_id: str | None, api_url: str | None) -> UUID | None:
    """The flow run if it is reachable and paused right now, else ``None``."""
    if not flow_run_id:
        return None
    from prefect.client.orchestration import get_client
    from prefect.settings import PREFECT_API_URL, temporary_settings

    def read() -> UUID | None:
        with get_client(sync_client=True) as client:
            run = client.read_flow_run(UUID(flow_run_id))
            return run.id if run.state is not None and run.state.is_paused() else None

    try:
        if api_url and not PREFECT_API_URL.value():
            with temporary_settings(updates={PREFECT_API_URL: api_url}):
                return read()
        return read()
    except Exception:  # noqa: BLE001 - unreachable API or unknown run: the database path answers
        return None


def send_decision(db: Database, campaign: str, answer: ApprovalInput) -> str:
    """Deliver a decision: resume the waiting flow run with it, or store it directly when none waits.

    Returns a sentence saying which happened.
    """
    from prefect.flow_runs import resume_flow_run
    from prefect.settings import PREFECT_API_URL, temporary_settings

    waiting = waiting_batch(db, campaign)
    _refuse_stale(db, campaign, waiting)
    decision = answer.to_decision()
    _check_drop(db, waiting.batch_id, decision)
    run_id = _paused_run_id(waiting.flow_run_id, waiting.api_url)
    if run_id is not None:
        payload = answer.model_dump(include={"approver", "decision", "drop", "note"})
        if waiting.api_url and not PREFECT_API_URL.value():
            with temporary_settings(updates={PREFECT_API_URL: waiting.api_url}):
                resume_flow_run(run_id, run_input=payload)
        else:
            resume_flow_run(run_id, run_input=payload)
        return f"sent to the waiting flow run {run_id}; it resumes with batch {waiting.batch_id}"
    status = apply_decision(db, waiting.batch_id, decision)
    return (
        f"batch {waiting.batch_id} is {status} (stored; no flow run is waiting — "
        f"`matloop run --resume` continues the campaign)"
    )


def _refuse_stale(db: Database, campaign: str, waiting: Waiting) -> None:
    """Refuse a decision for a run that no longer owns the campaign: it would be discarded without a word.

    The batch names the flow run that asked; the campaign's lease names the run that owns it now.  When
    they differ (another run took the campaign after the asking run's process ended), resuming the asking
    run would only make it stop, and storing the decision would pre-empt the owner's own question.
    """
    from agent.store.campaigns import lease_holder
    from flows.runs import prefect_run_is_over

    with db.reading() as session:
        record = get_campaign(session, campaign)
        holder = lease_holder(record, run_is_over=prefect_run_is_over(db))
    if holder is None or (holder.flow_run_id is not None and holder.flow_run_id == waiting.flow_run_id):
        return
    asked = f"flow run {waiting.flow_run_id}" if waiting.flow_run_id else "an earlier run"
    raise StoreError(
        f"batch {waiting.batch_id} of campaign {campaign!r} was proposed to {asked}, which no longer owns the "
        f"campaign: it is run by {holder.describe()} now; nothing was sent (decide when that run asks, or stop it)"
    )


def _check_drop(db: Database, batch_id: int, decision: Decision) -> None:
    with db.reading() as session:
        batch = session.get(BatchRecord, batch_id)
        assert batch is not None
        ids = {item.candidate_id for item in batch.items}
    unknown = sorted(set(decision.drop) - ids)
    if unknown:
        raise StoreError(f"candidates {unknown} are not in batch {batch_id}; its candidates are {sorted(ids)}")
