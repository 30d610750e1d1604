"""A campaign launched from the served deployment suspends for approval and frees its worker slot.

``matloop serve --limit 1`` runs in a subprocess, as it would on a server.  A
campaign with manual approval is started from the deployment (what the Prefect
UI's "Run" button does); at the gate its flow run *suspends*: the run's process
exits, so the only slot is free and a second campaign runs to the end meanwhile.
``matloop approve`` (a real CLI subprocess) then resumes the suspended run, which
the served process picks up again and finishes with the decision and approver stored.
"""

from __future__ import annotations

import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from uuid import UUID

import pytest
from sqlalchemy import select

from agent.store import Database
from agent.store.models import BatchRecord, CampaignRecord
from flows.approval import waiting_batch
from tests.loop.conftest import branin_spec
from tests.support.labs import token_env
from tests.support.processes import REPO, matloop_argv, matloop_env, run_matloop, stop_process_group, wait_for


@pytest.fixture
def served(prefect_api: str, sqlite_url: str, tmp_path: Path, simlab: Any) -> Iterator[dict[str, str]]:
    token_env(simlab.token)  # the serving process reads the lab token from its environment (never from the spec)
    env = matloop_env(database_url=sqlite_url, data_dir=tmp_path / "data", prefect_api=prefect_api)
    log = (tmp_path / "serve.log").open("w")
    process = subprocess.Popen(
        matloop_argv("serve", "--limit", "1"), cwd=REPO, env=env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True,
    )
    try:
        wait_for(_deployed, 120, "`matloop serve` to register the deployment")
        yield env
    finally:
        stop_process_group(process)
        log.close()


def _deployed() -> bool:
    from prefect.client.orchestration import get_client

    with get_client(sync_client=True) as client:
        try:
            client.read_deployment_by_name("matloop-campaign/campaign")
        except Exception:  # noqa: BLE001 - not served yet
            return False
        return True


def _state(flow_run_id: UUID) -> Any:
    from prefect.client.orchestration import get_client

    with get_client(sync_client=True) as client:
        return client.read_flow_run(flow_run_id).state


def _start(spec: Any, database_url: str, name: str | None = None) -> UUID:
    """A run of the served deployment (what the UI's "Run" button starts), optionally with a typed name."""
    from prefect.deployments import run_deployment

    run = run_deployment(
        "matloop-campaign/campaign", timeout=0, flow_run_name=name,
        parameters={"campaign": {"spec": spec.model_dump(mode="json")}, "database_url": database_url,
                    "poll_initial_seconds": 0.05, "poll_max_seconds": 0.5},
    )
    return run.id


@pytest.mark.slow
def test_served_run_suspends_for_approval_and_the_cli_resumes_it(
    served: dict[str, str], sqlite_url: str, simlab: Any
) -> None:
    manual = branin_spec(simlab.url, simlab.token, name="branin-served-manual", approval={"policy": "manual"},
                         budget={"max_experiments": 4, "max_iterations": 1})
    waiting_run = _start(manual, sqlite_url)
    suspended = wait_for(lambda: (s := _state(waiting_run)) is not None and s.name == "Suspended" and s,
                          240, "the served run to suspend at the approval gate")
    assert suspended.is_paused()

    # The suspended run holds no process: with --limit 1 another campaign runs to the end meanwhile.
    auto = branin_spec(simlab.url, simlab.token, name="branin-served-auto",
                       budget={"max_experiments": 4, "max_iterations": 1})
    other = _start(auto, sqlite_url)
    finished = wait_for(lambda: (s := _state(other)) is not None and s.is_final() and s, 240,
                         "the second campaign to finish while the first is suspended")
    assert finished.is_completed(), finished
    assert _state(waiting_run).name == "Suspended"

    db = Database(sqlite_url)
    waiting = waiting_batch(db, manual.name)
    assert waiting.flow_run_id == str(waiting_run)
    approve = run_matloop(["approve", manual.name, "--by", "grace", "--note", "looks sensible"], served, 120)
    assert approve.returncode == 0, approve.stdout + approve.stderr
    assert "sent to the waiting flow run" in approve.stdout

    done = wait_for(lambda: (s := _state(waiting_run)) is not None and s.is_final() and s, 240,
                     "the resumed run to finish")
    assert done.is_completed(), done
    with db.reading() as session:
        record = session.scalar(select(CampaignRecord).where(CampaignRecord.name == manual.name))
        assert record is not None
        batch = session.get(BatchRecord, waiting.batch_id)
        assert batch is not None and batch.approver == "grace" and batch.note == "looks sensible"
        assert batch.status == "dispatched" and batch.decided_at is not None
        assert record.lock_owner is None  # the finished run gave its lease back
    db.dispose()
