"""The benchmark's ``--quick`` form runs end to end and prints the issue's summary line."""

import re
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
DATA = ROOT.parent / "shared" / "data" / "mos2_bandgap" / "data_x.csv"


@pytest.mark.slow
def test_quick_benchmark_prints_summary():
    if not DATA.exists():
        pytest.skip(f"shared MoS2 data not found at {DATA} (CI places shared/ beside the checkout)")
    proc = subprocess.run(
        [sys.executable, str(ROOT / "benchmarks" / "inverse_design.py"), "--quick"],
        capture_output=True, text=True, timeout=400, cwd=ROOT,
    )
    assert proc.returncode == 0, proc.stderr[-2000:]
    last = proc.stdout.strip().splitlines()[-1]
    m = re.fullmatch(
        r"summary: cinn_mae_0=(\S+) cinn_mae_05=(\S+) cinn_mae_1=(\S+) cinn_s_10k=(\S+) janus_r2=(\S+) "
        r"janus_inverse_rel_err=(\S+)",
        last,
    )
    assert m, last
    values = [float(v) for v in m.groups()]
    assert all(v == v for v in values)  # no NaN
    assert values[0] < 0.2 and values[1] < 0.4 and values[2] < 0.4  # far better than random designs
    assert "MoS2 band gap" in proc.stdout and "Janus inverse design" in proc.stdout


@pytest.mark.slow
def test_cinn_variants_quick_compares_plain_and_bootstrapped_members():
    """The ablation script behind RESULTS-inverse's bootstrap and ranking tables runs both ways and prints its summary."""
    if not DATA.exists():
        pytest.skip(f"shared MoS2 data not found at {DATA} (CI places shared/ beside the checkout)")
    for flag, bootstrap, ranking in (([], "True", "16"), (["--no-bootstrap", "--ranking-members", "0"], "False", "0")):
        proc = subprocess.run(
            [sys.executable, str(ROOT / "benchmarks" / "cinn_variants.py"), "--quick", *flag],
            capture_output=True, text=True, timeout=300, cwd=ROOT,
        )
        assert proc.returncode == 0, proc.stderr[-2000:]
        last = proc.stdout.strip().splitlines()[-1]
        m = re.fullmatch(r"summary: init=1 bootstrap=(True|False) ranking=(\d+) preselect=6 spread_weight=0 "
                         r"mae_05=(\S+) mae_1=(\S+) s_10k=(\S+)", last)
        assert m and (m.group(1), m.group(2)) == (bootstrap, ranking), last
        assert 0 < float(m.group(3)) < 0.4 and 0 < float(m.group(4)) < 0.4
