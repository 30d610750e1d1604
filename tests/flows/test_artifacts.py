"""What a campaign shows in a real Prefect server: artifacts, the awaiting-approval event, step log lines.

A notification automation (docs/running.md) posts to a webhook on loopback.  One campaign, two flow runs: a first
run with manual approval waits (the event is emitted; the batch table says
"proposed"), a person drops a candidate, the run pauses after its iteration; a resumed run approves automatically
until the budget (7 experiments) is spent.  Everything is read back through the Prefect client from the server.
"""

from __future__ import annotations

import base64
import contextlib
import io
import logging
import re
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from uuid import UUID

import pytest

from flows.approval import send_decision, waiting_batch
from flows.campaign import campaign_flow
from flows.events import approval_notification
from flows.inputs import ApprovalInput, CampaignSource
from tests.loop.conftest import branin_spec
from tests.support.processes import wait_for

NAME = "branin-watch"


def _artifacts(key: str) -> list[Any]:
    from prefect.client.orchestration import get_client
    from prefect.client.schemas.filters import ArtifactFilter, ArtifactFilterKey
    from prefect.client.schemas.sorting import ArtifactSort

    with get_client(sync_client=True) as client:
        return client.read_artifacts(artifact_filter=ArtifactFilter(key=ArtifactFilterKey(any_=[key])),
                                     sort=ArtifactSort.CREATED_DESC)


def _events(name: str) -> list[Any]:
    from prefect.client.orchestration import get_client
    from prefect.events.filters import EventFilter, EventNameFilter

    with get_client(sync_client=True) as client:
        return client.read_events(filter=EventFilter(event=EventNameFilter(name=[name])), limit=50).events


def _log_lines(flow_run_id: str) -> list[str]:
    from prefect.client.orchestration import get_client
    from prefect.client.schemas.filters import LogFilter, LogFilterFlowRunId

    with get_client(sync_client=True) as client:
        logs = client.read_logs(log_filter=LogFilter(flow_run_id=LogFilterFlowRunId(any_=[UUID(flow_run_id)])))
    return [log.message for log in logs]


def _png_size(markdown: str) -> tuple[int, int]:
    found = re.search(r"!\[[^\]]*\]\(data:image/png;base64,([A-Za-z0-9+/=]+)\)", markdown)
    assert found, "the summary carries no PNG image"
    from PIL import Image

    with Image.open(io.BytesIO(base64.b64decode(found.group(1)))) as image:
        return image.size


@contextlib.contextmanager
def webhook_receiver() -> Iterator[tuple[str, list[str]]]:
    """A real HTTP server on loopback that keeps the body of every POST (where the notification arrives)."""
    received: list[str] = []

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:  # noqa: N802 - http.server's name
            received.append(self.rfile.read(int(self.headers.get("Content-Length") or 0)).decode())
            self.send_response(200)
            self.end_headers()

        def log_message(self, *args: Any) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}/hook", received
    finally:
        server.shutdown()
        server.server_close()


def _notify_on_waiting_batches(url: str) -> None:
    """The automation of docs/running.md, with a webhook block that posts to ``url``."""
    from prefect.blocks.notifications import CustomWebhookNotificationBlock

    block = CustomWebhookNotificationBlock(name="matloop-test", url=url, allow_private_urls=True,
                                           json_data={"text": "{{subject}}\n{{body}}"})
    block_id = block.save("matloop-test-approvals", overwrite=True)
    automation = approval_notification(block_id, campaign=NAME).create()
    assert automation.id is not None


@pytest.fixture
def info_run_logs() -> Iterator[None]:
    """Flow-run logs at INFO, whatever ``PREFECT_LOGGING_LEVEL`` this process started with.

    The level of served and CLI runs is set by ``cli.running`` (imported by any test that imports the CLI,
    and read once when Prefect sets up logging); this test is about the lines, so it fixes the level itself.
    """
    logger = logging.getLogger("prefect.flow_runs")
    saved = logger.level
    logger.setLevel(logging.INFO)
    try:
        yield
    finally:
        logger.setLevel(saved)


@pytest.mark.usefixtures("info_run_logs")
def test_a_campaign_seen_from_the_prefect_api(prefect_api: str, sqlite_url: str, simlab: Any) -> None:
    with webhook_receiver() as (url, received):
        _notify_on_waiting_batches(url)
        _watch_a_campaign(sqlite_url, simlab, received)


