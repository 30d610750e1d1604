"""``stopping.min_results_fraction``: the next iteration starts before the stragglers are back, none is lost.

The lab has one evaluator, so a batch of four finishes one experiment at a
time (about 1.5 s apart); with a fraction of 0.5 the loop must propose the next
batch while two experiments of the first are still running, treat them as
pending points, and still store every result by the end.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
from sqlalchemy import select

from agent.adapters import open_adapters
from agent.loop import Backoff, LoopContext, run_campaign
from agent.store import Database
from agent.store.campaigns import register_campaign
from agent.store.migrate import upgrade
from agent.store.models import BatchItemRecord, BatchRecord, EventRecord, JobRecord, MeasurementRecord
from tests.loop.conftest import branin_spec


@pytest.fixture
def one_evaluator_lab() -> Iterator[Any]:
    from lab_adapters.simlab.inprocess import running_simlab

    # an evaluation is 0.1 lab hours = 360 lab s; 360 * 1/240 = 1.5 s of real time, one at a time
    with running_simlab(scenarios=["branin"], time_scale=1 / 240, instruments={"evaluator": 1}) as handle:
        yield handle


@pytest.mark.slow
def test_next_batch_is_chosen_when_half_of_the_batch_is_back(sqlite_url: str, one_evaluator_lab: Any) -> None:
    spec = branin_spec(one_evaluator_lab.url, one_evaluator_lab.token, name="branin-stragglers",
                       budget={"max_experiments": 8}, initial_design_size=2,
                       stopping={"min_results_fraction": 0.5})
    upgrade(sqlite_url)
    db = Database(sqlite_url)
    with db.transaction() as session:
        campaign_id = register_campaign(session, spec).id
    with open_adapters(spec) as adapters:
        ctx = LoopContext(db=db, campaign=spec, campaign_id=campaign_id, adapters=adapters,
                          backoff=Backoff(initial=0.05, maximum=0.2))
        outcome = run_campaign(ctx)
    assert outcome.status == "stopped" and outcome.reason == "budget spent: 8 of 8 experiments"

    with db.reading() as session:
        batches = list(session.scalars(select(BatchRecord).order_by(BatchRecord.id)))
        assert len(batches) == 2
        first_jobs = list(session.scalars(
            select(JobRecord).join(BatchItemRecord, BatchItemRecord.id == JobRecord.batch_item_id)
            .where(BatchItemRecord.batch_id == batches[0].id)))
        second_proposed = session.scalar(
            select(EventRecord).where(EventRecord.kind == "batch_proposed").order_by(EventRecord.id.desc()).limit(1))
        assert second_proposed is not None and second_proposed.payload["batch"] == batches[1].id
        finished = sorted(j.finished_at for j in first_jobs if j.finished_at is not None)
        assert len(finished) == 4
        # the second batch was chosen while stragglers of the first were still out ...
        assert sum(t > second_proposed.created_at for t in finished) >= 1, (finished, second_proposed.created_at)
        # ... never re-picking them, and every result of both batches reached the database in the end
        first = {i.candidate_id for i in batches[0].items}
        second = {i.candidate_id for i in batches[1].items}
        assert not first & second
        jobs = list(session.scalars(select(JobRecord)))
        assert len(jobs) == 8 and {j.status for j in jobs} == {"succeeded"}
        measured = {m.candidate_id for m in session.scalars(select(MeasurementRecord))}
        assert measured == first | second
    db.dispose()
