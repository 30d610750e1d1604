"""Killing the lab process mid-run and starting it again on the same state file loses nothing."""

from __future__ import annotations

import os
import queue
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest

from lab_adapters.simlab.client import SimLabAdapter
from matloop.types import AdapterError, JobStatus

from .conftest import TOKEN, branin_job


def matloop_command() -> list[str]:
    script = Path(sys.executable).parent / "matloop"
    return [str(script)] if script.exists() else [sys.executable, "-c", "from cli import main; main()"]


@contextmanager
def lab_process(state: Path, port: int = 0) -> Iterator[tuple[subprocess.Popen[str], str]]:
    """``matloop simlab serve`` as a real subprocess; yields (process, url) once it listens."""
    command = matloop_command() + [
        "simlab", "serve", "--port", str(port), "--state", str(state), "--token", TOKEN, "--scenario", "branin",
        "--time-scale", "1e-3", "--instrument", "evaluator=2", "--failure-rate", "0.1", "--seed", "3",
    ]  # fmt: skip
    process = subprocess.Popen(
        command, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, start_new_session=True
    )
    lines: queue.Queue[str] = queue.Queue()
    threading.Thread(target=lambda: [lines.put(line) for line in process.stdout], daemon=True).start()  # type: ignore[union-attr]
    try:
        deadline = time.monotonic() + 60
        seen = []
        while True:
            try:
                line = lines.get(timeout=max(0.1, deadline - time.monotonic()))
            except queue.Empty:
                raise AssertionError(f"the lab did not start within 60 s; it said: {''.join(seen)}") from None
            seen.append(line)
            if line.startswith("simlab listening on "):
                yield process, line.split()[-1]
                break
            if process.poll() is not None and lines.empty():
                raise AssertionError(f"the lab exited with {process.returncode}: {''.join(seen)}")
    finally:
        if process.poll() is None:
            os.killpg(process.pid, signal.SIGTERM)
        process.wait(timeout=15)


def test_a_killed_lab_restarts_with_every_experiment_and_result(tmp_path: Path) -> None:
    state = tmp_path / "lab.sqlite"
    jobs = [branin_job(float(i % 15) - 5.0, float(i // 15) * 7.0) for i in range(30)]
    with lab_process(state) as (first, url):
        port = int(url.rsplit(":", 1)[1])
        adapter = SimLabAdapter(url, TOKEN, max_retries=3, backoff=0.01, backoff_max=0.05)
        ids = [adapter.submit(job) for job in jobs]
        time.sleep(1.0)  # 30 jobs x 0.1 lab h on 2 evaluators take 5.4 s: kill about a fifth of the way
        before = adapter.poll(ids)
        finished_before = {i: adapter.fetch(i) for i, s in before.items() if s.is_terminal}
        os.killpg(first.pid, signal.SIGKILL)  # no clean shutdown
        first.wait(timeout=10)
    open_at_kill = [i for i, s in before.items() if not s.is_terminal]
    assert open_at_kill and finished_before, f"the kill should land mid-run: {before}"
    with pytest.raises(AdapterError) as down:
        adapter.poll(ids)
    assert down.value.transient

    with lab_process(state, port) as (_second, url_again):
        assert url_again == url
        statuses = adapter.poll(ids)
        deadline = time.monotonic() + 30
        while not all(s.is_terminal for s in statuses.values()):
            assert time.monotonic() < deadline, statuses
            time.sleep(0.05)
            statuses = adapter.poll(ids)
        after = {i: adapter.fetch(i) for i in ids}
        assert [adapter.submit(job) for job in jobs] == ids  # the restarted lab still knows every key
        new_id = adapter.submit(branin_job(0.5, 0.5))
        stats = adapter.stats()
        adapter.close()

    assert new_id == ids[0].removesuffix("000001") + "000031"  # the restarted lab keeps its ids and numbering
    for external_id, result in finished_before.items():
        assert after[external_id] == result  # results from before the kill are unchanged
    assert set(statuses.values()) <= {JobStatus.SUCCEEDED, JobStatus.FAILED}
    assert all(after[i].properties["y"].std is not None for i in ids if after[i].status is JobStatus.SUCCEEDED)
    assert stats["experiments"] == 31
    assert stats["executions_max_per_experiment"] == 1
    assert stats["counters"]["idempotent_replays"] >= 30
