"""A killed ``matloop run`` leaves no orphaned Prefect API server behind (ephemeral mode, no PREFECT_API_URL).

Both cases are real processes: ``matloop run`` waits at a manual approval gate (a stable moment, with its
ephemeral server up), then gets SIGTERM (it pauses the campaign and stops the server) or SIGKILL (it runs
nothing; the kernel's parent-death signal stops the server, see cli/ephemeral.py).
"""

from __future__ import annotations

import os
import signal
import subprocess
from pathlib import Path

import pytest
from sqlalchemy import select

from agent.spec import dump_campaign
from agent.store import Database
from agent.store.models import CampaignRecord
from tests.loop.conftest import branin_spec
from tests.support.processes import REPO, matloop_argv, matloop_env, wait_for


def _children(pid: int) -> list[int]:
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text()
        except OSError:
            continue
        if int(stat.rpartition(")")[2].split()[1]) == pid:
            found.append(int(entry.name))
    return found


def _cmdline(pid: int) -> str:
    try:
        return (Path("/proc") / str(pid) / "cmdline").read_bytes().replace(b"\0", b" ").decode()
    except OSError:
        return ""


def _alive(pid: int) -> bool:
    """Running (a zombie waiting to be reaped by whoever adopted it is dead)."""
    try:
        stat = (Path("/proc") / str(pid) / "stat").read_text()
    except OSError:
        return False
    return stat.rpartition(")")[2].split()[0] != "Z"


def _status(url: str, name: str) -> str | None:
    db = Database(url)
    try:
        with db.reading() as session:
            return session.scalar(select(CampaignRecord.status).where(CampaignRecord.name == name))
    except Exception:  # noqa: BLE001 - not created yet
        return None
    finally:
        db.dispose()


@pytest.mark.slow
@pytest.mark.skipif(not Path("/proc/self/stat").exists(), reason="reads processes from /proc (Linux)")
@pytest.mark.parametrize("how", [signal.SIGTERM, signal.SIGKILL], ids=["SIGTERM", "SIGKILL"])
def test_a_killed_run_leaves_no_prefect_server(how: signal.Signals, sqlite_url: str, tmp_path: Path) -> None:
    spec = branin_spec(name="branin-orphan", approval={"policy": "manual"})  # in-process lab; waits at the gate
    path = tmp_path / "campaign.yaml"
    path.write_text(dump_campaign(spec))
    env = matloop_env(database_url=sqlite_url, data_dir=tmp_path / "data", prefect_api=None,
                      PREFECT_HOME=str(tmp_path / "prefect-home"))
    env.pop("PREFECT_API_URL", None)  # ephemeral mode: the run starts its own API server
    log = (tmp_path / "run.log").open("w")
    process = subprocess.Popen(matloop_argv("run", str(path)), cwd=REPO, env=env, stdout=log,
                               stderr=subprocess.STDOUT)
    server: int | None = None
    try:
        wait_for(lambda: _status(sqlite_url, spec.name) == "waiting" or process.poll() is not None, 300,
                 "the run to wait for approval")
        assert process.poll() is None, (tmp_path / "run.log").read_text()[-3000:]
        servers = [pid for pid in _children(process.pid) if "uvicorn" in _cmdline(pid)]
        assert len(servers) == 1, [(pid, _cmdline(pid)) for pid in _children(process.pid)]
        server = servers[0]
        process.send_signal(how)
        code = process.wait(timeout=120)
        wait_for(lambda: not _alive(server), 30, f"the Prefect server {server} to stop after {how.name}")
        if how == signal.SIGTERM:  # a graceful end: told how to resume, the campaign paused and resumable
            assert code == 130, (tmp_path / "run.log").read_text()[-3000:]
            assert "--resume" in (tmp_path / "run.log").read_text()
            assert _status(sqlite_url, spec.name) == "paused"
        else:
            assert code == -signal.SIGKILL
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()
        if server is not None and _alive(server):
            os.kill(server, signal.SIGKILL)  # do not leave it behind even when the test fails
        log.close()
