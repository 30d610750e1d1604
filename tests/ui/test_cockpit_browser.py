"""The cockpit in a real browser: launch a campaign from the Prefect UI, watch its logs, approve a batch you can see.

A real ``prefect server start`` (its own PREFECT_HOME, a free port, the UI on) and a real ``matloop serve`` run as
subprocesses; headless Debian Chromium, driven by Playwright, does what a person does: the deployment's
"Run → Custom run" form with a campaign file path, the flow run's log tab (INFO: the approval hint with its
command), and the "Resume" form, whose description shows the batch and whose "drop" choices are the batch's own
candidate ids.  The decision, note and drop are then read back from the database and from ``matloop history``.

Screenshots of the run form, the logs and the approval form (1440×900) are written to ``MATLOOP_SCREENSHOTS``
when set (``docs/screenshots/`` holds the committed ones, see ``docs/running.md``).

The test skips when Chromium or Playwright is missing, which under ``CI=true`` counts as a failure
(``tests/conftest.py``): CI installs both (``scripts/install-system-packages.sh``, the ``test`` extra).
"""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from sqlalchemy import select

from agent.store import Database, StoreError
from agent.store.models import BatchRecord, EventRecord
from flows.approval import waiting_batch
from tests.support.processes import REPO, matloop_argv, matloop_env, run_matloop, stop_process_group, wait_for
from tests.ui.campaign_files import tiny_oer_file

CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = ["--no-sandbox", "--disable-gpu", "--disable-background-networking", "--disable-component-update",
                 "--disable-sync", "--no-first-run"]
VIEWPORT = {"width": 1440, "height": 900}
CAMPAIGN = "cockpit-oer"
#: Bounded waits: generous for a busy 2-core machine, short enough that a hang fails the test in minutes.
START_SECONDS = 90
STEP_SECONDS = 120
UI_MS = 30_000

pytestmark = pytest.mark.slow


