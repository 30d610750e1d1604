"""Revision 0003 gives a campaign stored before the ledger its past charges, with the ledger's refund rules.

The rows are written with plain SQL at revision 0002 (the ORM models are the head's, which may have more
columns), then the database is upgraded, on both backends.
"""

from __future__ import annotations

import json
from datetime import UTC, datetime

from sqlalchemy import text

from agent.loop.state import progress
from agent.store import Database
from agent.store.campaigns import load_spec
from agent.store.ledger import ledger_totals
from agent.store.migrate import downgrade, upgrade
from agent.store.models import CampaignRecord
from tests.loop.conftest import branin_spec

#: (candidate, status, cost): a success, a failure (kept: on_failure defaults to keep), a cancelled job
#: (refunded), a lost job and its re-run (the lost one refunded), and a job lost for good (a failure: kept).
JOBS = [(1, "succeeded", 2.0), (2, "failed", 2.0), (3, "cancelled", 2.0), (4, "lost", 3.0), (4, "succeeded", 3.0),
        (5, "lost", 1.0)]


def _old_campaign(url: str) -> None:
    spec = branin_spec(name="before-the-ledger")
    stored = spec.model_dump(mode="json")
    stored["budget"] = {"max_experiments": 12}  # as written before the ledger: no currency, no on_failure
    db = Database(url)
    now = datetime(2026, 12, 1, tzinfo=UTC)
    with db.engine.begin() as conn:
        def insert(table: str, **values: object) -> int:
            cols = ", ".join(values)
            marks = ", ".join(f":{k}" for k in values)
            return conn.execute(text(f"INSERT INTO {table} ({cols}) VALUES ({marks}) RETURNING id"), values).scalar_one()

        cid = insert("campaign", name=spec.name, spec=json.dumps(stored), spec_hash="0" * 64, status="stopped",
                     created_at=now, updated_at=now)
        it = insert("iteration", campaign_id=cid, number=1, step="complete", info="{}", started_at=now)
        batch = insert("batch", campaign_id=cid, iteration_id=it, status="complete", policy="auto", created_at=now)
        items: dict[int, int] = {}
        for n, (cand, status, cost) in enumerate(JOBS):
            if cand not in items:
                cand_id = insert("candidate", campaign_id=cid, fingerprint=f"fp-{cand}", kind="point",
                                 representation="{}", origin="test", created_at=now)
                items[cand] = insert("batch_item", batch_id=batch, candidate_id=cand_id, rank=cand,
                                     predictions="{}", reason="", dropped=False)
            cand_id = conn.execute(text("SELECT candidate_id FROM batch_item WHERE id = :i"),
                                   {"i": items[cand]}).scalar_one()
            insert("job", campaign_id=cid, candidate_id=cand_id, batch_item_id=items[cand], adapter="lab",
                   fidelity="branin", idempotency_key=f"key-{n}", status=status, attempts=1, cost=cost,
                   created_at=now, updated_at=now, finished_at=now)
    db.dispose()


def test_upgrading_backfills_each_past_job_once(db_url: str) -> None:
    upgrade(db_url, "0002")
    _old_campaign(db_url)
    upgrade(db_url)
    db = Database(db_url)
    with db.reading() as session:
        record = session.query(CampaignRecord).one()
        totals = ledger_totals(session, record.id)
        spec = load_spec(record)
        snapshot = progress(session, spec, record.id)
        kinds = session.execute(text(
            "SELECT j.idempotency_key, l.kind, l.amount, l.iteration_id IS NOT NULL FROM ledger_entry l "
            "JOIN job j ON j.id = l.job_id ORDER BY j.id, l.kind")).all()
    assert spec.budget.currency == "cost units" and spec.budget.on_failure == "keep"
    charges = [(k, a) for k, kind, a, _ in kinds if kind == "charge"]
    refunds = sorted((k, a) for k, kind, a, _ in kinds if kind == "refund")
    assert charges == [(f"key-{n}", cost) for n, (_, _, cost) in enumerate(JOBS)]
    assert refunds == [("key-2", -2.0), ("key-3", -3.0)]  # the cancelled job, and the lost job that was re-run
    assert all(has_iteration for *_, has_iteration in kinds)
    assert totals.charged == 13.0 and totals.refunded == 5.0 and snapshot.cost == 8.0  # was 11: the lost one twice
    downgrade(db_url, "0002")  # and back: the table goes, the jobs stay
    with db.engine.connect() as conn:
        assert conn.execute(text("SELECT count(*) FROM job")).scalar_one() == len(JOBS)
    db.dispose()
