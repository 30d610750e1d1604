"""``benchmarks/ask_speed.py --quick``: an ask at campaign defaults (through the ask/tell API) against BayBE's."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
DATA = ROOT.parent / "shared" / "data"


@pytest.mark.slow
@pytest.mark.skipif(not (DATA / "oer_plates").is_dir(), reason=f"shared data not found at {DATA / 'oer_plates'}")
def test_ask_speed_quick_times_both_asks_and_baybe_on_the_same_pools() -> None:
    done = subprocess.run([sys.executable, "benchmarks/ask_speed.py", "--quick", "--verbose"], cwd=ROOT,
                          capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stderr[-3000:]
    out = done.stdout
    number = r"[0-9]+\.[0-9]{3}"
    for pool in (100, 1000):
        assert re.search(rf"^pool= +{pool} n= +20 oer_3496 +redecide_s= *{number} ask_s= *{number} "
                         rf"\((kept|re-decided) *\) baybe_s= *{number} ratio= *{number}$", out, re.M), out
    # the second ask starts from the first one's fit: its model version says which verdict it used, and why
    assert re.search(r"pool=100 n=20: auto: (gp|ensemble) cv-NLL .*(kept from the verdict on 16 results|"
                     r"re-decided: output 0 grew from 16 to 20)", out), out
    assert re.fullmatch(rf"summary: ask_s={number} baybe_s={number} ratio={number} worst_ratio={number} "
                        rf"redecide_s={number}",
                        out.strip().splitlines()[-1]), out
