"""Pooled, paired comparison of matloop and BayBE from ``efficiency.py``'s per-seed files.

Why a second script. ``efficiency.py`` prints medians per batch size; the issue's summary pools every batch
size and seed per dataset, and with 10 seeds per batch size those medians move by tens of experiments by
chance. This reads the per-seed runs (``efficiency.py --per-seed FILE``), so that

* runs made in parallel (``--plates`` split over processes) are summarised together, with the same
  summary line ``efficiency.py`` prints;
* every run is paired with BayBE's run of the same seed and batch size (the same initial points): how many
  runs matloop needed fewer experiments, how many more, and a 90 % bootstrap interval of the pooled ratio
  (pairs resampled, so the interval reflects seed-to-seed spread);
* an earlier measurement (``--before``) is shown beside it;
* or a variant is paired with a reference measurement of matloop itself (``--against``), run by run, with a 90 %
  interval of the mean ratio over the problems. This is how a change is decided on the development problems: the
  same code measured on two machines (different CPUs round differently, and the fits drift apart) gave a mean
  ratio of 0.92 over eight problems at q=4, so a variant's ratio means something only when its interval says so.

    .venv/bin/python benchmarks/efficiency_pooled.py /tmp/p1.json /tmp/p2.json \\
        --before benchmarks/results/efficiency-per-seed-42ce5aa.json
    .venv/bin/python benchmarks/efficiency_pooled.py /tmp/variant-s*.json \\
        --against benchmarks/results/dev-q4/main-344efe4-amd-epyc.json
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Any

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from benchmarks.efficiency import (  # noqa: E402
    median_text,
    pooled_median,
    read_per_seed,
    runs_both_made,
    summary_line,
)

Key = tuple[str, int, str, int]


def load_runs(paths: list[Path]) -> tuple[list[dict[str, Any]], int, dict[str, float]]:
    """Merge per-seed files: runs, their common budget, and random search's expected n_top per dataset."""
    runs: dict[Key, dict[str, Any]] = {}
    budgets: set[int] = set()
    random_top: dict[str, float] = {}
    for path in paths:
        data = read_per_seed(path)
        budgets.add(data.budget)
        random_top.update(data.random_top)
        for run in data.runs:
            key = (run.dataset, run.q, run.strategy, run.seed)
            if key in runs:
                raise SystemExit(f"{path}: run {key} appears in more than one file")
            runs[key] = run.model_dump()
    if len(budgets) != 1:
        raise SystemExit(f"the files were measured with different budgets {sorted(budgets)}: not comparable")
    return list(runs.values()), budgets.pop(), random_top


def random_top_from_pools(datasets: list[str]) -> dict[str, float]:
    """Random search's expected experiments to a first top-set member, for files that do not record it."""
    from benchmarks.problems import PROBLEMS

    pools = [PROBLEMS[name](0) for name in datasets]
    return {pool.name: pool.random_top for pool in pools}


def paired(
    runs: list[dict[str, Any]], dataset: str, ours: str = "matloop", theirs: str = "baybe"
) -> tuple[np.ndarray, np.ndarray]:
    """``ours``' and ``theirs``' n_best (strategies; matloop and BayBE by default) for every (batch size, seed) both
    ran on ``dataset``."""
    by_key = {(r["q"], r["seed"], r["strategy"]): r["n_best"] for r in runs if r["dataset"] == dataset}
    keys = sorted({(q, s) for q, s, name in by_key if name == ours and (q, s, theirs) in by_key})
    return (np.array([by_key[(q, s, ours)] for q, s in keys]),
            np.array([by_key[(q, s, theirs)] for q, s in keys]))


def ratio_interval(ours: np.ndarray, theirs: np.ndarray, level: float = 0.9, resamples: int = 2000,
                   rng: np.random.Generator | None = None) -> tuple[Any, Any]:
    """Bootstrap interval of median(ours) / median(theirs), resampling the pairs (the last axis).

    Leading axes hold independent measurements, each resampled the same way and given its own interval (arrays
    of lows and highs; floats for one measurement): ``target_power.py --paired`` computes thousands at once.
    """
    rng = np.random.default_rng(0) if rng is None else rng
    n = ours.shape[-1]
    picks = rng.integers(0, n, size=(resamples, n))
    draws = np.median(ours[..., picks], axis=-1) / np.median(theirs[..., picks], axis=-1)
    lo, hi = np.quantile(draws, [(1 - level) / 2, (1 + level) / 2], axis=-1)
    return (float(lo), float(hi)) if ours.ndim == 1 else (lo, hi)


