"""The efficiency benchmark's BayBE cache: a longer budget resumes cached orders instead of recomputing them."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

from benchmarks._common import Pool  # noqa: E402
from benchmarks.efficiency import cached_replay, replay  # noqa: E402
from tests.support.per_seed import per_seed_file  # noqa: E402


def _pool(n: int = 60, best: int = 41) -> Pool:
    y = np.linspace(0.0, 1.0, n)
    y[best] = 2.0
    return Pool("toy", pd.DataFrame({"x": np.arange(n, dtype=float)}), y, False, 0.05,
                {"type": "parametric", "parameters": [{"name": "x", "type": "continuous", "bounds": [0.0, n]}]})


class CountingChooser:
    """Deterministic in what it has seen, like BayBE's recommender for a seed; counts its calls."""

    def __init__(self) -> None:
        self.calls = 0

    def __call__(self, pool: Pool, observed: list[int], q: int, seed: int) -> list[int]:
        self.calls += 1
        n = len(pool.y)  # worst first, so the best comes last; the tie-break depends on what was seen
        ranked = sorted(range(n), key=lambda i: (pool.y[i] + 0.05 * ((i * 17 + len(observed) + seed) % 7), i))
        return [i for i in ranked if i not in set(observed)][:q]


@pytest.fixture(autouse=True)
def _baybe_version(monkeypatch):
    monkeypatch.setattr("importlib.metadata.version", lambda name: "9.9")


