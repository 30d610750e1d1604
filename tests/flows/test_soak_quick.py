"""``benchmarks/soak.py --quick``: 3 campaigns on a work pool of two workers, a worker and the database restarted
under them, and nothing lost or run twice (the script exits 1 otherwise)."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]


@pytest.mark.slow
def test_soak_quick_loses_nothing_and_runs_nothing_twice(tmp_path: Path) -> None:
    done = subprocess.run([sys.executable, "benchmarks/soak.py", "--quick", "--keep-logs", str(tmp_path)], cwd=ROOT,
                          capture_output=True, text=True, timeout=900)
    out = done.stdout
    assert done.returncode == 0, out[-4000:] + done.stderr[-3000:]
    assert re.search(r"SIGKILL worker-\d with its \d+ flow run", out), out  # the restarts did happen
    assert "matloop's PostgreSQL stops abruptly" in out and "PostgreSQL is back" in out, out
    assert "campaigns 3 (3 stopped)" in out, out
    # no driver error reached a run past the outage retries, and no run ended in a traceback (a refusal included)
    assert re.search(r"raw driver errors 0, tracebacks 0$", out, re.MULTILINE), out
    line = out.strip().splitlines()[-1]
    assert re.fullmatch(r"summary: campaigns=3 lost=0 duplicated=0 p95_step_s=[0-9.]+ mem_growth_mb=-?\d+", line), out