def _watch_a_campaign(sqlite_url: str, simlab: Any, notifications: list[str]) -> None:
    spec = branin_spec(simlab.url, simlab.token, name=NAME, approval={"policy": "manual"},
                       objectives=[{"property": "y", "goal": "minimize", "units": "%"}],  # the lab reports "1": converted
                       budget={"max_experiments": 7}, initial_design_size=2)
    outcome: dict[str, Any] = {}

    def first_run() -> None:
        try:
            outcome["result"] = campaign_flow(CampaignSource(spec=spec), database_url=sqlite_url, resume=False,
                                              max_iterations=1, poll_initial_seconds=0.02, poll_max_seconds=0.2)
        except BaseException as exc:  # noqa: BLE001 - reported by the assertion below
            outcome["error"] = exc

    thread = threading.Thread(target=first_run, daemon=True)
    thread.start()
    from agent.store import Database

    db = Database(sqlite_url)

    def paused() -> Any:
        try:
            waiting = waiting_batch(db, NAME)
        except Exception:  # noqa: BLE001 - not there yet
            return None
        return waiting if waiting.flow_run_id else None

    waiting = wait_for(paused, 120, "the flow to wait for approval")

    # the event, with the campaign as its resource and the batch in its payload
    event = wait_for(lambda: [e for e in _events("matloop.batch.awaiting-approval")
                              if e.resource.id == f"matloop.campaign.{NAME}"], 60, "the awaiting-approval event")[0]
    assert event.payload["batch_id"] == waiting.batch_id and event.payload["size"] == 4
    assert event.payload["cost"] == 4.0 and event.payload["flow_run_id"] == waiting.flow_run_id
    assert any(r.id == f"prefect.flow-run.{waiting.flow_run_id}" for r in event.related)
    # the automation turned it into a notification that names the batch and how to approve it
    note = wait_for(lambda: [n for n in notifications if f"batch {waiting.batch_id} of {NAME}" in n], 90,
                    "the notification of the automation")[0]
    assert f"matloop approve {NAME} --by NAME" in note and "4 candidates, cost 4.0" in note, note

    # the batch as a table: units in the headers, the reason before the candidate, still proposed
    proposed = wait_for(lambda: _artifacts(f"{NAME}-batch"), 30, "the batch artifact")[0]
    assert proposed.type == "table" and "proposed" in (proposed.description or "")
    columns = list(proposed.data[0]) if isinstance(proposed.data, list) else None
    if columns is None:
        import json

        columns = list(json.loads(proposed.data)[0])
    assert columns[:2] == ["rank", "candidate id"]
    assert "predicted y (%)" in columns and "± (%)" in columns
    assert columns.index("reason") < columns.index("candidate")

    with db.reading() as session:
        from agent.store.models import BatchRecord

        batch = session.get(BatchRecord, waiting.batch_id)
        assert batch is not None
        dropped = batch.items[0].candidate_id
    send_decision(db, NAME, ApprovalInput(approver="ada", drop=[dropped], note="three will do"))
    thread.join(timeout=240)
    assert not thread.is_alive() and "error" not in outcome, outcome.get("error")
    assert outcome["result"]["status"] == "paused"

    decided = _artifacts(f"{NAME}-batch")[0]
    assert "edited by ada" in (decided.description or "") and str(dropped) in (decided.description or "")
    assert "three will do" in (decided.description or "")
    rows = decided.data if isinstance(decided.data, list) else __import__("json").loads(decided.data)
    assert [r["kept"] for r in rows].count("dropped") == 1

    first_logs = wait_for(lambda: next((ls for ls in [_log_lines(waiting.flow_run_id)]
                                        if any(line.startswith("dispatch · iteration") for line in ls)), None),
                          30, "the first run's dispatch log line")
    assert any(line.startswith("select · iteration 1: batch") for line in first_logs), first_logs
    assert any(line.startswith("gate · iteration 1:") and "needs a person's approval" in line
               for line in first_logs), first_logs
    assert any(line.startswith(f"record_decision · iteration 1: batch {waiting.batch_id} edited by ada")
               for line in first_logs), first_logs
    assert any(line.startswith("dispatch · iteration 1: 3 jobs submitted: 3 to lab (simlab)")
               for line in first_logs), first_logs

    # a resumed run: the same budget bar, updated in place; the summary with a picture
    result = campaign_flow(CampaignSource(spec=spec), database_url=sqlite_url, resume=True, approval="auto",
                           poll_initial_seconds=0.02, poll_max_seconds=0.2)
    assert result["status"] == "stopped"
    budget = _artifacts(f"{NAME}-budget")
    assert len(budget) == 1 and budget[0].type == "progress" and float(budget[0].data) == 100.0
    assert "7/7 experiments" in (budget[0].description or "")

    model = _artifacts(f"{NAME}-model")[0]
    assert "cross-validated RMSE" in model.data and " % (lower is better)" in model.data
    assert "**y** (%)" in model.data and "95 % interval coverage" in model.data
    assert "| 0 |" not in model.data and "\n0" not in model.data

    summary = _artifacts(f"{NAME}-summary")[0]
    assert summary.type == "markdown" and "stopped — budget spent: 7 of 7 experiments" in summary.data
    assert "best y:" in summary.data and "model's pick" in summary.data
    width, height = _png_size(summary.data)
    assert width >= 300 and height >= 200

    from prefect.client.orchestration import get_client

    with get_client(sync_client=True) as client:
        runs = client.read_flow_runs()
    second = [r for r in runs if r.name == f"campaign-{NAME}" and str(r.id) != waiting.flow_run_id]
    assert second
    # the run's logs reach the API in batches: wait for its last line
    lines = wait_for(lambda: next((ls for ls in [_log_lines(str(second[0].id))]
                                   if any(line.startswith("stop · iteration") for line in ls)), None),
                     30, "the second run's last log line")
    assert any(line.startswith("fit · iteration") and "cross-validated RMSE" in line and " %" in line
               for line in lines), lines
    assert any(line.startswith("wait · iteration") and "4 of 4 jobs done" in line and ": 4 succeeded" in line
               for line in lines), lines
    assert not any("no open job" in line for line in lines), lines
    assert any(line.startswith("stop · iteration") and "budget spent" in line for line in lines), lines
    db.dispose()
