"""``benchmarks/history_scale.py --quick`` fills both backends through the store and times the CLI on them."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]


@pytest.mark.slow
def test_history_scale_quick() -> None:
    done = subprocess.run([sys.executable, "benchmarks/history_scale.py", "--quick"], cwd=ROOT, capture_output=True,
                          text=True, timeout=600)
    assert done.returncode == 0, done.stderr[-3000:]
    out = done.stdout
    # 2,000 measurements plus the 2 candidates the approvers dropped (rows without a job)
    assert re.search(r"^sqlite +2,002 ", out, re.MULTILINE), out
    line = out.strip().splitlines()[-1]
    assert re.fullmatch(r"summary: rows=2002 csv_s=[0-9.]+ table_s=[0-9.]+ peak_mb=\d+ worst_of=sqlite(,postgres)?",
                        line), out
    if "postgres: skipped" not in out:
        assert re.search(r"^postgres +2,002 ", out, re.MULTILINE) and line.endswith("worst_of=sqlite,postgres"), out
