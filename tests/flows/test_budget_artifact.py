"""The cockpit's budget artifact says what the ledger spent, by fidelity and adapter, in the campaign's currency."""

from __future__ import annotations

from sqlalchemy import select

from agent.loop import LoopContext
from agent.store import Database
from agent.store.models import CampaignRecord
from flows.artifacts import budget_fraction
from tests.cli.test_budget_cli import _campaign_with_spend, _spec


def test_the_budget_artifact_shows_the_ledger(migrated_db_url: str) -> None:
    _campaign_with_spend(migrated_db_url)  # 9 charged on two fidelities / adapters, 4 refunded; max_cost 20
    db = Database(migrated_db_url)
    with db.reading() as session:
        campaign_id = session.scalar(select(CampaignRecord.id))
    fraction, text = budget_fraction(LoopContext(db=db, campaign=_spec(), campaign_id=campaign_id, adapters={}))
    db.dispose()
    assert fraction == 5.0 / 20.0
    assert "cost 5/20 core-hours" in text
    assert text.endswith("; ledger: 5 core-hours spent after 4 refunded "
                         "(fidelity / adapter: coarse / mlip 1, fine / dft 4)")
