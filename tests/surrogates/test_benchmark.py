"""The surrogate benchmark runs in its quick form and ends with one parseable summary line per data set."""

from __future__ import annotations

import math
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
DATA = REPO.parent / "shared" / "data"
SUMMARY = re.compile(
    r"^summary: dataset=(\S+) best=(gp|ensemble|random_forest) rmse=(\S+) nll=(\S+) cov95=(\S+) fit_s_1000=(\S+)$"
)


@pytest.mark.slow
@pytest.mark.skipif(not DATA.is_dir(), reason=f"the shared reference data is not at {DATA}")
def test_quick_benchmark_prints_a_table_and_summaries() -> None:
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    proc = subprocess.run(
        [sys.executable, str(REPO / "benchmarks" / "surrogates.py"), "--quick"],
        capture_output=True, text=True, timeout=300, cwd=REPO, env=env,
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    lines = proc.stdout.strip().splitlines()
    assert "| dataset | model |" in proc.stdout
    summaries = [SUMMARY.match(line) for line in lines[-3:]]
    assert all(summaries), lines[-3:]
    assert [m.group(1) for m in summaries] == ["oer_plates", "mos2_bandgap", "perov5_heat"]
    for m in summaries:
        rmse, nll, cov95 = float(m.group(3)), float(m.group(4)), float(m.group(5))
        assert rmse > 0 and math.isfinite(nll) and 0.5 <= cov95 <= 1.0
        assert math.isnan(float(m.group(6)))  # quick mode does not time 1,000 points, and says so
    for model in ("gp", "ensemble", "random_forest"):
        assert sum(f"| {model} |" in line for line in lines) == 3
