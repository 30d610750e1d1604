"""The ``perovskite`` template end to end: crystals generated, screened, chosen and measured by the perov5 lab.

The template as shipped (``generator: auto`` on its crystal space, the perov5 anion
sets in ``space.site_sets``), with only the budget cut to two iterations, run by the
real loop against the in-process simulated lab over real HTTP and a real store.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml
from sqlalchemy import select

from agent.adapters import open_adapters
from agent.loop import run_campaign
from agent.spec import Campaign
from agent.store.models import BatchRecord, CandidateRecord, IterationRecord, JobRecord, MeasurementRecord, PoolRecord
from tests.loop.test_loop import make_ctx
from tests.support.labs import token_env

TEMPLATES = Path(__file__).resolve().parents[2] / "agent" / "templates"


def template(name: str, **overrides: Any) -> dict[str, Any]:
    data: dict[str, Any] = yaml.safe_load((TEMPLATES / f"{name}.yaml").read_text())
    data.update(overrides)
    return data


@pytest.fixture(scope="module")
def perov5_lab() -> Iterator[Any]:
    from lab_adapters.simlab.inprocess import running_simlab

    with running_simlab(scenarios=["perov5"], time_scale=1e-4) as handle:
        yield handle


def test_perovskite_template_runs_two_iterations_end_to_end(sqlite_url: str, perov5_lab: Any) -> None:
    data = template("perovskite", budget={"max_experiments": 10, "max_iterations": 2})
    data["adapters"]["lab"].update(url=perov5_lab.url, token_env=token_env(perov5_lab.token))
    data["generator"]["pool_size"] = 120
    spec = Campaign.model_validate(data)
    assert spec.generator.type == "crystal" and spec.space.site_sets["X"][0] == "O3"  # type: ignore[union-attr]
    with open_adapters(spec) as adapters:
        ctx = make_ctx(sqlite_url, spec, adapters)
        outcome = run_campaign(ctx)
    assert outcome.status == "stopped", outcome
    with ctx.db.reading() as session:
        iterations = list(session.scalars(select(IterationRecord).order_by(IterationRecord.number)))
        assert [it.step for it in iterations] == ["complete", "complete"]
        assert iterations[0].model_version_id is None and iterations[1].model_version_id is not None
        pools = list(session.scalars(select(PoolRecord).order_by(PoolRecord.id)))
        assert len(pools) == 2 and all(p.generator == "substitution+funnel" for p in pools)
        for pool in pools:
            funnel = pool.stats["funnel"]
            assert funnel["generated"] >= pool.size > 0
            assert {"valid_rate", "unique_rate", "novel_rate", "sun_rate"} <= set(funnel)
            assert pool.stats["generation"]["proposed"] == funnel["generated"]
        batches = list(session.scalars(select(BatchRecord).order_by(BatchRecord.id)))
        assert len(batches) == 2 and all(len(b.items) == 5 for b in batches)
        assert all(item.reason for b in batches for item in b.items)
        assert "initial design" in batches[0].items[0].reason
        assert all(item.acquisition_value is not None for item in batches[1].items)
        candidates = list(session.scalars(select(CandidateRecord)))
        assert len(candidates) == 10 and {c.kind for c in candidates} == {"structure"}
        assert len({c.fingerprint for c in candidates}) == 10
        jobs = list(session.scalars(select(JobRecord)))
        assert len(jobs) == 10 and {j.status for j in jobs} <= {"succeeded", "failed"}
        measured = list(session.scalars(select(MeasurementRecord)))
        # reference_match keeps proposals inside the lookup table: every crystal is answered
        assert {j.status for j in jobs} == {"succeeded"}, [j.error for j in jobs if j.status != "succeeded"]
        assert {m.property for m in measured} >= {"ind_gap", "heat_of_formation"}
    ctx.db.dispose()
