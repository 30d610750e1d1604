"""A two-fidelity campaign (the funnel-microstructure template) runs to its end on the simulated lab and SQLite:
each pick goes to the fidelity it names, only target-fidelity results count, the model version holds both
fidelities' metrics."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import torch
import yaml
from sqlalchemy import select

from agent.adapters import open_adapters
from agent.loop import run_campaign
from agent.loop.state import observations, progress
from agent.spec import Campaign
from agent.store.models import BatchItemRecord, JobRecord, MeasurementRecord, ModelVersionRecord
from lab_adapters.simlab.inprocess import running_simlab
from tests.loop.test_loop import make_ctx
from tests.support.labs import token_env

TEMPLATE = Path(__file__).resolve().parents[2] / "agent" / "templates" / "funnel-microstructure.yaml"


@pytest.fixture(autouse=True)
def _one_thread() -> None:
    torch.set_num_threads(1)


def test_funnel_microstructure_runs_to_its_end_with_picks_at_both_fidelities(sqlite_url: str) -> None:
    data: dict[str, Any] = yaml.safe_load(TEMPLATE.read_text())
    data.update(budget={"max_cost": 9, "max_iterations": 3}, batch_size=4, initial_design_size=4,
                stopping={"target_met": False}, surrogate={"type": "gp", "cv_folds": 2})
    with running_simlab(scenarios=["microstructure", "microstructure_coarse"], time_scale=1e-4) as lab:
        data["adapters"]["lab"].update(url=lab.url, token_env=token_env(lab.token))
        spec = Campaign.model_validate(data)
        assert spec.is_multifidelity and spec.target_fidelity == "fine_mesh"
        with open_adapters(spec) as adapters:
            ctx = make_ctx(sqlite_url, spec, adapters)
            outcome = run_campaign(ctx)
    assert outcome.status == "stopped", outcome
    with ctx.db.reading() as session:
        items = list(session.scalars(select(BatchItemRecord).order_by(BatchItemRecord.id)))
        jobs = list(session.scalars(select(JobRecord)))
        first = items[:4]
        # the initial design of a target-value objective: every other point at every fidelity, the rest screened
        # on the coarse mesh only (a maximum or minimum pairs only the first: test_fidelity_choice.py)
        assert [i.fidelity for i in first] == [None, "coarse_mesh", None, "coarse_mesh"]
        assert all("initial design" in i.reason and ("at every fidelity" if i.fidelity is None else
                                                      "at coarse_mesh only") in i.reason for i in first)
        later = items[4:]
        assert later and all(i.fidelity in ("coarse_mesh", "fine_mesh") for i in later)
        assert all(("at " + i.fidelity) in i.reason for i in later)
        for item in items:  # dispatch sent each pick only to its fidelity
            at = {j.fidelity for j in jobs if j.batch_item_id == item.id}
            assert at == ({"coarse_mesh", "fine_mesh"} if item.fidelity is None else {item.fidelity}), item.reason
        assert {j.status for j in jobs} == {"succeeded"}
        # only fine-mesh results are results; the coarse ones feed the model
        obs = observations(session, spec, ctx.campaign_id)
        fine = session.scalars(select(MeasurementRecord).where(MeasurementRecord.fidelity == "fine_mesh")).all()
        assert len(obs.candidates) == len(fine) >= 2 and len(obs.cheaper["coarse_mesh"][0]) >= 4
        snapshot = progress(session, spec, ctx.campaign_id)
        assert snapshot.results == len(fine)
        assert snapshot.cost == pytest.approx(sum(j.cost for j in jobs))
        version = session.scalars(select(ModelVersionRecord).order_by(ModelVersionRecord.id)).first()
        assert version is not None and version.kind in ("multitask", "mfgp", "delta")
        assert set(version.metrics) == {"0", "thermal_conductivity@coarse_mesh"}
        assert version.metrics["0"]["n"] >= 2 and "rmse" in version.metrics["thermal_conductivity@coarse_mesh"]
    ctx.db.dispose()
