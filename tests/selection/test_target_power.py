"""target_power.py: how often a strategy of known efficiency passes the selection target, from BayBE's spread."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

from benchmarks.target_power import main, paired_pass_rate, pass_rates  # noqa: E402


def _per_seed(path: Path, n_best: dict[str, list[int]], q: int = 4) -> Path:
    runs = [{"dataset": name, "q": q, "strategy": "baybe", "seed": s, "n_best": b, "n_top": 1}
            for name, values in n_best.items() for s, b in enumerate(values)]
    path.write_text(json.dumps({"budget": 250, "n_init": 4, "runs": runs, "random_top": {}}))
    return path


def test_without_spread_the_target_is_decided_by_the_scale_alone():
    rng = np.random.default_rng(0)
    problems = {"a": np.full(20, 30.0), "b": np.full(20, 80.0)}
    assert pass_rates(problems, 0.85, 20, 200, 0.85, 1.05, rng) == (1.0, 1.0, 1.0, 0.85)
    assert pass_rates(problems, 1.0, 20, 200, 0.85, 1.05, rng) == (0.0, 1.0, 0.0, 1.0)
    assert pass_rates(problems, 1.1, 20, 200, 0.85, 1.05, rng)[:3] == (0.0, 0.0, 0.0)


def test_with_a_needle_like_spread_parity_rarely_passes_and_more_seeds_help(tmp_path, capsys):
    """Runs from 5 to 250 experiments: two medians of 20 runs each differ by far more than 5 %."""
    rng = np.random.default_rng(1)
    spread = {f"needle{i}": rng.integers(5, 251, 20).tolist() for i in range(5)}
    path = _per_seed(tmp_path / "baybe.json", spread)
    assert main([str(path), "--draws", "500", "--scales", "1.0", "0.85"]) == 0
    out = capsys.readouterr().out
    rows = {(int(r.split()[1]), float(r.split()[2])): [float(x) for x in r.split()[3:]]
            for r in out.splitlines() if r[:2].strip().isdigit()}
    assert rows[(20, 1.0)][1] < 0.2  # BayBE against itself: some problem above 1.05 in most measurements
    assert rows[(20, 1.0)][3] > 1.05
    assert rows[(100, 0.85)][1] > rows[(20, 0.85)][1]
    assert out.splitlines()[-1].startswith("summary: q4_seeds20_s1=0.")


def test_the_paired_reading_fails_a_problem_only_when_its_whole_interval_is_above_the_limit():
    rng = np.random.default_rng(0)
    flat = {"a": np.full(20, 30.0), "b": np.full(20, 80.0)}
    assert paired_pass_rate(flat, 1.05, 20, 50, 1.05, rng, resamples=50) == 1.0  # at the limit: not above it
    assert paired_pass_rate(flat, 1.06, 20, 50, 1.05, rng, resamples=50) == 0.0
    spread = {f"needle{i}": rng.integers(5, 251, 20).astype(float) for i in range(5)}
    at_parity = paired_pass_rate(spread, 1.0, 20, 300, 1.05, rng, resamples=200)
    far_worse = paired_pass_rate(spread, 2.0, 20, 300, 1.05, rng, resamples=200)
    assert at_parity > 0.6 and far_worse < 0.2 and at_parity > far_worse


def test_paired_adds_its_column(tmp_path, capsys):
    rng = np.random.default_rng(2)
    path = _per_seed(tmp_path / "baybe.json", {"a": rng.integers(5, 251, 20).tolist()})
    assert main([str(path), "--draws", "100", "--scales", "1.0", "--seeds", "20", "--paired"]) == 0
    lines = capsys.readouterr().out.splitlines()
    header = next(line for line in lines if line.lstrip().startswith("q seeds"))
    assert header.split()[-2:] == ["paired", "ok"]
    row = next(line for line in lines if line[:2].strip().isdigit())
    assert len(row.split()) == 8 and 0.0 <= float(row.split()[-1]) <= 1.0
