"""Pooled, paired comparison of matloop and BayBE from ``efficiency.py``'s per-seed files.

Why a second script. ``efficiency.py`` prints medians per batch size; the issue's summary pools every batch
size and seed per dataset, and with 10 seeds per batch size those medians move by tens of experiments by
chance. This reads the per-seed runs (``efficiency.py --per-seed FILE``), so that

* runs made in parallel (``--plates`` split over processes) are summarised together, with the same
  summary line ``efficiency.py`` prints;
* every run is paired with BayBE's run of the same seed and batch size (the same initial points): how many
  runs matloop needed fewer experiments, how many more, and a 90 % bootstrap interval of the pooled ratio
  (pairs resampled, so the interval reflects seed-to-seed spread);
* an earlier measurement (``--before``) is shown beside it.

    .venv/bin/python benchmarks/efficiency_pooled.py /tmp/p1.json /tmp/p2.json \\
        --before benchmarks/results/efficiency-per-seed-42ce5aa.json
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from benchmarks.efficiency import median_text, pooled_median, summary_line  # noqa: E402

Key = tuple[str, int, str, int]


def load_runs(paths: list[Path]) -> tuple[list[dict[str, Any]], int, dict[str, float]]:
    """Merge per-seed files: runs, their common budget, and random search's expected n_top per dataset."""
    runs: dict[Key, dict[str, Any]] = {}
    budgets: set[int] = set()
    random_top: dict[str, float] = {}
    for path in paths:
        data = json.loads(path.read_text())
        budgets.add(int(data["budget"]))
        random_top.update(data.get("random_top", {}))
        for run in data["runs"]:
            key = (run["dataset"], run["q"], run["strategy"], run["seed"])
            if key in runs:
                raise SystemExit(f"{path}: run {key} appears in more than one file")
            runs[key] = run
    if len(budgets) != 1:
        raise SystemExit(f"the files were measured with different budgets {sorted(budgets)}: not comparable")
    return list(runs.values()), budgets.pop(), random_top


def random_top_from_pools(datasets: list[str]) -> dict[str, float]:
    """Random search's expected experiments to a first top-set member, for files that do not record it."""
    from benchmarks.problems import PROBLEMS

    pools = [PROBLEMS[name](0) for name in datasets]
    return {pool.name: pool.random_top for pool in pools}


def paired(runs: list[dict[str, Any]], dataset: str) -> tuple[np.ndarray, np.ndarray]:
    """matloop's and BayBE's n_best for every (batch size, seed) both ran on ``dataset``."""
    by_key = {(r["q"], r["seed"], r["strategy"]): r["n_best"] for r in runs if r["dataset"] == dataset}
    keys = sorted({(q, s) for q, s, name in by_key if name == "matloop" and (q, s, "baybe") in by_key})
    return (np.array([by_key[(q, s, "matloop")] for q, s in keys]),
            np.array([by_key[(q, s, "baybe")] for q, s in keys]))


def ratio_interval(ours: np.ndarray, theirs: np.ndarray, level: float = 0.9, resamples: int = 2000) -> tuple[float, float]:
    """Bootstrap interval of median(ours) / median(theirs), resampling the pairs."""
    rng = np.random.default_rng(0)
    picks = rng.integers(0, len(ours), size=(resamples, len(ours)))
    draws = np.median(ours[picks], axis=1) / np.median(theirs[picks], axis=1)
    lo, hi = np.quantile(draws, [(1 - level) / 2, (1 + level) / 2])
    return float(lo), float(hi)


def table(runs: list[dict[str, Any]], budget: int, before: tuple[list[dict[str, Any]], int] | None) -> list[str]:
    datasets = list(dict.fromkeys(r["dataset"] for r in runs))
    head = f"{'dataset':<12} {'matloop':>8} " + (f"{'before':>8} " if before else "") + f"{'BayBE':>8} " \
        f"{'ratio (90% interval)':>22} {'found within budget':>20} {'fewer/more/tie':>15}"
    lines = [head]
    for dataset in datasets:
        ours, theirs = paired(runs, dataset)
        if len(ours) == 0:
            continue
        lo, hi = ratio_interval(ours, theirs)
        ratio = pooled_median(runs, dataset, "matloop") / pooled_median(runs, dataset, "baybe")
        found = f"{int((ours <= budget).sum())}"
        before_text = ""
        if before is not None:
            old_runs, old_budget = before
            old = [r["n_best"] for r in old_runs if r["dataset"] == dataset and r["strategy"] == "matloop"]
            before_text = f"{median_text(old, old_budget, exact=True) if old else '-':>8} "
            found += f" / {sum(v <= old_budget for v in old)}" if old else " / -"
        found += f" / {int((theirs <= budget).sum())} of {len(ours)}"
        counts = f"{int((ours < theirs).sum())} / {int((ours > theirs).sum())} / {int((ours == theirs).sum())}"
        lines.append(
            f"{dataset:<12} {median_text(list(ours), budget, exact=True):>8} {before_text}{median_text(list(theirs), budget, exact=True):>8} "
            f"{f'{ratio:.2f} ({lo:.2f}-{hi:.2f})':>22} {found:>20} {counts:>15}"
        )
    return lines


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("runs", type=Path, nargs="+", help="per-seed files of one measurement (efficiency.py --per-seed)")
    parser.add_argument("--before", type=Path, default=None, help="an earlier measurement's per-seed file")
    args = parser.parse_args(argv)
    runs, budget, random_top = load_runs(args.runs)
    before = None
    if args.before is not None:
        old_runs, old_budget, _ = load_runs([args.before])
        before = (old_runs, old_budget)
    datasets = list(dict.fromkeys(r["dataset"] for r in runs))
    missing = [d for d in datasets if d not in random_top]
    if missing:
        random_top.update(random_top_from_pools(missing))
    print(f"# pooled over batch sizes {sorted({r['q'] for r in runs})} and seeds; budget {budget}"
          + (f"; before: {args.before} (budget {before[1]})" if before else ""))
    print("\n".join(table(runs, budget, before)))
    print(summary_line(runs, random_top))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
