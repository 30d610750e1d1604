"""The selection benchmarks' --quick forms run end to end and print their summary lines."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
DATA = ROOT.parent / "shared" / "data"


def _run(script: str) -> str:
    done = subprocess.run([sys.executable, f"benchmarks/{script}", "--quick"], cwd=ROOT, capture_output=True,
                          text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-3000:]
    return done.stdout


@pytest.mark.slow
def test_efficiency_quick():
    if not (DATA / "oer_plates").is_dir():
        pytest.skip(f"shared data not found at {DATA} (the efficiency benchmark replays those pools)")
    out = _run("efficiency.py")
    line = out.strip().splitlines()[-2]
    assert re.fullmatch(
        r"summary: datasets=2 af_top_mean=[0-9.]+ vs_baybe_experiments_ratio=([0-9.]+|nan) wins=\d/2", line
    ), out
    assert "matloop" in out


@pytest.mark.slow
def test_acquisition_speed_quick():
    out = _run("acquisition_speed.py")
    assert re.search(r"summary: pool=\d+ n_obs=\d+ q=4 seconds=[0-9.]+ vs_naive=>?[0-9.]+", out), out