@pytest.mark.parametrize("q", [1, 3])
def test_longer_budget_resumes_a_censored_order_exactly(tmp_path, q):
    pool = _pool()
    short = cached_replay(tmp_path, "baybe", pool, CountingChooser(), q, seed=2, n_init=4, budget=20)
    assert 41 not in short and len(short) == 20  # cut off by its budget

    chooser = CountingChooser()
    resumed = cached_replay(tmp_path, "baybe", pool, chooser, q, seed=2, n_init=4, budget=70)
    fresh = replay(pool, CountingChooser(), q, seed=2, n_init=4, budget=70)
    assert resumed == fresh and 41 in fresh
    whole_batches = 4 + (20 - 4) // q * q
    assert chooser.calls == -(-(len(fresh) - whole_batches) // q)  # only the experiments past the short run
    assert json.loads((tmp_path / f"toy-N60-q{q}-seed2-init4-budget70-baybe9.9.json").read_text()) == fresh


def test_an_order_that_found_the_best_is_reused_without_new_picks(tmp_path):
    pool = _pool()
    found = cached_replay(tmp_path, "baybe", pool, CountingChooser(), 4, seed=2, n_init=4, budget=100)
    assert 41 in found and len(found) < 100

    chooser = CountingChooser()
    assert cached_replay(tmp_path, "baybe", pool, chooser, 4, seed=2, n_init=4, budget=150) == found
    assert chooser.calls == 0


def test_matloop_runs_are_never_cached(tmp_path):
    chooser = CountingChooser()
    cached_replay(tmp_path, "matloop", _pool(), chooser, 4, seed=2, n_init=4, budget=20)
    assert chooser.calls > 0 and not list(tmp_path.iterdir())


def test_plain_runs_replay_the_committed_cache_and_quick_runs_leave_it_alone(tmp_path):
    """A plain ``python benchmarks/efficiency.py`` must not recompute BayBE for hours when the committed
    orders exist, the suite's ``--quick`` run must not add its 300-row plate's orders to them, and a user's own
    data (``--problem-file``) keeps its orders outside the repository."""
    import argparse

    from benchmarks.efficiency import COMMITTED_BAYBE_CACHE, USER_BAYBE_CACHE, _baybe_cache

    def args(**given) -> argparse.Namespace:
        return argparse.Namespace(**{"no_baybe_cache": False, "baybe_cache": None, "quick": False,
                                     "problem_file": [], **given})

    assert COMMITTED_BAYBE_CACHE.is_dir() and any(COMMITTED_BAYBE_CACHE.glob("oer_3851-*budget250-*.json"))
    assert _baybe_cache(args()) == COMMITTED_BAYBE_CACHE
    assert _baybe_cache(args(quick=True)) is None
    assert _baybe_cache(args(quick=True, baybe_cache=tmp_path)) == tmp_path
    assert _baybe_cache(args(baybe_cache=tmp_path, no_baybe_cache=True)) is None
    assert _baybe_cache(args(problem_file=[tmp_path / "mine.yaml"])) == USER_BAYBE_CACHE
    assert not USER_BAYBE_CACHE.is_relative_to(COMMITTED_BAYBE_CACHE.parents[2])


def test_combine_reports_sides_run_as_separate_processes_as_one(tmp_path, capsys):
    from benchmarks.efficiency import main

    ours = per_seed_file(tmp_path / "matloop.json", "matloop", [10, 20, 30])
    theirs = per_seed_file(tmp_path / "baybe.json", "baybe", [20, 40, 60])
    assert main(["--combine", str(ours), str(theirs)]) == 0
    out = capsys.readouterr().out
    assert "branin       heldout    4       20       40   0.50" in out
    assert "heldout_ratio=0.500 heldout_max=0.500" in out.splitlines()[-1]


def test_combine_compares_only_the_seeds_both_strategies_ran(tmp_path, capsys):
    """BayBE's replays of seeds 3-4 (cached for a later round) must not move BayBE's median against matloop's 0-2."""
    from benchmarks.efficiency import main

    ours = per_seed_file(tmp_path / "matloop.json", "matloop", [10, 20, 30])
    theirs = per_seed_file(tmp_path / "baybe.json", "baybe", [20, 40, 60, 200, 200])
    assert main(["--combine", str(ours), str(theirs)]) == 0
    out = capsys.readouterr().out
    assert "# 2 of 8 runs left out: only one strategy made their (problem, batch size, seed)" in out
    assert "branin       heldout    4       20       40   0.50" in out
    assert "wins=1/1 heldout_ratio=0.500" in out.splitlines()[-1]


def test_combine_refuses_disagreeing_runs_and_mixed_budgets(tmp_path):
    from benchmarks.efficiency import main

    one = per_seed_file(tmp_path / "a.json", "baybe", [20, 40])
    other = per_seed_file(tmp_path / "b.json", "baybe", [21, 40])
    with pytest.raises(SystemExit, match="differs from the same run"):
        main(["--combine", str(one), str(other)])
    longer = per_seed_file(tmp_path / "c.json", "matloop", [20], budget=300)
    with pytest.raises(SystemExit, match="different budgets"):
        main(["--combine", str(one), str(longer)])


def test_combine_answers_a_file_that_is_not_a_per_seed_file_in_one_sentence(tmp_path):
    from benchmarks.efficiency import main

    good = per_seed_file(tmp_path / "good.json", "matloop", [10])
    bad = tmp_path / "bad.json"
    bad.write_text(json.dumps({"budget": 250, "n_init": 4, "random_top": {"branin": 3.0}, "runs": [
        {"dataset": "branin", "q": 4, "strategy": "matloop", "seed": 0, "n_best": "many", "n_top": 2}]}))
    with pytest.raises(SystemExit, match=r"bad.json is not a per-seed file written by efficiency.py --per-seed "
                                         r"\(runs.0.n_best: .*\)$"):
        main(["--combine", str(good), str(bad)])
    missing = tmp_path / "missing.json"
    with pytest.raises(SystemExit, match=r"missing.json cannot be read \(No such file or directory\)$"):
        main(["--combine", str(missing)])
    no_baseline = tmp_path / "no_baseline.json"
    no_baseline.write_text(json.dumps({**json.loads(good.read_text()), "random_top": {}}))
    with pytest.raises(SystemExit, match=r"no random-search baseline \(random_top\) for \['branin'\]"):
        main(["--combine", str(no_baseline)])


def test_combine_leaves_a_problem_only_baybe_ran_out_of_the_summary(tmp_path, capsys):
    from benchmarks.efficiency import main

    ours = per_seed_file(tmp_path / "matloop.json", "matloop", [10, 20, 30])
    theirs = per_seed_file(tmp_path / "baybe.json", "baybe", [20, 40, 60])
    extra = tmp_path / "baybe-hartmann6.json"  # BayBE's cache covers a problem matloop's files do not
    extra.write_text(json.dumps({"budget": 250, "n_init": 4, "random_top": {}, "runs": [
        {"dataset": "hartmann6", "q": 4, "strategy": "baybe", "seed": 0, "n_best": 90, "n_top": 9}]}))
    assert main(["--combine", str(ours), str(theirs), str(extra)]) == 0
    summary = capsys.readouterr().out.splitlines()[-1]
    assert "nan" not in summary
    assert "vs_baybe_experiments_ratio=0.500" in summary
    assert "heldout_ratio=0.500 heldout_max=0.500" in summary