@pytest.fixture
def sync_playwright() -> Any:
    """Playwright's sync API, or a skip saying what is missing (a failure under CI=true), before any server starts."""
    if not os.path.exists(CHROMIUM):
        pytest.skip(f"Chromium is not installed at {CHROMIUM} (Debian package 'chromium')")
    try:
        from playwright.sync_api import sync_playwright
    except ImportError:
        pytest.skip("playwright is not installed (pip install the 'test' extra)")
    return sync_playwright


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture
def prefect_server(sync_playwright: Any, tmp_path: Path) -> Iterator[str]:
    """A real ``prefect server start`` with the UI, on a free port; yields the UI's URL."""
    _mark("starting `prefect server start`")
    port = _free_port()
    ui = f"http://127.0.0.1:{port}"
    env = {k: v for k, v in os.environ.items() if not k.startswith("PREFECT_")}
    env.update(PREFECT_HOME=str(tmp_path / "prefect-home"), PREFECT_UI_ENABLED="true",
               PREFECT_UI_API_URL=f"{ui}/api", PREFECT_SERVER_ANALYTICS_ENABLED="false",
               # Prefect's own SQLite database: on a loaded 2-core box its services held the write lock past the
               # default 10 s, and the approval's state change failed with "database is locked" (the form stayed
               # open); a longer busy timeout waits for the lock instead
               PREFECT_API_DATABASE_TIMEOUT="60")
    prefect = Path(sys.executable).with_name("prefect")
    argv = [str(prefect)] if prefect.exists() else [sys.executable, "-m", "prefect"]
    with (tmp_path / "prefect-server.log").open("wb") as log:
        process = subprocess.Popen([*argv, "server", "start", "--host", "127.0.0.1", "--port", str(port)],
                                   env=env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
        try:
            wait_for(lambda: _healthy(ui) or process.poll() is not None, START_SECONDS, "`prefect server start`")
            assert process.poll() is None, (tmp_path / "prefect-server.log").read_text()[-3000:]
            _mark("prefect server is up")
            yield ui
        finally:
            stop_process_group(process)


def _healthy(ui: str) -> bool:
    try:
        return httpx.get(f"{ui}/api/health", timeout=2).status_code == 200
    except httpx.HTTPError:
        return False


@pytest.fixture
def served(prefect_server: str, tmp_path: Path) -> Iterator[dict[str, str]]:
    """``matloop serve`` against the server, with the CLI's own logging defaults (no PREFECT_LOGGING_LEVEL)."""
    env = matloop_env(database_url=f"sqlite:///{tmp_path / 'cockpit.sqlite'}", data_dir=tmp_path / "data",
                      prefect_api=f"{prefect_server}/api", PREFECT_HOME=str(tmp_path / "serve-home"))
    env.pop("PREFECT_LOGGING_LEVEL")  # what a user gets: the default of cli/running.py
    with (tmp_path / "serve.log").open("wb") as log:
        process = subprocess.Popen(matloop_argv("serve"), cwd=REPO, env=env, stdout=log, stderr=subprocess.STDOUT,
                                   start_new_session=True)
        try:
            wait_for(lambda: _deployment_id(prefect_server) or process.poll() is not None, START_SECONDS,
                     "`matloop serve` to register the deployment")
            assert process.poll() is None, (tmp_path / "serve.log").read_text()[-3000:]
            _mark("`matloop serve` registered the deployment")
            yield env
        finally:
            stop_process_group(process)


def _api(ui: str, path: str, body: dict[str, Any] | None = None) -> Any:
    response = httpx.post(f"{ui}/api{path}", json=body or {}, timeout=10) if body is not None else (
        httpx.get(f"{ui}/api{path}", timeout=10))
    response.raise_for_status()
    return response.json()


def _deployment_id(ui: str) -> str | None:
    try:
        return _api(ui, "/deployments/name/matloop-campaign/campaign")["id"]
    except httpx.HTTPError:
        return None


def _flow_run(ui: str) -> dict[str, Any] | None:
    runs = _api(ui, "/flow_runs/filter", {})
    return runs[0] if runs else None


def _state(ui: str, run_id: str) -> str:
    return _api(ui, f"/flow_runs/{run_id}")["state"]["name"]


def _waiting(db: Database, after: int | None = None) -> int | None:
    """The id of the batch waiting for approval (newer than ``after``), once its request is recorded."""
    try:
        waiting = waiting_batch(db, CAMPAIGN)
    except StoreError:
        return None
    if waiting.flow_run_id is None or (after is not None and waiting.batch_id <= after):
        return None
    return waiting.batch_id


def _open_form(page: Any, run_url: str) -> Any:
    page.goto(run_url)
    page.get_by_role("button", name="Resume").first.click(timeout=UI_MS)
    dialog = page.get_by_role("dialog")
    dialog.get_by_text("Approver").first.wait_for(timeout=UI_MS)
    return dialog


def _field(dialog: Any, label: str) -> Any:
    """The text box of the form's property ``label`` (Prefect renders each string property as a textarea)."""
    return dialog.locator(".schema-form-property").filter(has_text=label).locator("textarea").first


_T0 = [0.0]


def _mark(what: str) -> None:
    """Elapsed seconds per phase, in the test's output (where a slow step shows up when the test fails)."""
    import time

    if not _T0[0]:
        _T0[0] = time.monotonic()
    print(f"[{time.monotonic() - _T0[0]:6.1f} s] {what}", flush=True)


def _shot(page: Any, name: str) -> None:
    out = os.environ.get("MATLOOP_SCREENSHOTS")
    if out:
        Path(out).mkdir(parents=True, exist_ok=True)
        page.screenshot(path=str(Path(out) / name))


def test_launch_watch_and_approve_a_batch_in_the_browser(
    sync_playwright: Any, prefect_server: str, served: dict[str, str], tmp_path: Path
) -> None:
    ui = prefect_server
    # Batches of 6: the second, the model's, is four qLogEI picks and two Thompson picks, whose values the form
    # explains kind by kind.
    campaign_file = tiny_oer_file(tmp_path, CAMPAIGN, experiments=12, approval="manual", batch_size=6)
    db = Database(served["MATLOOP_DATABASE_URL"])
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        try:
            page = browser.new_page(viewport=VIEWPORT)
            page.set_default_timeout(UI_MS)

            # 1. The deployment's "Run → Custom run" form, with the campaign file's path.
            page.goto(f"{ui}/deployments")
            page.get_by_text("campaign", exact=True).first.click()
            page.wait_for_url("**/deployments/deployment/**")
            page.get_by_role("button", name="Run", exact=True).click()
            page.get_by_text("Custom run").click()
            page.get_by_text("path of a campaign YAML file (on the machine running the flow)", exact=True).wait_for()
            page.get_by_role("button", name="str", exact=True).first.click()
            page.locator(".schema-form-property").filter(has_text="Path").locator("textarea").first.fill(
                str(campaign_file))
            _shot(page, "01-run-form.png")
            page.get_by_role("button", name="Submit").click()
            run = wait_for(lambda: _flow_run(ui), STEP_SECONDS, "the flow run started from the form")
            run_url = f"{ui}/runs/flow-run/{run['id']}"
            _mark("flow run created from the form")

            # 2. Its INFO logs reach the UI: the approval hint, with the exact command.
            first = wait_for(lambda: _waiting(db), STEP_SECONDS, "the first batch to wait for approval")
            wait_for(lambda: _state(ui, run["id"]) == "Suspended", STEP_SECONDS, "the run to suspend")
            _mark(f"batch {first} waits, the run is suspended")
            page.goto(run_url)
            hint = page.get_by_text(f"batch {first} waits for approval: `matloop approve {CAMPAIGN} --by NAME`")
            hint.first.wait_for()
            hint.first.scroll_into_view_if_needed()
            _shot(page, "02-logs.png")

            # The first batch is the space-filling initial design: approved as it is.
            dialog = _open_form(page, run_url)
            assert "no prediction yet" in dialog.inner_text()
            _field(dialog, "Approver").fill("   ")  # only spaces: refused, the run stays suspended
            dialog.get_by_role("button", name="Submit").click()
            page.wait_for_timeout(3000)
            assert dialog.is_visible() and _state(ui, run["id"]) == "Suspended"
            page.get_by_text("Validation failed for field 'approver'").first.wait_for()  # the server's refusal
            _field(dialog, "Approver").fill("ada")
            dialog.get_by_role("button", name="Submit").click()
            dialog.wait_for(state="hidden")

            # 3. The second batch has a model behind it: the form shows it, and one candidate is dropped by choosing.
            _mark(f"batch {first} approved in the form")
            second = wait_for(lambda: _waiting(db, after=first), 2 * STEP_SECONDS, "the second batch to wait")
            wait_for(lambda: _state(ui, run["id"]) == "Suspended", STEP_SECONDS, "the run to suspend again")
            _mark(f"batch {second} waits, the run is suspended again")
            with db.reading() as session:
                batch = session.get(BatchRecord, second)
                assert batch is not None
                ids = [item.candidate_id for item in batch.items]
            dialog = _open_form(page, run_url)
            description = dialog.inner_text()
            assert f"{CAMPAIGN} · batch {second}" in description
            items = [line for line in description.splitlines() if " · predicted " in line]
            assert [int(line.split(" · ", 1)[0]) for line in items] == ids, description  # one entry per candidate
            assert "predicted" in description and " V ·" in description  # mean ± std with the objective's units
            assert "Acquisition values are of different kinds in this batch" in description, description
            kinds = {line.split(": ", 1)[0].split(", ")[-1]: line for line in description.splitlines()
                     if line.split(": ", 1)[0].endswith(("qlogei", "thompson"))}
            assert "expected improvement" in kinds["qlogei"] and "sample drawn from" in kinds["thompson"], description
            assert sum(" · why: thompson: " in line for line in items) == 2, description
            assert "why:" in description and "budget left" in description
            link = dialog.get_by_role("link", name="this batch")
            assert link.get_attribute("href") == f"{ui}/artifacts/key/{CAMPAIGN}-batch"
            dropped = ids[-1]
            dialog.locator(".schema-form-property-array button").first.focus()
            page.keyboard.press("ArrowDown")
            options = page.locator(".p-select-option")
            options.first.wait_for()
            assert sorted(int(t) for t in options.all_inner_texts()) == sorted(ids)  # the batch's ids, no others
            options.filter(has_text=str(dropped)).first.click()
            dialog.get_by_text("Resume Flow Run").click()  # closes the choices, keeps the form
            _field(dialog, "Approver").fill("grace")
            _field(dialog, "Note").fill("drop the last one: too close to batch 1")
            dialog.get_by_text("Resume Flow Run").click()
            _shot(page, "03-approval-form.png")
            dialog.get_by_text("budget left").first.scroll_into_view_if_needed()  # the description's end
            _shot(page, "04-approval-form-details.png")
            dialog.get_by_role("button", name="Submit").click()
            dialog.wait_for(state="hidden")

            done = wait_for(lambda: (s := _state(ui, run["id"])) in ("Completed", "Failed", "Crashed") and s,
                            2 * STEP_SECONDS, "the resumed run to finish")
            assert done == "Completed", (tmp_path / "serve.log").read_text()[-3000:]
            _mark("the run completed")
        finally:
            browser.close()

    # 4. The decision, the note and the drop are stored ...
    with db.reading() as session:
        batch = session.get(BatchRecord, second)
        assert batch is not None
        assert batch.approver == "grace" and batch.note == "drop the last one: too close to batch 1"
        assert batch.status == "dispatched" and batch.decided_at is not None
        assert {item.candidate_id for item in batch.items if item.dropped} == {dropped}
        decided = session.scalars(select(EventRecord).where(EventRecord.kind == "batch_decided")).all()
        assert [(e.actor, e.payload["status"], e.payload["dropped"]) for e in decided] == [
            ("ada", "approved", []), ("grace", "edited", [dropped])]
        assert decided[1].payload["note"] == "drop the last one: too close to batch 1"
    db.dispose()

    # ... and `matloop history` shows them.
    history = run_matloop(["history", CAMPAIGN, "--format", "json"], served, 120)
    assert history.returncode == 0, history.stderr
    rows = [row for row in json.loads(history.stdout) if row["batch_id"] == second]
    assert rows and {row["approver"] for row in rows} == {"grace"}
    assert {row["candidate_id"] for row in rows if row["dropped"]} == {dropped}
    _mark("history read")
    assert {row["note"] for row in rows} == {"drop the last one: too close to batch 1"}
    assert {row["decision"] for row in rows} == {"edited"}


def test_screenshot_dir_is_in_the_docs() -> None:
    """The committed screenshots are the ones docs/running.md shows (and none is missing)."""
    shots = REPO / "docs" / "screenshots"
    text = (REPO / "docs" / "running.md").read_text()
    for name in ("01-run-form.png", "02-logs.png", "03-approval-form.png", "04-approval-form-details.png"):
        assert (shots / name).is_file(), name
        assert f"screenshots/{name}" in text, name