def fewer_more_tie(ours: np.ndarray, theirs: np.ndarray) -> str:
    """How many paired runs ``ours`` needed fewer experiments in, how many more, how many the same."""
    return f"{int((ours < theirs).sum())} / {int((ours > theirs).sum())} / {int((ours == theirs).sum())}"


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
        counts = fewer_more_tie(ours, theirs)
        lines.append(
            f"{dataset:<12} {median_text(list(ours), budget, exact=True):>8} {before_text}{median_text(list(theirs), budget, exact=True):>8} "
            f"{f'{ratio:.2f} ({lo:.2f}-{hi:.2f})':>22} {found:>20} {counts:>15}"
        )
    return lines


#: The reference's runs are relabelled with this strategy name when paired with a variant (``--against``).
REFERENCE = "reference"


def against_reference(variant: list[dict[str, Any]], reference: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """One list of runs: the variant's matloop runs as they are and the reference's matloop runs as ``REFERENCE``."""
    return ([r for r in variant if r["strategy"] == "matloop"]
            + [{**r, "strategy": REFERENCE} for r in reference if r["strategy"] == "matloop"])


def mean_ratio_interval(pairs: list[tuple[np.ndarray, np.ndarray]], level: float = 0.9,
                        resamples: int = 2000) -> tuple[float, float, float]:
    """The mean over problems of median(variant) / median(reference), and its bootstrap interval (each
    problem's pairs resampled on their own, so the interval reflects seed-to-seed spread on every problem)."""
    rng = np.random.default_rng(0)
    point = float(np.mean([np.median(a) / np.median(b) for a, b in pairs]))
    draws = np.zeros(resamples)
    for a, b in pairs:
        picks = rng.integers(0, len(a), size=(resamples, len(a)))
        draws += np.median(a[picks], axis=1) / np.median(b[picks], axis=1)
    lo, hi = np.quantile(draws / len(pairs), [(1 - level) / 2, (1 + level) / 2])
    return point, float(lo), float(hi)


def against_table(runs: list[dict[str, Any]], budget: int) -> list[str]:
    """A variant (``matloop`` runs) against a reference (``REFERENCE`` runs), paired by batch size and seed."""
    lines = [f"{'dataset':<18} {'variant':>8} {'reference':>9} {'ratio (90% interval)':>22} "
             f"{'found within budget':>20} {'fewer/more/tie':>15}"]
    pairs = []
    for dataset in dict.fromkeys(r["dataset"] for r in runs):
        ours, theirs = paired(runs, dataset, "matloop", REFERENCE)
        if len(ours) == 0:
            continue
        pairs.append((ours, theirs))
        lo, hi = ratio_interval(ours, theirs)
        ratio = float(np.median(ours)) / float(np.median(theirs))
        found = f"{int((ours <= budget).sum())} / {int((theirs <= budget).sum())} of {len(ours)}"
        counts = fewer_more_tie(ours, theirs)
        lines.append(f"{dataset:<18} {median_text(list(ours), budget, exact=True):>8} "
                     f"{median_text(list(theirs), budget, exact=True):>9} {f'{ratio:.2f} ({lo:.2f}-{hi:.2f})':>22} "
                     f"{found:>20} {counts:>15}")
    if not pairs:
        raise SystemExit("the variant and the reference have no (problem, batch size, seed) in common")
    mean, lo, hi = mean_ratio_interval(pairs)
    # found within budget, summed over problems: on needle-like pools a median censored at the budget hides it
    found = f"{sum(int((a <= budget).sum()) for a, _ in pairs)}/{sum(int((b <= budget).sum()) for _, b in pairs)}"
    lines.append(f"summary: problems={len(pairs)} mean_ratio={mean:.3f} interval_90=({lo:.3f}-{hi:.3f}) "
                 f"found={found} of {sum(len(a) for a, _ in pairs)}")
    return lines


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("runs", type=Path, nargs="+", help="per-seed files of one measurement (efficiency.py --per-seed)")
    parser.add_argument("--before", type=Path, default=None, help="an earlier measurement's per-seed file")
    parser.add_argument("--against", type=Path, nargs="+", default=None,
                        help="per-seed files of a reference measurement of matloop: pair the runs with it, not BayBE")
    args = parser.parse_args(argv)
    runs, budget, random_top = load_runs(args.runs)
    if args.against is not None:
        reference, reference_budget, _ = load_runs(args.against)
        if reference_budget != budget:
            raise SystemExit(f"the reference was measured with budget {reference_budget}, the variant with {budget}: "
                             "not comparable")
        print(f"# a variant against a reference measurement, paired by problem, batch size and seed; budget {budget}")
        print("\n".join(against_table(against_reference(runs, reference), budget)))
        return 0
    before = None
    if args.before is not None:
        old_runs, old_budget, _ = load_runs([args.before])
        before = (old_runs, old_budget)
    runs = runs_both_made(runs)
    if not runs:
        raise SystemExit("the files hold no run (problem, batch size, seed) that both matloop and BayBE made")
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
