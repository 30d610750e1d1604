"""benchmarks/efficiency_pooled.py: per-seed files merged, paired with BayBE, summarised like efficiency.py."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT))

from benchmarks.efficiency_pooled import load_runs, paired, ratio_interval  # noqa: E402


def _file(path: Path, dataset: str, budget: int, matloop: list[int], baybe: list[int]) -> Path:
    runs = [{"dataset": dataset, "q": 4, "strategy": name, "seed": seed, "n_best": b, "n_top": 5}
            for name, values in (("matloop", matloop), ("baybe", baybe)) for seed, b in enumerate(values)]
    path.write_text(json.dumps({"budget": budget, "n_init": 4, "runs": runs, "random_top": {dataset: 50.0}}))
    return path


def test_files_from_parallel_processes_give_one_summary(tmp_path):
    a = _file(tmp_path / "a.json", "oer_3496", 250, [10, 20, 30, 251], [20, 40, 60, 251])
    b = _file(tmp_path / "b.json", "branin", 250, [100, 251, 251], [251, 251, 90])
    done = subprocess.run([sys.executable, "benchmarks/efficiency_pooled.py", str(a), str(b)], cwd=ROOT,
                          capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    lines = done.stdout.strip().splitlines()
    row_a = next(line for line in lines if line.startswith("oer_3496"))
    assert row_a.split()[1:4] == ["25", "50", "0.50"]  # medians of the four runs each, and their ratio
    assert "3 / 0 / 1" in row_a and "3 / 3 of 4" in row_a  # fewer / more / tie; found within 250
    row_b = next(line for line in lines if line.startswith("branin"))
    assert row_b.split()[1:4] == [">250", ">250", "1.00"]
    # (0.5 + 1.0) / 2; af_top = 50 / median n_top (5) for the one batch size of each dataset; the plate is a dev
    # problem (benchmarks/problems.py SPLIT), so the held-out ratio is Branin's alone
    assert lines[-1] == ("summary: datasets=2 af_top_mean=10.00 vs_baybe_experiments_ratio=0.750 wins=1/2 "
                         "heldout_ratio=1.000 heldout_max=1.000")


def test_runs_measured_with_different_budgets_are_refused(tmp_path):
    a = _file(tmp_path / "a.json", "plate_a", 150, [10], [20])
    b = _file(tmp_path / "b.json", "branin", 250, [10], [20])
    with pytest.raises(SystemExit, match="different budgets"):
        load_runs([a, b])


def test_a_run_in_two_files_is_refused(tmp_path):
    a = _file(tmp_path / "a.json", "plate_a", 150, [10], [20])
    b = _file(tmp_path / "b.json", "plate_a", 150, [12], [20])
    with pytest.raises(SystemExit, match="more than one file"):
        load_runs([a, b])



@pytest.mark.parametrize("text, says", [
    ("{not json", "is not a per-seed file written by efficiency.py --per-seed"),
    ('{"budget": 150, "n_init": 4, "runs": [{"dataset": "x", "q": 0}]}', "runs.0.q"),
    ('{"budget": "many", "n_init": 4, "runs": []}', "budget"),
])
def test_a_malformed_file_is_refused_in_one_sentence(tmp_path, text, says):
    path = tmp_path / "bad.json"
    path.write_text(text)
    with pytest.raises(SystemExit, match=says) as refused:
        load_runs([path])
    assert "\n" not in str(refused.value)


def test_files_written_before_random_top_was_recorded_still_load(tmp_path):
    path = _file(tmp_path / "old.json", "branin", 250, [10, 30], [20, 20])
    data = json.loads(path.read_text())
    del data["random_top"]
    path.write_text(json.dumps(data))
    runs, budget, random_top = load_runs([path])
    assert (len(runs), budget, random_top) == (4, 250, {})


def test_problems_only_one_strategy_ran_are_left_out_of_the_table_and_the_summary(tmp_path):
    ours = _file(tmp_path / "ours.json", "branin", 250, [10, 30], [])
    theirs = tmp_path / "theirs.json"
    runs = [{"dataset": d, "q": 4, "strategy": "baybe", "seed": seed, "n_best": 20, "n_top": 5}
            for d in ("branin", "hartmann6") for seed in range(2)]
    theirs.write_text(json.dumps({"budget": 250, "n_init": 4, "runs": runs, "random_top": {"hartmann6": 90.0}}))
    done = subprocess.run([sys.executable, "benchmarks/efficiency_pooled.py", str(ours), str(theirs)], cwd=ROOT,
                          capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    assert "hartmann6" not in done.stdout and "nan" not in done.stdout and "Warning" not in done.stderr
    assert done.stdout.strip().splitlines()[-1].startswith("summary: datasets=1 ")
    alone = subprocess.run([sys.executable, "benchmarks/efficiency_pooled.py", str(ours)], cwd=ROOT,
                           capture_output=True, text=True, timeout=120)
    assert alone.returncode == 1 and alone.stderr.strip() == (
        "the files hold no run (problem, batch size, seed) that both matloop and BayBE made")


def test_seeds_only_one_strategy_ran_are_left_out_of_the_medians(tmp_path):
    """A BayBE replay cut short covers fewer seeds than matloop's: the medians and the ratio use the shared seeds."""
    both = _file(tmp_path / "both.json", "branin", 250, [10, 30, 200, 200], [20, 40])
    done = subprocess.run([sys.executable, "benchmarks/efficiency_pooled.py", str(both)], cwd=ROOT,
                          capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    row = next(line for line in done.stdout.splitlines() if line.startswith("branin"))
    assert row.split()[1:4] == ["20", "30", "0.67"]  # seeds 0-1 only: medians 20 and 30, not 115 for matloop
    assert "2 / 0 / 0" in row


def test_the_interval_resamples_pairs():
    ours, theirs = paired([
        {"dataset": "p", "q": 1, "seed": s, "strategy": n, "n_best": v}
        for s, (m, b) in enumerate([(10, 20), (20, 40), (30, 60)]) for n, v in (("matloop", m), ("baybe", b))
    ], "p")
    assert list(ours) == [10, 20, 30] and list(theirs) == [20, 40, 60]
    assert ratio_interval(ours, theirs) == (0.5, 0.5)  # every resample keeps matloop at half of BayBE


def _matloop_file(path: Path, budget: int, by_dataset: dict[str, list[int]]) -> Path:
    runs = [{"dataset": dataset, "q": 4, "strategy": "matloop", "seed": seed, "n_best": b, "n_top": 5}
            for dataset, values in by_dataset.items() for seed, b in enumerate(values)]
    path.write_text(json.dumps({"budget": budget, "n_init": 4, "runs": runs, "random_top": {}}))
    return path


def test_a_variant_is_paired_with_a_reference_run_by_run(tmp_path):
    variant = _matloop_file(tmp_path / "v.json", 150, {"p": [10, 20, 30], "r": [151, 40, 50]})
    reference = _matloop_file(tmp_path / "m.json", 150, {"p": [20, 40, 60], "r": [151, 40, 50]})
    done = subprocess.run([sys.executable, "benchmarks/efficiency_pooled.py", str(variant), "--against", str(reference)],
                          cwd=ROOT, capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    lines = done.stdout.strip().splitlines()
    row_p = next(line for line in lines if line.startswith("p "))
    assert row_p.split()[1:5] == ["20", "40", "0.50", "(0.50-0.50)"]  # every resample keeps the variant at half
    assert "3 / 3 of 3" in row_p and "3 / 0 / 0" in row_p
    row_r = next(line for line in lines if line.startswith("r "))
    assert "2 / 2 of 3" in row_r and "0 / 0 / 3" in row_r
    # (0.5 + 1.0) / 2, and both problems' resamples are exact, so the interval is the point
    assert lines[-1] == "summary: problems=2 mean_ratio=0.750 interval_90=(0.750-0.750) found=5/5 of 6"


def test_a_reference_of_another_budget_is_refused(tmp_path):
    variant = _matloop_file(tmp_path / "v.json", 150, {"p": [10]})
    reference = _matloop_file(tmp_path / "m.json", 250, {"p": [10]})
    done = subprocess.run([sys.executable, "benchmarks/efficiency_pooled.py", str(variant), "--against", str(reference)],
                          cwd=ROOT, capture_output=True, text=True, timeout=120)
    assert done.returncode != 0 and "budget 250" in done.stderr and "Traceback" not in done.stderr
