"""Running ``matloop`` as a user does (a real process) and waiting on what it does, for end-to-end tests."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any, TypeVar

REPO = Path(__file__).resolve().parents[2]

T = TypeVar("T")


def matloop_env(*, database_url: str, data_dir: Path, prefect_api: str | None, **extra: str) -> dict[str, str]:
    """The environment of a ``matloop`` process: its database, data dir, Prefect API, one thread, quiet logs.

    Prefect logging settings of this process are not passed on: importing the CLI in-process (CliRunner tests)
    sets defaults such as ``PREFECT_LOGGING_HANDLERS_CONSOLE_LEVEL`` in ``os.environ``, and a child must get only
    the ones its test asks for.
    """
    inherited = {k: v for k, v in os.environ.items() if not k.startswith("PREFECT_LOGGING_")}
    env = {
        **inherited,
        "MATLOOP_DATABASE_URL": database_url,
        "MATLOOP_DATA_DIR": str(data_dir),
        "PREFECT_LOGGING_LEVEL": "WARNING",
        "OMP_NUM_THREADS": "1",
        "COLUMNS": "200",
        **extra,
    }
    if prefect_api is not None:
        env["PREFECT_API_URL"] = prefect_api
    return env


def matloop_argv(*args: str) -> list[str]:
    """``matloop ARGS`` with this interpreter (the console script may not be on PATH in every checkout)."""
    return [sys.executable, "-c", "from cli import main; main()", *args]


def run_matloop(args: Sequence[str], env: dict[str, str], timeout: float = 300) -> subprocess.CompletedProcess[str]:
    return subprocess.run(matloop_argv(*args), cwd=REPO, env=env, capture_output=True, text=True, timeout=timeout)


def wait_for(condition: Callable[[], T], seconds: float, what: str, interval: float = 0.5) -> T:
    """Poll ``condition`` until it returns something truthy (returned); fail the test after ``seconds``."""
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        value = condition()
        if value:
            return value
        time.sleep(interval)
    raise AssertionError(f"timed out after {seconds:.0f} s waiting for {what}")


#: How long a stopped test process gets to shut down cleanly. Alone, ``matloop serve`` and ``prefect server
#: start`` stop within 3 s of Ctrl-C; in the whole suite under CI some took the former 30 s grace in teardown, so
#: a longer wait only costs CI time (their clean shutdown is not what those tests check).
STOP_GRACE_SECONDS = 10.0


def stop_process_group(process: subprocess.Popen[Any], grace: float = STOP_GRACE_SECONDS) -> None:
    """Stop a process group a test started (``start_new_session=True``): Ctrl-C first, SIGKILL after ``grace``."""
    if process.poll() is not None:
        return
    try:
        os.killpg(process.pid, signal.SIGINT)
        process.wait(timeout=grace)
    except ProcessLookupError:
        return
    except subprocess.TimeoutExpired:
        try:
            os.killpg(process.pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
        process.wait(timeout=10)


__all__: list[Any] = ["REPO", "STOP_GRACE_SECONDS", "matloop_argv", "matloop_env", "run_matloop", "stop_process_group",
                      "wait_for"]
