"""Heavy steps on a real Dask LocalCluster give what the in-process run gives, for the same seed.

A short crystal campaign (the ``perovskite`` template with CHGNet screening in its funnel, a deep ensemble as its
surrogate) runs twice on SQLite against the perov5 simulated lab: once in-process, once with the funnel's checks,
the MLIP relaxations and the ensemble's members fanned out on two Dask worker processes. The pools' funnels, the
batches and every pick's prediction must be the same.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import torch
from sqlalchemy import select

from agent.adapters import open_adapters
from agent.loop import run_campaign
from agent.spec import Campaign
from agent.store.models import BatchItemRecord, BatchRecord, CandidateRecord, PoolRecord
from matloop.compute import current_fan_out, fanning_out
from surrogates.ensemble import DeepEnsemble
from surrogates.mlip import MLIPScreen, MLIPSettings
from tests.crystal.conftest import make_perovskite
from tests.loop.test_crystal_campaign import template
from tests.loop.test_loop import make_ctx
from tests.support.labs import token_env


@pytest.fixture(scope="module")
def perov5_lab() -> Iterator[Any]:
    from lab_adapters.simlab.inprocess import running_simlab

    with running_simlab(scenarios=["perov5"], time_scale=1e-4, noise_scale=0.0) as handle:  # same answers
        yield handle


def screened_spec(lab: Any, cache: Path, name: str) -> Campaign:
    """The perovskite template cut to six ABO3 crystals of the perov5 data (six elements to reference): CHGNet is slow on 2 cores."""
    data = template("perovskite", budget={"max_experiments": 4, "max_iterations": 2}, batch_size=2,
                    initial_design_size=2)
    data["name"] = name
    data["space"].update(sites={"A": ["Sn", "V", "Y"], "B": ["In", "Nb"], "X": ["O"]}, site_sets={"X": ["O3"]})
    data["adapters"]["lab"].update(url=lab.url, token_env=token_env(lab.token))
    data["generator"]["pool_size"] = 12
    data["generator"]["funnel"] = {"mlip": {"fmax": 0.5, "steps": 5, "cache_dir": str(cache),
                                            "max_e_above_hull": 10.0, "max_formation_energy": None}}
    data["surrogate"] = {"type": "ensemble", "cv_folds": 2, "ensemble": {"n_members": 6, "steps": 150}}
    return Campaign.model_validate(data)


def history(db: Any) -> tuple[list[dict], list[tuple]]:
    """Each pool's funnel, and every pick in order with its prediction."""
    with db.reading() as session:
        pools = [p.stats for p in session.scalars(select(PoolRecord).order_by(PoolRecord.id))]
        picks = [
            (batch, rank, fingerprint, mean, std)
            for batch, rank, fingerprint, mean, std in session.execute(
                select(BatchRecord.id, BatchItemRecord.rank, CandidateRecord.fingerprint,
                       BatchItemRecord.posterior_mean, BatchItemRecord.posterior_std)
                .join(BatchItemRecord, BatchItemRecord.batch_id == BatchRecord.id)
                .join(CandidateRecord, CandidateRecord.id == BatchItemRecord.candidate_id)
                .order_by(BatchRecord.id, BatchItemRecord.rank))
        ]
    return pools, picks


def run(url: str, spec: Campaign) -> tuple[list[dict], list[tuple]]:
    with open_adapters(spec) as adapters:
        ctx = make_ctx(url, spec, adapters)
        outcome = run_campaign(ctx)
        assert outcome.status == "stopped", outcome
        try:
            return history(ctx.db)
        finally:
            ctx.db.dispose()


@pytest.mark.slow
def test_a_campaign_screened_on_dask_picks_what_the_in_process_one_picks(
    tmp_path: Path, perov5_lab: Any, on_dask: Any
) -> None:
    cache = tmp_path / "mlip-cache"  # elemental references: relaxed once, by the first run
    local = run(f"sqlite:///{tmp_path / 'local.sqlite'}", screened_spec(perov5_lab, cache, "screen-local"))
    with fanning_out(on_dask):
        distributed = run(f"sqlite:///{tmp_path / 'dask.sqlite'}", screened_spec(perov5_lab, cache, "screen-dask"))
    assert current_fan_out().where == "in-process"  # the block's executor ended with it
    assert {"crystal-validity", "mlip-relax", "ensemble-members"} <= set(on_dask.names)
    workers = on_dask.inner.runner.client.run(lambda: __import__("surrogates.mlip.screen").mlip.screen._WORKER_RELAXERS)
    assert sum(len(built) for built in workers.values()) >= 1  # CHGNet was built in the worker processes

    pools_local, picks_local = local
    pools_dask, picks_dask = distributed
    assert len(pools_local) == 2 and pools_local[0]["funnel"]["screened"] > 0
    assert pools_dask == pools_local  # generated, valid, unique, novel, screened, stable: every count the same
    assert len(picks_local) == 4 and picks_local[2][3] is not None  # the second batch was chosen by the ensemble
    assert [p[1:] for p in picks_dask] == [p[1:] for p in picks_local]  # same candidates, same predictions

    # the relaxations themselves: the same energies and hull distances from the workers' CHGNet as from this one's
    settings = MLIPSettings(fmax=0.5, steps=5, cache_dir=str(cache))
    crystals = [make_perovskite("Y", "In", "O", 4.2), make_perovskite("In", "Y", "O", 4.2),
                make_perovskite("V", "Nb", "O", 3.9)]
    here = MLIPScreen(settings).screen(crystals)
    with fanning_out(on_dask):
        there = MLIPScreen(settings).screen(crystals)
    assert [r.relax.energy_per_atom for r in there] == [r.relax.energy_per_atom for r in here]
    assert [r.stability for r in there] == [r.stability for r in here]
    assert [r.relax.structure for r in there] == [r.relax.structure for r in here]


def test_ensemble_members_trained_on_dask_equal_in_process_ones(on_dask: Any) -> None:
    gen = torch.Generator().manual_seed(1)
    X = torch.rand(40, 3, generator=gen, dtype=torch.double)
    y = torch.sin(3 * X).sum(-1) + 0.05 * torch.randn(40, generator=gen, dtype=torch.double)
    settings = {"n_members": 7, "steps": 120, "hidden": 16}  # 7: two chunks of members, the last one short
    here = DeepEnsemble(3, settings).fit(X, y, seed=11)
    with fanning_out(on_dask):
        there = DeepEnsemble(3, settings).fit(X, y, seed=11)
    assert on_dask.names == ["ensemble-members"]
    for a, b in zip(here.state_dict().values(), there.state_dict().values(), strict=True):
        assert torch.equal(a, b)
    other = DeepEnsemble(3, settings).fit(X, y, seed=12)
    assert not torch.equal(other.members.weights[0], here.members.weights[0])  # the seed does matter
    member_means = here.member_predictions(X)[0]
    assert member_means.std(dim=0).mean() > 0  # and the members differ from each other


def _malloc_environment(_: int) -> tuple[str | None, str | None]:
    import os

    return os.environ.get("MALLOC_TRIM_THRESHOLD_"), os.environ.get("OMP_NUM_THREADS")


def test_matloop_workers_keep_glibc_malloc_tuning(on_dask: Any) -> None:
    """Dask's MALLOC_TRIM_THRESHOLD_ slowed CHGNet 1.6x in a worker; matloop's workers start without it."""
    assert on_dask.map(_malloc_environment, [0, 1], name="environment") == [(None, "1"), (None, "1")]
