"""The campaign flow on Prefect: end to end on PostgreSQL, manual approval through the Prefect API."""

from __future__ import annotations

import threading
from pathlib import Path
from typing import Any

import pandas as pd
from sqlalchemy import select

from agent.report import write_report
from agent.store import Database
from agent.store.models import BatchRecord, EventRecord, JobRecord, MeasurementRecord
from flows.approval import send_decision, waiting_batch
from flows.campaign import campaign_flow
from flows.inputs import ApprovalInput, CampaignSource
from tests.loop.conftest import branin_spec
from tests.support.processes import wait_for


def test_campaign_end_to_end_on_postgres(prefect_api: str, pg_url: str, simlab: Any, tmp_path: Path) -> None:
    spec = branin_spec(simlab.url, simlab.token, name="branin-flow")
    result = campaign_flow(CampaignSource(spec=spec), database_url=pg_url, resume=False,
                           poll_initial_seconds=0.02, poll_max_seconds=0.2)
    assert result["status"] == "stopped" and result["stop_reason"] == "budget spent: 12 of 12 experiments"
    assert result["experiments"] == 12 and result["iterations"] == 3 and result["best"] is not None
    db = Database(pg_url)
    with db.reading() as session:
        jobs = list(session.scalars(select(JobRecord)))
        assert len(jobs) == 12 and {j.status for j in jobs} == {"succeeded"}
        assert len(list(session.scalars(select(MeasurementRecord)))) == 12
    report = write_report(db, spec.name, tmp_path / "report", reference=0.397887, reference_label="Branin minimum")
    db.dispose()
    assert report.plot.stat().st_size > 10_000 and report.experiments == 12 and report.iterations == 3
    history = pd.read_csv(report.history)
    assert len(history) == 12 and history["y"].notna().all() and history["reason"].str.len().gt(0).all()
    assert "budget spent: 12 of 12 experiments" in report.summary.read_text()
    experiments = simlab.lab.list(limit=1000)
    assert {e.idempotency_key for e in experiments} == {j.idempotency_key for j in jobs}
    assert {e.executions for e in experiments} == {1}

    from prefect.client.orchestration import get_client
    from prefect.client.schemas.filters import ArtifactFilter, ArtifactFilterKey

    with get_client(sync_client=True) as client:
        keys = {a.key for a in client.read_artifacts(artifact_filter=ArtifactFilter(
            key=ArtifactFilterKey(any_=["branin-flow-batch", "branin-flow-model", "branin-flow-budget"])))}
    assert {"branin-flow-batch", "branin-flow-model", "branin-flow-budget"} <= keys


def test_manual_approval_waits_and_resumes_through_the_prefect_api(
    prefect_api: str, sqlite_url: str, simlab: Any
) -> None:
    spec = branin_spec(simlab.url, simlab.token, name="branin-manual", budget={"max_experiments": 4, "max_iterations": 1},
                       approval={"policy": "manual"})
    outcome: dict[str, Any] = {}

    def run() -> None:
        try:
            outcome["result"] = campaign_flow(CampaignSource(spec=spec), database_url=sqlite_url, resume=False,
                                              poll_initial_seconds=0.02, poll_max_seconds=0.2)
        except BaseException as exc:  # noqa: BLE001 - reported by the assertion below
            outcome["error"] = exc

    thread = threading.Thread(target=run, daemon=True)
    thread.start()
    db = Database(sqlite_url)

    def paused() -> Any:
        try:
            waiting = waiting_batch(db, spec.name)
        except Exception:  # noqa: BLE001 - not there yet
            return None
        return waiting if waiting.flow_run_id else None

    waiting = wait_for(paused, 120, "the flow to pause for approval")
    from uuid import UUID

    from prefect.client.orchestration import get_client

    def run_is_paused() -> bool:
        with get_client(sync_client=True) as client:
            state = client.read_flow_run(UUID(waiting.flow_run_id)).state
            return bool(state and state.is_paused())

    wait_for(run_is_paused, 60, "the flow run to be paused in Prefect")
    with db.reading() as session:
        batch = session.get(BatchRecord, waiting.batch_id)
        assert batch is not None and batch.status == "proposed" and batch.approver is None
        dropped = batch.items[0].candidate_id
    assert not thread.join(timeout=1) and thread.is_alive()  # it waits for a person

    message = send_decision(db, spec.name, ApprovalInput(approver="ada", drop=[dropped], note="one is enough"))
    assert "sent to the waiting flow run" in message
    thread.join(timeout=180)
    assert not thread.is_alive() and "error" not in outcome, outcome.get("error")
    with db.reading() as session:
        batch = session.get(BatchRecord, waiting.batch_id)
        assert batch is not None
        assert batch.status == "dispatched" and batch.approver == "ada" and batch.decided_at is not None
        assert batch.note == "one is enough" and [i.dropped for i in batch.items].count(True) == 1
        decided = session.scalar(select(EventRecord).where(EventRecord.kind == "batch_decided"))
        assert decided is not None and decided.actor == "ada"
        assert len(list(session.scalars(select(JobRecord)))) == 3
    db.dispose()
