"""One live run per campaign from the served deployment (what the Prefect UI's "Run" button starts).

A manual-approval campaign started with a typed run name suspends at its gate, keeping its name and tagged
with its campaign.  A second run of the same campaign, while the first waits, fails at once with one
sentence naming the waiting run and how to decide.  Once decided, the first finishes; relaunching the
finished campaign fails saying it is finished (never a silent "Completed").
"""

from __future__ import annotations

from typing import Any
from uuid import UUID

import pytest

from agent.store import Database
from flows.approval import send_decision
from flows.inputs import ApprovalInput
from tests.flows.test_served_approval import _start, _state, served
from tests.loop.conftest import branin_spec
from tests.support.processes import wait_for

__all__ = ["served"]


def _run(flow_run_id: UUID) -> Any:
    from prefect.client.orchestration import get_client

    with get_client(sync_client=True) as client:
        return client.read_flow_run(flow_run_id)


def _final(flow_run_id: UUID, what: str) -> Any:
    return wait_for(lambda: (s := _state(flow_run_id)) is not None and s.is_final() and s, 240, what)


@pytest.mark.slow
def test_a_second_deployment_run_of_a_waiting_campaign_is_refused(
    served: dict[str, str], sqlite_url: str, simlab: Any
) -> None:
    spec = branin_spec(simlab.url, simlab.token, name="branin-served-one", approval={"policy": "manual"},
                       budget={"max_experiments": 4, "max_iterations": 1})
    first = _start(spec, sqlite_url, name="ada's branin, take 1")
    wait_for(lambda: (s := _state(first)) is not None and s.name == "Suspended", 240,
             "the first run to suspend at the approval gate")
    run = _run(first)
    assert run.name == "ada's branin, take 1"  # the typed name is kept, not replaced by campaign-<name>
    assert "campaign:branin-served-one" in run.tags

    second = _start(spec, sqlite_url)
    refused = _final(second, "the second run to be refused")
    assert refused.is_failed(), refused
    assert f"campaign 'branin-served-one' waits for approval in flow run {first} (suspended since " in (
        refused.message or ""), refused.message
    assert "matloop approve branin-served-one --by NAME" in (refused.message or "")
    assert _run(second).name == "campaign-branin-served-one"  # a generated name gives way to the campaign's
    assert _state(first).name == "Suspended"  # the refused run touched nothing

    db = Database(sqlite_url)
    assert "sent to the waiting flow run" in send_decision(db, spec.name, ApprovalInput(approver="grace"))
    done = _final(first, "the resumed first run to finish")
    assert done.is_completed(), done

    relaunch = _final(_start(spec, sqlite_url), "the relaunch of the finished campaign")
    assert relaunch.is_failed(), relaunch
    assert "campaign 'branin-served-one' is finished (budget spent: 4 of 4 experiments)" in (relaunch.message or "")
    db.dispose()
