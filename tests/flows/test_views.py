"""The words and tables the UI shows, composed from a hand-made campaign in a real store (both backends).

The campaign (tests/cli/conftest.py): an OER campaign whose iteration 1 batch of three was approved by alice and
measured (one experiment failed: "synthesis failed: precursor clogged"), and whose iteration 2 batch is proposed.
"""

from __future__ import annotations

from sqlalchemy import select

from agent.loop.context import LoopContext
from agent.loop.wait import WaitOutcome
from agent.spec import parse_campaign
from agent.store import Database
from agent.store.models import BatchRecord, CampaignRecord, IterationRecord, ModelVersionRecord
from cli.campaign_files import template_text
from flows.artifacts import batch_table, metrics_markdown, units_of
from flows.events import awaiting_approval_event
from flows.logs import step_line
from tests.cli.conftest import build_hand_made_campaign


def _context(url: str) -> tuple[LoopContext, dict[int, int], dict[int, int]]:
    """The campaign's loop context, its iteration ids and batch ids by iteration number."""
    build_hand_made_campaign(url)
    db = Database(url)
    with db.reading() as session:
        campaign_id = session.scalar(select(CampaignRecord.id).where(CampaignRecord.name == "oer-demo"))
        iterations = {it.number: it.id for it in session.scalars(select(IterationRecord))}
        batches = {number: session.scalar(select(BatchRecord.id).where(BatchRecord.iteration_id == it_id))
                   for number, it_id in iterations.items()}
    assert campaign_id is not None
    return LoopContext(db=db, campaign=parse_campaign(template_text("oer")), campaign_id=campaign_id,
                       adapters={}), iterations, batches  # type: ignore[return-value]


def test_the_wait_line_says_how_jobs_ended_and_why_one_failed(migrated_db_url: str) -> None:
    ctx, iterations, _ = _context(migrated_db_url)
    line = step_line(ctx, "wait", 1, (ctx, iterations[1], 1.0), WaitOutcome(done=3, total=3, polls=2))
    assert line == ("wait · iteration 1: 3 of 3 jobs done after 2 polls: 1 failed, 2 succeeded, 1 failed measurement, "
                    "failed because: synthesis failed: precursor clogged")
    ctx.db.dispose()


def test_metrics_in_words_with_units_and_no_column_number(migrated_db_url: str) -> None:
    ctx, iterations, _ = _context(migrated_db_url)
    with ctx.db.reading() as session:
        version = session.scalar(select(ModelVersionRecord.id).where(ModelVersionRecord.iteration_id == iterations[1]))
    text = metrics_markdown(ctx, version)
    assert "**overpotential** (V)" in text
    assert "- cross-validated RMSE 0.02 V (lower is better)" in text
    assert "| 0 |" not in text and "\n0" not in text and "output" not in text
    ctx.db.dispose()


def test_batch_table_before_and_after_the_decision(migrated_db_url: str) -> None:
    ctx, _, batches = _context(migrated_db_url)
    rows, title = batch_table(ctx, batches[2])
    assert "proposed" in title and "matloop approve oer-demo --by NAME" in title
    assert list(rows[0]) == ["rank", "candidate id", "predicted overpotential (V)", "± (V)",
                             "acquisition", "reason", "candidate"]
    assert rows[0]["reason"] == "explore: high std" and rows[0]["predicted overpotential (V)"] == "0.4"

    rows, title = batch_table(ctx, batches[1])
    assert title == f"batch {batches[1]} of oer-demo: approved by alice — looks fine (dispatched)"
    assert [r["kept"] for r in rows] == ["yes", "yes", "yes"]
    ctx.db.dispose()


def test_units_from_the_lab_when_the_campaign_names_none(migrated_db_url: str) -> None:
    ctx, _, _ = _context(migrated_db_url)
    bare = ctx.campaign.model_copy(update={"objectives": [
        o.model_copy(update={"units": None}) for o in ctx.campaign.objectives]})
    assert units_of(LoopContext(db=ctx.db, campaign=bare, campaign_id=ctx.campaign_id, adapters={}),
                    "overpotential") == "V"  # as the lab reported it with its measurements
    assert units_of(ctx, "not_measured") is None
    ctx.db.dispose()


def test_the_awaiting_approval_event_names_the_campaign_and_the_batch(migrated_db_url: str) -> None:
    ctx, _, batches = _context(migrated_db_url)
    event = awaiting_approval_event(ctx, batches[2], "run-id")
    assert event["event"] == "matloop.batch.awaiting-approval"
    assert event["resource"]["prefect.resource.id"] == "matloop.campaign.oer-demo"
    assert event["payload"] == {"campaign": "oer-demo", "batch_id": batches[2], "size": 1, "cost": 1.0,
                                "flow_run_id": "run-id", "approve": "matloop approve oer-demo --by NAME"}
    assert event["related"] == [{"prefect.resource.id": "prefect.flow-run.run-id", "prefect.resource.role": "flow-run"}]
    ctx.db.dispose()
