"""``benchmarks/multifidelity.py --quick`` runs end to end through the campaign's selection code and prints its
summary line."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def test_multifidelity_benchmark_quick() -> None:
    done = subprocess.run([sys.executable, "benchmarks/multifidelity.py", "--quick"], cwd=ROOT, capture_output=True,
                          text=True, timeout=600, env={**os.environ, "OMP_NUM_THREADS": "1"})
    assert done.returncode == 0, done.stderr[-3000:]
    lines = done.stdout.strip().splitlines()
    assert re.fullmatch(r"summary: problems=[23] cost_ratio_mean=[0-9.]+ wins=\d/[23]", lines[-1]), done.stdout
    assert "| hartmann |" in done.stdout and "| microstructure |" in done.stdout
    assert re.search(r"hartmann: cost ratio \(multi / single\) [0-9.]+", done.stdout)
    # the development problems: their own line, before the report set's summary
    assert re.fullmatch(r"dev: problems=3 cost_ratio_mean=[0-9.]+ wins=\d/3", lines[-2]), done.stdout
    assert "| branin | dev |" in done.stdout and "| hartmann-shifted | dev |" in done.stdout
    assert "| branin-target | dev |" in done.stdout
