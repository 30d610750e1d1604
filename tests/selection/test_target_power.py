"""target_power.py: how often a strategy of known efficiency passes the selection target, from BayBE's spread."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

from benchmarks.target_power import main, pass_rates  # noqa: E402


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
