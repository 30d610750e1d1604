"""``matloop pending`` on the hand-made campaign: its batch 2 waits once a run has asked a person about it."""

from __future__ import annotations

import json

from sqlalchemy import select

from agent.loop.gate import request_approval
from agent.store import Database
from agent.store.models import BatchRecord
from tests.cli.conftest import build_hand_made_campaign

FLOW_RUN = "6f1c1a52-0a7e-4d55-9d5e-2b8f3f0c9a11"


def _ask_about_proposed_batch(url: str) -> int:
    db = Database(url)
    with db.reading() as session:
        batch_id = session.scalar(select(BatchRecord.id).where(BatchRecord.status == "proposed"))
    assert batch_id is not None
    request_approval(db, batch_id, flow_run_id=FLOW_RUN, approval_key=f"approve-batch-{batch_id}")
    db.dispose()
    return batch_id


def test_pending_lists_the_waiting_batch_with_how_to_approve(migrated_db_url: str, cli) -> None:
    build_hand_made_campaign(migrated_db_url)
    result = cli(migrated_db_url, "pending")
    assert result.exit_code == 0, result.output
    assert "no batch waits for a decision" in result.stdout  # proposed, but nobody was asked yet

    batch_id = _ask_about_proposed_batch(migrated_db_url)
    result = cli(migrated_db_url, "pending", "--format", "json")
    assert result.exit_code == 0, result.output
    records = json.loads(result.stdout)
    assert len(records) == 1
    row = records[0]
    assert row["campaign"] == "oer-demo" and row["batch"] == batch_id and row["size"] == 1
    assert row["cost"] == 1.0 and row["flow_run_id"] == FLOW_RUN
    assert row["approve"] == "matloop approve oer-demo --by NAME" and row["waiting_since"].startswith("20")

    result = cli(migrated_db_url, "pending")
    assert result.exit_code == 0, result.output
    assert "oer-demo" in result.stdout and "matloop approve oer-demo --by NAME" in result.stdout
    assert str(batch_id) in result.stdout


def test_a_decided_batch_is_no_longer_pending(sqlite_url: str, cli) -> None:
    from agent.store.migrate import upgrade

    upgrade(sqlite_url)
    build_hand_made_campaign(sqlite_url)
    _ask_about_proposed_batch(sqlite_url)
    result = cli(sqlite_url, "approve", "oer-demo", "--by", "ada")
    assert result.exit_code == 0, result.output
    result = cli(sqlite_url, "pending", "--format", "json")
    assert result.exit_code == 0, result.output
    assert json.loads(result.stdout) == []
