"""One live run per campaign, from the CLI and the flow: refusals in one sentence, a finished campaign says how
to extend it, a decision sent to a run that no longer owns the campaign is refused, runs are named and tagged."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from typer.testing import CliRunner

from agent.adapters import open_adapters
from agent.loop import LoopContext, fit, generate, open_iteration, select_batch_step
from agent.loop.gate import request_approval
from agent.spec import dump_campaign
from agent.store import Database, StoreError
from agent.store.campaigns import LeaseOwner, get_campaign, register_campaign
from agent.store.errors import LeaseHeld
from agent.store.migrate import upgrade
from agent.store.models import BatchRecord
from cli import app
from flows.approval import send_decision
from flows.campaign import campaign_flow
from flows.inputs import ApprovalInput, CampaignSource
from matloop.settings import reload_settings
from tests.loop.conftest import branin_spec


def _take_lease(db: Database, name: str, owner: LeaseOwner) -> None:
    """Another live run holds the campaign (a process on another host: nothing here can tell it is dead)."""
    with db.transaction() as session:
        record = get_campaign(session, name)
        record.lock_owner = owner.encode()
        record.lock_expires_at = datetime.now(UTC) + timedelta(minutes=5)


def _one_sentence(output: str) -> str:
    assert "Traceback" not in output and "UniqueViolation" not in output, output
    lines = [line for line in output.strip().splitlines() if line.strip()]
    return " ".join(line.strip() for line in lines)


def test_a_second_run_of_a_live_campaign_is_refused_by_the_cli_in_one_sentence(
    prefect_api: str, sqlite_url: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("MATLOOP_DATABASE_URL", sqlite_url)
    monkeypatch.setenv("COLUMNS", "400")  # one sentence on one line
    reload_settings()
    spec = branin_spec(name="branin-busy")
    upgrade(sqlite_url)
    db = Database(sqlite_url)
    with db.transaction() as session:
        register_campaign(session, spec)
    other = str(uuid.uuid4())
    _take_lease(db, spec.name, LeaseOwner("labhost", 4242, other, datetime(2026, 12, 1, 9, 30, tzinfo=UTC)))
    path = tmp_path / "campaign.yaml"
    path.write_text(dump_campaign(spec))

    for args in (["run", str(path), "--resume"], ["run", str(path)]):
        result = CliRunner().invoke(app, args)
        assert result.exit_code == 1, result.output
        text = _one_sentence(result.output)
        assert f"campaign 'branin-busy' is being run by flow run {other} on host labhost (pid 4242) since " \
               "2026-12-01 09:30:00 UTC" in text, text
        assert text.endswith("wait for it, or stop it first")
    # the flow (a run from the UI, or a CLI run that raced past the early check) refuses the same way:
    # Failed with the sentence as its message, the refusal itself for `state.result()` to raise
    state = campaign_flow(CampaignSource(path=str(path)), database_url=sqlite_url, return_state=True)
    assert state.is_failed() and (state.message or "").startswith(
        f"campaign 'branin-busy' is being run by flow run {other} on host labhost"), state.message
    with pytest.raises(LeaseHeld):
        state.result()
    with db.reading() as session:  # nothing was touched: still the other run's
        assert LeaseOwner.parse(get_campaign(session, spec.name).lock_owner or "").flow_run_id == other
    db.dispose()


def test_a_finished_campaign_is_refused_by_the_flow_and_the_cli_then_extended(
    prefect_api: str, sqlite_url: str, simlab: Any, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from prefect.client.orchestration import get_client

    spec = branin_spec(simlab.url, simlab.token, name="branin-finished", budget={"max_experiments": 4})
    first = campaign_flow(CampaignSource(spec=spec), database_url=sqlite_url, resume=False,
                          poll_initial_seconds=0.02, poll_max_seconds=0.2, return_state=True)
    assert first.result()["status"] == "stopped"
    with get_client(sync_client=True) as client:  # named and tagged after the campaign
        run = client.read_flow_run(first.state_details.flow_run_id)
    assert run.name == "campaign-branin-finished" and "campaign:branin-finished" in run.tags

    again = campaign_flow(CampaignSource(spec=spec), database_url=sqlite_url, resume=True, return_state=True)
    assert again.is_failed()  # not a silent "Completed"
    assert "campaign 'branin-finished' is finished (budget spent: 4 of 4 experiments); to go on, raise its " \
           "`budget:`" in (again.message or ""), again.message

    monkeypatch.setenv("MATLOOP_DATABASE_URL", sqlite_url)
    monkeypatch.setenv("COLUMNS", "400")  # one sentence on one line
    reload_settings()
    path = tmp_path / "campaign.yaml"
    path.write_text(dump_campaign(spec))
    refused = CliRunner().invoke(app, ["run", str(path), "--resume"])
    assert refused.exit_code == 1
    assert _one_sentence(refused.output) == (
        "error: campaign 'branin-finished' is finished (budget spent: 4 of 4 experiments); to go on, raise its "
        f"`budget:` (in the campaign file or the inline spec) and continue it with `matloop run {path} --resume`")

    bigger = spec.model_copy(update={"budget": spec.budget.model_copy(update={"max_experiments": 8})})
    extended = campaign_flow(CampaignSource(spec=bigger), database_url=sqlite_url, resume=True,
                             poll_initial_seconds=0.02, poll_max_seconds=0.2)
    assert extended["status"] == "stopped" and extended["experiments"] == 8
    assert extended["stop_reason"] == "budget spent: 8 of 8 experiments"


def test_a_decision_for_a_run_that_no_longer_owns_the_campaign_is_refused(
    prefect_api: str, sqlite_url: str, simlab: Any
) -> None:
    spec = branin_spec(simlab.url, simlab.token, name="branin-stale", approval={"policy": "manual"})
    upgrade(sqlite_url)
    db = Database(sqlite_url)
    with db.transaction() as session:
        campaign_id = register_campaign(session, spec).id
    with open_adapters(spec) as adapters:
        ctx = LoopContext(db=db, campaign=spec, campaign_id=campaign_id, adapters=adapters)
        iteration = open_iteration(ctx)
        fitted = fit(ctx, iteration.id)
        batch_id = select_batch_step(ctx, iteration.id, fitted, generate(ctx, iteration.id, fitted))
    stale, owner = str(uuid.uuid4()), str(uuid.uuid4())
    request_approval(db, batch_id, flow_run_id=stale, approval_key="k", api_url=prefect_api)
    _take_lease(db, spec.name, LeaseOwner("labhost", 4242, owner))

    with pytest.raises(StoreError) as refused:
        send_decision(db, spec.name, ApprovalInput(approver="ada"))
    assert str(refused.value) == (
        f"batch {batch_id} of campaign 'branin-stale' was proposed to flow run {stale}, which no longer owns the "
        f"campaign: it is run by flow run {owner} on host labhost (pid 4242) now; nothing was sent (decide when "
        "that run asks, or stop it)")
    with db.reading() as session:
        batch = session.get(BatchRecord, batch_id)
        assert batch is not None and batch.status == "proposed" and batch.approver is None  # not decided

    # the asking run itself, suspended (it holds the lease without a process): its decision goes through
    _take_lease(db, spec.name, LeaseOwner("labhost", None, stale))
    message = send_decision(db, spec.name, ApprovalInput(approver="ada"))
    assert f"batch {batch_id} is approved" in message
    db.dispose()
