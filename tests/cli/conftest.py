"""A hand-made campaign in the store, built through the models, for the history commands."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest
from typer.testing import CliRunner

from agent.spec import parse_campaign
from agent.store import Database
from agent.store.campaigns import register_campaign
from agent.store.models import (
    BatchItemRecord,
    BatchRecord,
    CandidateRecord,
    IterationRecord,
    JobRecord,
    MeasurementRecord,
    ModelVersionRecord,
)
from cli import app
from cli.campaign_files import template_text
from matloop.types import Candidate, make_idempotency_key

POINTS = [
    {"ni_load": 0.5, "fe_load": 0.5, "co_load": 0.0, "mn_load": 0.0, "ce_load": 0.0, "la_load": 0.0},
    {"ni_load": 0.2, "fe_load": 0.2, "co_load": 0.6, "mn_load": 0.0, "ce_load": 0.0, "la_load": 0.0},
    {"ni_load": 0.0, "fe_load": 0.0, "co_load": 0.0, "mn_load": 0.0, "ce_load": 0.3, "la_load": 0.7},
]


def build_hand_made_campaign(url: str) -> None:
    """Two iterations: an approved batch of three (one failed experiment) and an unmeasured batch of one."""
    db = Database(url)
    campaign = parse_campaign(template_text("oer"))
    with db.transaction() as s:
        rec = register_campaign(s, campaign)
        for number, points, approver in [(1, POINTS, "alice"), (2, POINTS[:1], None)]:
            it = IterationRecord(campaign_id=rec.id, number=number, step="dispatched")
            s.add(it)
            s.flush()
            mv = ModelVersionRecord(campaign_id=rec.id, iteration_id=it.id, kind="gp", objective="overpotential",
                                    n_train=8 * number, training_hash="h" * 64, metrics={"0": {"rmse": 0.02}})
            s.add(mv)
            s.flush()
            it.model_version_id = mv.id
            batch = BatchRecord(campaign_id=rec.id, iteration_id=it.id, status="dispatched" if approver else "proposed",
                                approver=approver, decided_at=datetime.now(UTC) if approver else None,
                                note="looks fine" if approver else None)
            s.add(batch)
            s.flush()
            for rank, p in enumerate(points):
                cand = Candidate.point(p, origin="grid")
                crec = s.query(CandidateRecord).filter_by(campaign_id=rec.id, fingerprint=cand.fingerprint).first()
                if crec is None:
                    crec = CandidateRecord(campaign_id=rec.id, fingerprint=cand.fingerprint, kind="point",
                                           representation=cand.model_dump(mode="json"), origin="grid")
                    s.add(crec)
                    s.flush()
                item = BatchItemRecord(batch_id=batch.id, candidate_id=crec.id, rank=rank, acquisition_value=-1.5 + rank,
                                       posterior_mean=0.4, posterior_std=0.05, reason="explore: high std")
                s.add(item)
                s.flush()
                if not approver:
                    continue
                key = make_idempotency_key(campaign.name, cand.fingerprint, "oer_plate_3496", 0)
                failed = rank == 2
                job = JobRecord(campaign_id=rec.id, candidate_id=crec.id, batch_item_id=item.id, adapter="lab",
                                fidelity="oer_plate_3496", idempotency_key=key, external_id=f"exp-{rank}",
                                status="failed" if failed else "succeeded", attempts=1, cost=1.0)
                s.add(job)
                s.flush()
                s.add(MeasurementRecord(campaign_id=rec.id, candidate_id=crec.id, job_id=job.id,
                                        property="overpotential", value=None if failed else 0.35 + 0.01 * rank,
                                        std=None if failed else 0.005, units="V", fidelity="oer_plate_3496",
                                        failed=failed, error="synthesis failed: precursor clogged" if failed else None))
    db.dispose()


@pytest.fixture
def cli(monkeypatch: pytest.MonkeyPatch):
    """Run ``matloop`` in-process against a given database URL."""
    runner = CliRunner()
    monkeypatch.setenv("COLUMNS", "300")  # a wide terminal, so tables are not folded into unreadable slivers

    def invoke(url: str | None, *args: str):
        if url is not None:
            monkeypatch.setenv("MATLOOP_DATABASE_URL", url)
        from matloop.settings import reload_settings

        reload_settings()
        return runner.invoke(app, list(args), catch_exceptions=False)

    return invoke
