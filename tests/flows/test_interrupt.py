"""Ctrl-C in the middle of a dispatch, with the in-process lab: paused, told how to resume, nothing lost.

The lab lives inside the ``matloop run`` process, so the interrupt takes the lab and every job still
out with it. The resumed run talks to a new, empty lab: the jobs the old lab had accepted are unknown
there and must be run again (``agent.loop.sync``), not stored as failed experiments.
"""

from __future__ import annotations

import signal
import subprocess
from pathlib import Path

import pytest
from sqlalchemy import select

from agent.spec import dump_campaign
from agent.store import Database
from agent.store.models import CampaignRecord, EventRecord, JobRecord, MeasurementRecord
from tests.loop.conftest import branin_spec
from tests.support.processes import REPO, matloop_argv, matloop_env, run_matloop


def _run_with_ctrl_c_at(point: str, args: list[str], env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    """``matloop ARGS`` that sends itself SIGINT at ``point``, with SIGINT handled as in a terminal.

    A process started in the background of a non-interactive shell inherits SIGINT as ignored;
    the child resets it so Python raises KeyboardInterrupt, as it does for a user at a terminal.
    """
    return subprocess.run(
        matloop_argv(*args), cwd=REPO, env={**env, "MATLOOP_KILL_AT": point, "MATLOOP_KILL_SIGNAL": "INT"},
        capture_output=True, text=True, timeout=300,
        preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL),
    )


@pytest.mark.slow
def test_ctrl_c_pauses_and_the_resumed_run_reruns_what_the_lost_lab_held(
    prefect_api: str, sqlite_url: str, tmp_path: Path
) -> None:
    spec = branin_spec(name="branin-interrupted")  # no url: the lab starts inside the run
    campaign_file = tmp_path / "campaign.yaml"
    campaign_file.write_text(dump_campaign(spec))
    env = matloop_env(database_url=sqlite_url, data_dir=tmp_path / "data", prefect_api=prefect_api)

    # the second batch: two of its four jobs accepted by the lab when Ctrl-C lands
    interrupted = _run_with_ctrl_c_at("dispatch.after_submit:6", ["run", str(campaign_file)], env)
    assert interrupted.returncode == 130, interrupted.stderr[-3000:]
    assert f"Continue it with `matloop run {campaign_file} --resume`" in interrupted.stderr
    db = Database(sqlite_url)
    with db.reading() as session:
        record = session.scalar(select(CampaignRecord).where(CampaignRecord.name == spec.name))
        assert record is not None and record.status == "paused"
        assert session.scalar(select(EventRecord).where(EventRecord.kind == "run_interrupted")) is not None

    final = run_matloop(["run", str(campaign_file), "--resume"], env)
    assert final.returncode == 0, final.stderr[-3000:]
    assert "budget spent: 12 of 12 experiments" in final.stdout and "(0 failed)" in final.stdout
    with db.reading() as session:
        jobs = list(session.scalars(select(JobRecord)))
        measurements = list(session.scalars(select(MeasurementRecord)))
        resubmitted = list(session.scalars(select(EventRecord).where(EventRecord.kind == "job_resubmitted")))
    db.dispose()
    lost = [j for j in jobs if j.status == "lost"]
    assert lost and len(resubmitted) == len(lost)
    assert len(jobs) == 12 + len(lost) and {j.status for j in jobs} == {"succeeded", "lost"}
    assert len(measurements) == 12 and not any(m.failed for m in measurements)
    assert len({m.candidate_id for m in measurements}) == 12
