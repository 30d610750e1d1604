"""``matloop approve`` when no flow run waits: the decision is stored directly, for the next ``run --resume``."""

from __future__ import annotations

from typing import Any

import pytest
from typer.testing import CliRunner

from agent.adapters import open_adapters
from agent.loop import LoopContext, fit, generate, open_iteration, select_batch_step
from agent.store import Database
from agent.store.campaigns import register_campaign
from agent.store.migrate import upgrade
from agent.store.models import BatchRecord
from cli import app
from matloop.settings import reload_settings
from tests.loop.conftest import branin_spec


def test_approve_without_a_waiting_run_stores_the_decision(
    sqlite_url: str, simlab: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("MATLOOP_DATABASE_URL", sqlite_url)
    reload_settings()
    spec = branin_spec(simlab.url, simlab.token, approval={"policy": "manual"})
    upgrade(sqlite_url)
    db = Database(sqlite_url)
    with db.transaction() as session:
        campaign_id = register_campaign(session, spec).id
    with open_adapters(spec) as adapters:
        ctx = LoopContext(db=db, campaign=spec, campaign_id=campaign_id, adapters=adapters)
        iteration = open_iteration(ctx)
        fitted = fit(ctx, iteration.id)
        batch_id = select_batch_step(ctx, iteration.id, fitted, generate(ctx, iteration.id, fitted))
    with db.reading() as session:
        ids = [item.candidate_id for item in session.get(BatchRecord, batch_id).items]  # type: ignore[union-attr]

    runner = CliRunner()
    bad = runner.invoke(app, ["approve", spec.name, "--by", "ada", "--drop", "999999"])
    assert bad.exit_code == 1 and "not in batch" in bad.output
    both = runner.invoke(app, ["approve", spec.name, "--by", "ada", "--drop", str(ids[0]), "--reject"])
    assert both.exit_code == 1 and "not both" in both.output
    ok = runner.invoke(app, ["approve", spec.name, "--by", "ada", "--drop", str(ids[0]), "--note", "enough"])
    assert ok.exit_code == 0, ok.output
    assert "stored; no flow run is waiting" in ok.output
    with db.reading() as session:
        batch = session.get(BatchRecord, batch_id)
        assert batch is not None and batch.status == "edited" and batch.approver == "ada" and batch.note == "enough"
    again = runner.invoke(app, ["approve", spec.name, "--by", "bo"])
    assert again.exit_code == 1 and "no batch waiting for approval" in again.output
    unknown = runner.invoke(app, ["approve", "nope", "--by", "bo"])
    assert unknown.exit_code == 1 and "no campaign named 'nope'" in unknown.output
    db.dispose()
