"""The MLIP throughput benchmark runs in its quick form: serial, batched and Dask rows, and one summary line."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
SUMMARY = re.compile(r"^summary: relax_per_s=(\S+) vs_serial=(\S+) two_workers_speedup=(\S+)$")


@pytest.mark.slow
def test_quick_mlip_throughput_benchmark() -> None:
    env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONPATH": str(REPO)}
    proc = subprocess.run(
        [sys.executable, str(REPO / "benchmarks" / "mlip_throughput.py"), "--quick"],
        capture_output=True, text=True, timeout=900, cwd=REPO, env=env,
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    lines = proc.stdout.strip().splitlines()
    for cells, mode in (("5", "one at a time"), ("5", "batched"), ("all", "batched, 1 Dask worker"),
                        ("all", "batched, 2 Dask workers")):
        assert any(line.split(maxsplit=1)[1].startswith(mode) for line in lines if line[:5].strip() == cells), mode
    match = SUMMARY.match(lines[-1])
    assert match, lines[-1]
    assert all(float(v) > 0 for v in match.groups())
