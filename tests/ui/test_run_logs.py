"""``matloop run``'s logs: at INFO in the Prefect API (the UI's log tab), while its terminal shows no log lines.

A real ``matloop run`` subprocess against a real Prefect server, with the CLI's own logging defaults (the
environment has no ``PREFECT_LOGGING_*``): before, the CLI set ``PREFECT_LOGGING_LEVEL=WARNING``, so nothing of a
run reached the UI.  Served runs are checked in the browser (``test_cockpit_browser.py``).
"""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.support.processes import matloop_env, run_matloop
from tests.ui.campaign_files import tiny_oer_file


@pytest.mark.slow
def test_a_cli_run_logs_at_info_to_the_api_and_keeps_its_terminal_clean(prefect_api: str, tmp_path: Path) -> None:
    from prefect.client.orchestration import get_client
    from prefect.client.schemas.filters import FlowRunFilter, FlowRunFilterName, LogFilter, LogFilterFlowRunId

    campaign_file = tiny_oer_file(tmp_path, "cli-logs", experiments=4, approval="auto")
    env = matloop_env(database_url=f"sqlite:///{tmp_path / 'm.sqlite'}", data_dir=tmp_path / "data",
                      prefect_api=prefect_api)
    env = {k: v for k, v in env.items() if not k.startswith("PREFECT_LOGGING_")}
    result = run_matloop(["run", str(campaign_file)], env, 240)
    assert result.returncode == 0, result.stderr[-3000:]
    assert "cli-logs: stopped — budget spent" in result.stdout
    assert " | INFO " not in result.stdout + result.stderr  # the console handler stays at WARNING

    with get_client(sync_client=True) as client:
        runs = client.read_flow_runs(flow_run_filter=FlowRunFilter(
            name=FlowRunFilterName(any_=["campaign-cli-logs"])))
        assert len(runs) == 1
        logs = client.read_logs(log_filter=LogFilter(flow_run_id=LogFilterFlowRunId(any_=[runs[0].id])))
    info = [log.message for log in logs if log.level == 20]
    assert any(message.startswith("Beginning flow run") for message in info), info
    assert sum(message.startswith("Finished in state Completed") for message in info) >= 5, info  # the steps
