"""The ``microstructure`` template run by the loop with each inverse-design generator.

``cinn`` searches the template's parametric space (the lab's random-field parameters);
``janus`` proposes images in a microstructure space.  Both cold-start (Sobol points /
random-field images) for the initial design, then train on the campaign's own
measurements in each later iteration: a real loop, the real simulated lab over HTTP.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
from sqlalchemy import select

from agent.adapters import open_adapters
from agent.loop import run_campaign
from agent.spec import Campaign
from agent.store.models import BatchRecord, CandidateRecord, IterationRecord, JobRecord, PoolRecord
from tests.loop.test_crystal_campaign import template
from tests.loop.test_loop import make_ctx
from tests.support.labs import token_env

GENERATORS: dict[str, dict[str, Any]] = {
    "cinn": {"type": "cinn", "settings": {
        "pool_size": 48, "min_measurements": 8, "epochs": 30, "n_blocks": 3, "hidden": 32,
        "localise_steps": 30, "surrogate_epochs": 60, "max_candidates": 48}},
    "janus": {"type": "janus", "settings": {
        "pool_size": 48, "min_measurements": 8, "max_candidates": 12,
        "training": {"epochs": 15, "width": 8, "batch_size": 8}, "inversion": {"steps": 30},
        "score_model": {"physics_prior": True, "k0": 1.0, "k1": 10.0, "epochs": 5, "width": 8}}},
}


@pytest.fixture(scope="module")
def microstructure_lab() -> Iterator[Any]:
    from lab_adapters.simlab.inprocess import running_simlab

    with running_simlab(scenarios=["microstructure"], time_scale=1e-4) as handle:
        yield handle


@pytest.mark.parametrize("name", ["cinn", "janus"])
def test_microstructure_campaign_trains_the_inverse_generator_on_its_measurements(
    name: str, sqlite_url: str, microstructure_lab: Any
) -> None:
    data = template("microstructure", generator=GENERATORS[name], batch_size=4, initial_design_size=8,
                    budget={"max_experiments": 16, "max_iterations": 4},
                    stopping={"target_met": False})  # a lucky initial point must not end the test before training
    if name == "janus":
        data["space"] = {"type": "microstructure", "size": 32, "volume_fraction": [0.1, 0.9], "length_scale": [1.5, 4.0]}
    data["adapters"]["lab"].update(url=microstructure_lab.url, token_env=token_env(microstructure_lab.token))
    spec = Campaign.model_validate(data)
    with open_adapters(spec) as adapters:
        ctx = make_ctx(sqlite_url, spec, adapters)
        outcome = run_campaign(ctx)
    assert outcome.status == "stopped" and ("budget" in outcome.reason or "iterations" in outcome.reason), outcome
    with ctx.db.reading() as session:
        iterations = list(session.scalars(select(IterationRecord).order_by(IterationRecord.number)))
        assert [it.step for it in iterations] == ["complete"] * 4
        pools = list(session.scalars(select(PoolRecord).order_by(PoolRecord.id)))
        assert [p.generator for p in pools] == [name] * 4 and all(p.size > 0 for p in pools)
        batches = list(session.scalars(select(BatchRecord).order_by(BatchRecord.id)))
        sizes = [len(b.items) for b in batches]
        assert sizes[:2] == [4, 4]  # the 8-point initial design takes two batches
        # janus descends from the few measured images, and distinct thresholded designs can be fewer than 4
        assert all(1 <= k <= 4 for k in sizes[2:]) and (name == "janus" or sizes == [4, 4, 4, 4])
        assert all(item.reason for b in batches for item in b.items)
        origins = [[item.candidate.origin for item in b.items] for b in batches]
        assert set(origins[0]) == set(origins[1]) == {f"{name}-coldstart"}
        # after the initial design the generator learnt from the measurements: its own proposals were chosen
        assert set(origins[2]) == set(origins[3]) == {name}
        kinds = {c.kind for c in session.scalars(select(CandidateRecord))}
        assert kinds == ({"image"} if name == "janus" else {"point"})
        jobs = list(session.scalars(select(JobRecord)))
        assert len(jobs) == sum(sizes) and {j.status for j in jobs} == {"succeeded"}, [j.error for j in jobs]
    ctx.db.dispose()
