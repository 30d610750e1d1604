"""The campaign flow opens the executor MATLOOP_COMPUTE names for its run: here, the scheduler of a running cluster."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from agent.adapters import open_adapters
from agent.loop import run_campaign
from agent.store import Database
from flows.campaign import campaign_flow
from flows.inputs import CampaignSource
from tests.compute.test_same_picks import history
from tests.loop.conftest import branin_spec
from tests.loop.test_loop import make_ctx


@pytest.fixture(scope="module")
def quiet_lab() -> Iterator[Any]:
    from lab_adapters.simlab.inprocess import running_simlab

    with running_simlab(scenarios=["branin"], time_scale=1e-4, noise_scale=0.0) as handle:  # same answers
        yield handle


def spec_for(lab: Any, name: str) -> Any:
    return branin_spec(lab.url, lab.token, name=name, budget={"max_experiments": 8}, surrogate={
        "type": "ensemble", "cv_folds": 2, "ensemble": {"n_members": 6, "steps": 150}})


@pytest.mark.slow
def test_the_flow_fans_out_on_the_scheduler_it_is_given_and_picks_as_in_process(
    prefect_api: str, dask_cluster: Any, quiet_lab: Any, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    spec = spec_for(quiet_lab, "branin-here")
    with open_adapters(spec) as adapters:
        ctx = make_ctx(f"sqlite:///{tmp_path / 'here.sqlite'}", spec, adapters)
        assert run_campaign(ctx).status == "stopped"
        _, expected = history(ctx.db)
        ctx.db.dispose()

    from distributed import get_task_stream

    client = dask_cluster.runner.client
    monkeypatch.setenv("MATLOOP_COMPUTE", json.dumps({"type": "dask_scheduler", "address": client.scheduler.address}))
    url = f"sqlite:///{tmp_path / 'there.sqlite'}"
    with get_task_stream(client=client) as stream:  # what the scheduler ran meanwhile
        result = campaign_flow(CampaignSource(spec=spec_for(quiet_lab, "branin-there")), database_url=url,
                               resume=False, poll_initial_seconds=0.02, poll_max_seconds=0.2)
    assert result["status"] == "stopped" and result["experiments"] == 8
    keys = [str(task["key"]) for task in stream.data]
    assert sum(key.startswith("matloop-ensemble-members-") for key in keys) >= 2, keys  # the flow's fits fanned out
    db = Database(url)
    try:
        _, picks = history(db)
    finally:
        db.dispose()
    assert len(expected) == 8 and expected[4][3] is not None  # the second batch was chosen by the ensemble
    assert [p[1:] for p in picks] == [p[1:] for p in expected]


def test_the_flow_refuses_a_bad_setting_in_one_sentence(
    prefect_api: str, quiet_lab: Any, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("MATLOOP_COMPUTE", '{"type": "dask_scheduler", "address": "tcp://sched:0"}')
    state = campaign_flow(CampaignSource(spec=spec_for(quiet_lab, "branin-refused")),
                          database_url=f"sqlite:///{tmp_path / 'refused.sqlite'}", resume=False, return_state=True)
    assert state.is_failed()
    assert state.message == ("MATLOOP_COMPUTE.address: 'tcp://sched:0' is not a Dask scheduler address (port 0); "
                             "give one like tcp://scheduler-host:8786")
