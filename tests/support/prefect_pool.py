"""A real Prefect server on PostgreSQL and ``prefect worker`` processes on a work pool, as a deployment runs them.

Each process is started in its own process group, so stopping it also stops what it started (the server's
uvicorn, a worker's flow-run processes); ``kill`` is what a machine that dies does to a worker.  Used by the
work-pool tests and ``benchmarks/soak.py``.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx

from tests.support.postgres import free_port
from tests.support.processes import REPO, STOP_GRACE_SECONDS, wait_for

START_SECONDS = 180


def prefect_argv(*args: str) -> list[str]:
    prefect = Path(sys.executable).with_name("prefect")
    return [str(prefect) if prefect.exists() else sys.executable, *([] if prefect.exists() else ["-m", "prefect"]),
            *args]


@dataclass
class Process:
    """A process group this test (or benchmark) started, with its log file."""

    name: str
    popen: subprocess.Popen[bytes]
    log: Path

    @property
    def pid(self) -> int:
        return self.popen.pid

    def alive(self) -> bool:
        return self.popen.poll() is None

    def tail(self, chars: int = 3000) -> str:
        return self.log.read_text(errors="replace")[-chars:] if self.log.exists() else ""

    def kill(self) -> None:
        """SIGKILL the process and everything it started, at once: no shutdown, no goodbye to the API (a machine
        that dies). Prefect starts a worker's flow runs in sessions of their own, so the group is not enough."""
        import psutil

        if not self.alive():
            return
        try:
            tree = psutil.Process(self.pid).children(recursive=True)
        except psutil.Error:
            tree = []
        os.killpg(self.pid, signal.SIGKILL)
        for child in tree:
            try:
                child.kill()
            except psutil.Error:
                pass
        self.popen.wait(timeout=30)

    def stop(self) -> None:
        """Ctrl-C the group (a clean shutdown), then SIGKILL whatever is left of it and of what it started."""
        import psutil

        try:
            tree = psutil.Process(self.pid).children(recursive=True) if self.alive() else []
        except psutil.Error:
            tree = []
        if self.alive():
            try:
                os.killpg(self.pid, signal.SIGINT)
                self.popen.wait(timeout=STOP_GRACE_SECONDS)
            except subprocess.TimeoutExpired:
                pass
        try:
            os.killpg(self.pid, signal.SIGKILL)  # children the leader left behind
        except ProcessLookupError:
            pass
        if self.popen.poll() is None:
            self.popen.wait(timeout=30)
        for child in tree:
            try:
                child.kill()
            except psutil.Error:
                pass


def start(name: str, argv: list[str], env: dict[str, str], log: Path) -> Process:
    with log.open("wb") as out:
        popen = subprocess.Popen(argv, cwd=REPO, env=env, stdout=out, stderr=subprocess.STDOUT,
                                 start_new_session=True)
    return Process(name, popen, log)


@dataclass
class PrefectServer:
    url: str  # the API URL (…/api)
    process: Process


def start_prefect_server(database_url: str, home: Path, log: Path) -> PrefectServer:
    """``prefect server start`` on ``database_url`` (a PostgreSQL URL of any driver; asyncpg is used)."""
    port = free_port()
    url = f"http://127.0.0.1:{port}/api"
    env = {k: v for k, v in os.environ.items() if not k.startswith("PREFECT_")}
    env.update(
        PREFECT_HOME=str(home), PREFECT_UI_ENABLED="false", PREFECT_SERVER_ANALYTICS_ENABLED="false",
        PREFECT_API_DATABASE_CONNECTION_URL="postgresql+asyncpg://" + database_url.split("://", 1)[1],
        PREFECT_LOGGING_LEVEL="WARNING",
    )
    process = start("prefect-server", prefect_argv("server", "start", "--host", "127.0.0.1", "--port", str(port)),
                    env, log)
    try:
        wait_for(lambda: _healthy(url) or not process.alive(), START_SECONDS, "`prefect server start`")
        assert process.alive(), process.tail()
    except BaseException:
        process.stop()
        raise
    return PrefectServer(url, process)


def _healthy(api: str) -> bool:
    try:
        return httpx.get(f"{api}/health", timeout=2).status_code == 200
    except httpx.HTTPError:
        return False


@dataclass
class Workers:
    """Named ``prefect worker start`` processes on one pool."""

    pool: str
    processes: dict[str, Process] = field(default_factory=dict)

    def stop(self) -> None:
        for process in self.processes.values():
            process.stop()


def start_worker(pool: str, name: str, env: dict[str, str], log: Path, limit: int | None = None) -> Process:
    """``prefect worker start --pool POOL --name NAME``: polls every second, its logs (INFO) reach the API."""
    worker_env = {**env, "PREFECT_WORKER_QUERY_SECONDS": "1", "PREFECT_WORKER_HEARTBEAT_SECONDS": "5",
                  "PREFECT_LOGGING_LEVEL": "INFO", "PYTHONPATH": str(REPO)}
    argv = prefect_argv("worker", "start", "--pool", pool, "--name", name, "--type", "process")
    if limit is not None:
        argv += ["--limit", str(limit)]
    return start(name, argv, worker_env, log)


def online_workers(pool: str) -> set[str]:
    from prefect.client.orchestration import get_client
    from prefect.client.schemas.filters import WorkerFilter, WorkerFilterStatus

    with get_client(sync_client=True) as client:
        workers = client.read_workers_for_work_pool(
            pool, worker_filter=WorkerFilter(status=WorkerFilterStatus(any_=["ONLINE"])))
    return {w.name for w in workers}


def worker_of(flow_run_id: Any) -> str | None:
    """The worker that runs (ran) a flow run: the run's ``worker:<name>`` tag, which the campaign flow sets."""
    from prefect.client.orchestration import get_client

    with get_client(sync_client=True) as client:
        tags = client.read_flow_run(flow_run_id).tags
    return next((tag.removeprefix("worker:") for tag in tags if tag.startswith("worker:")), None)
