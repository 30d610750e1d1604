"""``progress()`` from count and aggregate queries gives what loading every observation gave, on both backends."""

from __future__ import annotations

import math
import random

import pytest

from agent.loop.state import best_value, observations, progress, target_met
from agent.store import Database
from agent.store.campaigns import register_campaign
from agent.store.models import CandidateRecord, IterationRecord, JobRecord, MeasurementRecord
from matloop.types import Candidate
from tests.loop.conftest import branin_spec

GOALS = [
    [{"property": "y", "goal": "minimize"}],
    [{"property": "y", "goal": "maximize"}],
    [{"property": "y", "goal": "target", "target": 0.5, "tolerance": 0.05},
     {"property": "z", "goal": "target", "target": -0.2, "tolerance": 0.1}],
]


def _fill(db: Database, spec, seed: int) -> int:
    """Random measurements: failed ones, re-measured candidates, an unmodelled property, one cancelled job."""
    rng = random.Random(seed)
    with db.transaction() as s:
        rec = register_campaign(s, spec)
        for number in (1, 2):
            s.add(IterationRecord(campaign_id=rec.id, number=number, step="complete", info={"best": 0.1 * number}))
        for i in range(60):
            cand = Candidate.point({"x1": float(i), "x2": 1.0})
            crec = CandidateRecord(campaign_id=rec.id, fingerprint=cand.fingerprint, kind="point",
                                   representation=cand.model_dump(mode="json"))
            s.add(crec)
            s.flush()
            for attempt in range(rng.choice([1, 1, 2])):
                status = rng.choice(["succeeded", "succeeded", "failed", "running", "cancelled"])
                job = JobRecord(campaign_id=rec.id, candidate_id=crec.id, adapter="lab", fidelity="f",
                                idempotency_key=f"k-{seed}-{i}-{attempt}", status=status, cost=rng.choice([1.0, 2.5]))
                s.add(job)
                s.flush()
                if status in ("running", "cancelled"):
                    continue
                for prop in rng.sample(["y", "z", "other"], rng.randint(1, 3)):
                    failed = rng.random() < 0.25
                    value = None if failed else round(rng.uniform(-1, 1), 2)
                    s.add(MeasurementRecord(campaign_id=rec.id, candidate_id=crec.id, job_id=job.id, property=prop,
                                            value=value, failed=failed, error="broke" if failed else None))
        return rec.id


@pytest.mark.parametrize("goals", GOALS, ids=["minimize", "maximize", "targets"])
def test_progress_matches_the_observations(migrated_db_url: str, goals) -> None:
    measures = [{"properties": ["y", "z"], "adapter": "lab", "fidelity": "branin", "options": {"scenario": "branin"}}]
    spec = branin_spec(objectives=goals, constraints=["z < 0.5"] if len(goals) == 1 else [], measurements=measures)
    db = Database(migrated_db_url)
    try:
        for seed in range(3):
            spec = spec.model_copy(update={"name": f"progress-{seed}"})
            campaign_id = _fill(db, spec, seed)
            with db.reading() as s:
                snapshot = progress(s, spec, campaign_id)
                obs = observations(s, spec, campaign_id)
                best, _ = best_value(spec, obs)
                expected_target = target_met(spec, obs)
            assert snapshot.results == obs.n_complete
            assert snapshot.failed == sum(1 for row in obs.values if math.isnan(row[0]))
            assert snapshot.best == best
            assert snapshot.target_met == expected_target
            assert snapshot.completed_iterations == 2 and snapshot.best_history == [0.1, 0.2]
            assert snapshot.results > 0 and snapshot.failed > 0  # the random data exercises both counts
    finally:
        db.dispose()
