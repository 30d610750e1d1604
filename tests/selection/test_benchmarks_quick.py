"""The selection benchmarks' --quick forms run end to end and print their summary lines."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
DATA = ROOT.parent / "shared" / "data"


def _needs(folder: str) -> pytest.MarkDecorator:
    """Skip where the shared data set the benchmark replays is not beside the checkout (CI places it there)."""
    return pytest.mark.skipif(not (DATA / folder).is_dir(), reason=f"shared data not found at {DATA / folder}")


def _run(script: str, *args: str, quick: bool = True) -> str:
    flags = ["--quick"] if quick else []
    done = subprocess.run([sys.executable, f"benchmarks/{script}", *flags, *args], cwd=ROOT, capture_output=True,
                          text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-3000:]
    return done.stdout


@pytest.mark.slow
@_needs("hybrid_perovskites")
def test_efficiency_quick(tmp_path):
    """The replay through the ask/tell API at campaign defaults, one dev and one held-out problem, against BayBE,
    and its picture (``--plot``) drawn from the runs it made."""
    picture = tmp_path / "quick.png"
    out = _run("efficiency.py", "--plot", str(picture))
    *_, line, drawn, _wall = out.strip().splitlines()
    assert drawn == f"# picture written to {picture}" and picture.read_bytes().startswith(b"\x89PNG")
    assert re.fullmatch(
        r"summary: datasets=2 af_top_mean=[0-9.]+ vs_baybe_experiments_ratio=([0-9.]+ wins=\d/2|nan wins=0/0) "
        r"heldout_ratio=([0-9.]+|nan) heldout_max=([0-9.]+|nan)", line
    ), out
    assert re.search(r"^perovskites +dev +4 +\S+ +\S+ +[0-9.]+$", out, re.M), out
    assert re.search(r"^branin +heldout +4 +\S+ +\S+ +[0-9.]+$", out, re.M), out


@pytest.mark.slow
def test_acquisition_speed_quick():
    out = _run("acquisition_speed.py")
    assert re.search(r"summary: pool=\d+ n_obs=\d+ q=4 seconds=[0-9.]+ vs_naive=>?[0-9.]+", out), out


@pytest.mark.slow
@_needs("oer_plates")
def test_winners_curse_quick():
    out = _run("winners_curse.py")
    assert re.search(r"summary: draws=4 model_better=\d model_worse=\d true_best_reading=[0-9.]+ true_model_pick=[0-9.]+",
                     out), out


@_needs("oer_plates")
def test_demo_on_plate_grades_a_batches_file_in_campaign_order(tmp_path):
    """Dropped and failed rows are not experiments; the plate's best counts where it was first measured."""
    import pandas as pd

    plate = pd.read_csv(DATA / "oer_plates" / "oer_plate_3496.csv").sort_values("overpotential")
    cols = ["ni_load", "fe_load", "co_load", "mn_load", "ce_load", "la_load"]
    best, third, poor = plate.iloc[0], plate.iloc[2], plate.iloc[-1]
    rows = [(1, poor, False, False, 0.50), (1, third, True, False, 0.30), (2, third, False, True, None),
            (2, best, False, False, 0.36), (3, third, False, False, 0.33), (3, best, False, False, 0.35)]
    frame = pd.DataFrame([
        {"batch": b, "dropped": dropped, "failed": failed, "overpotential": value,
         **{f"x.{c}": row[c] for c in cols}} for b, row, dropped, failed, value in rows
    ])
    frame.to_csv(tmp_path / "batches.csv", index=False)
    out = _run("demo_on_plate.py", str(tmp_path / "batches.csv"), quick=False)
    assert "summary: experiments=4 on_plate=3 best_plate_rank=1 at_experiment=2 best_reading_batch=3" in out, out
    assert re.search(r"plate rank +3: .* first measured at experiment +3 \(batch 3\)", out), out


@_needs("oer_plates")
def test_demo_on_plate_quick():
    out = _run("demo_on_plate.py")
    assert re.search(r"summary: experiments=30 on_plate=30 best_plate_rank=\d+ at_experiment=\d+ best_reading_batch=[1-3]",
                     out), out
