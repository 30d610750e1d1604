"""How often a strategy of known efficiency would meet the selection target, given how much BayBE varies by seed.

The target (issue 22) compares matloop's median experiments-to-best with BayBE's, per problem, over a finite
number of seeds: at most ``--mean`` (0.85) on average over the held-out problems, and no problem above ``--max``
(1.05). Both medians are estimates, and on needle-like problems a run's count spreads from a tenth to twice the
median, so a ratio of two medians over 20 seeds is itself spread widely. This asks what that spread does to the
target: for a hypothetical strategy that needs ``s`` times BayBE's experiments on *every* run, how often would a
measurement with N seeds per problem pass each part of it?

It resamples BayBE's own per-seed results (the efficiency benchmark's ``--per-seed`` files): per problem and batch
size, one draw of N runs for BayBE and an independent draw of N runs scaled by ``s`` for the strategy, their
medians' ratio, then the mean and the largest ratio over the problems; repeated ``--draws`` times. ``median max`` is the largest ratio such a measurement
typically reports. A run that did
not find the best within the budget counts as the budget + 1 for both, scaled too for the strategy (so the
strategy is assumed to find it at ``s`` times that: optimistic for it where BayBE's median is censored).

    R=benchmarks/results; python benchmarks/target_power.py $R/heldout-q{1,4,8}/baybe.json \\
        $R/heldout-q{1,4,8}/baybe-seeds10-19-amd-epyc.json

Ends with ``summary: ...`` giving, per batch size at N = the seeds the files hold for it, how often BayBE against
itself (s = 1) and a strategy at s = 0.85 pass the whole target.

``--paired`` adds a column for a reading of the largest-ratio clause that allows for that spread: a problem fails
only when its 90 % bootstrap interval of the ratio (as ``efficiency_pooled.py`` computes it, resampling the pairs)
lies wholly above ``--max``; ``paired ok`` is the share of draws in which no problem fails. Its value at s = 1 is
how often parity would be wrongly failed, at s > 1 how often a worse strategy would pass (slow: a bootstrap inside
each draw).
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from benchmarks.efficiency_pooled import load_runs, ratio_interval  # noqa: E402

Runs = dict[int, dict[str, np.ndarray]]  # q -> problem -> n_best per seed


def runs_by_batch_size(paths: list[Path], strategy: str) -> tuple[Runs, int]:
    """``strategy``'s n_best per (batch size, problem), and the files' budget."""
    runs, budget, _ = load_runs(paths)
    found: dict[int, dict[str, list[int]]] = {}
    for run in runs:
        if run["strategy"] == strategy:
            found.setdefault(run["q"], {}).setdefault(run["dataset"], []).append(int(run["n_best"]))
    if not found:
        raise SystemExit(f"the files hold no runs of {strategy!r}")
    return {q: {p: np.asarray(v, dtype=float) for p, v in problems.items()} for q, problems in found.items()}, budget


def pass_rates(problems: dict[str, np.ndarray], scale: float, seeds: int, draws: int, mean_target: float,
               max_target: float, rng: np.random.Generator) -> tuple[float, float, float, float]:
    """Shares of draws in which the mean ratio, the largest ratio, and both meet the target; and the median over
    draws of the largest ratio (what such a measurement typically reports as its worst problem)."""
    ratios = np.empty((draws, len(problems)))
    for j, values in enumerate(problems.values()):
        ours = scale * rng.choice(values, size=(draws, seeds))
        theirs = rng.choice(values, size=(draws, seeds))
        ratios[:, j] = np.median(ours, axis=1) / np.median(theirs, axis=1)
    mean_ok = ratios.mean(axis=1) <= mean_target
    max_ok = ratios.max(axis=1) <= max_target
    largest = float(np.median(ratios.max(axis=1)))
    return float(mean_ok.mean()), float(max_ok.mean()), float((mean_ok & max_ok).mean()), largest


def paired_pass_rate(problems: dict[str, np.ndarray], scale: float, seeds: int, draws: int, max_target: float,
                     rng: np.random.Generator, resamples: int = 400, level: float = 0.9, chunk: int = 100) -> float:
    """Share of draws in which no problem's bootstrap interval of median(ours) / median(theirs)
    (``efficiency_pooled.ratio_interval``, ``resamples`` resamplings of the pairs) lies wholly above
    ``max_target``. Draws are made ``chunk`` at a time to bound memory (chunk x resamples x seeds)."""
    failed = np.zeros(draws, dtype=bool)
    for start in range(0, draws, chunk):
        n = min(chunk, draws - start)
        for values in problems.values():
            ours = scale * rng.choice(values, size=(n, seeds))
            theirs = rng.choice(values, size=(n, seeds))
            low, _ = ratio_interval(ours, theirs, level, resamples, rng)
            failed[start:start + n] |= low > max_target
    return float(1.0 - failed.mean())


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("files", type=Path, nargs="+", metavar="PER_SEED_JSON")
    parser.add_argument("--strategy", default="baybe", help="whose per-seed spread to resample (default: baybe)")
    parser.add_argument("--scales", type=float, nargs="+", default=[1.0, 0.85, 0.7, 0.5],
                        help="the hypothetical strategy's experiments as a multiple of BayBE's, on every run")
    parser.add_argument("--seeds", type=int, nargs="+", default=None,
                        help="seeds per problem of the imagined measurement (default: the files' count, and 50 and 100)")
    parser.add_argument("--draws", type=int, default=4000)
    parser.add_argument("--mean", type=float, default=0.85, help="the target's mean ratio (default 0.85)")
    parser.add_argument("--max", type=float, default=1.05, help="the target's largest ratio (default 1.05)")
    parser.add_argument("--rng-seed", type=int, default=0)
    parser.add_argument("--paired", action="store_true",
                        help="also: how often no problem's 90 %% paired interval lies wholly above --max (slow)")
    args = parser.parse_args(argv)
    if args.draws < 1 or any(s <= 0 for s in args.scales) or (args.seeds and min(args.seeds) < 1):
        parser.error("--draws, --scales and --seeds must be positive")
    by_q, budget = runs_by_batch_size(args.files, args.strategy)
    rng = np.random.default_rng(args.rng_seed)
    print(f"# target: mean ratio <= {args.mean}, no problem above {args.max}; {args.strategy}'s runs resampled "
          f"(budget {budget}, {args.draws} draws)")
    for q, problems in sorted(by_q.items()):
        print(f"# q={q}: {len(problems)} problems, {min(len(v) for v in problems.values())}-"
              f"{max(len(v) for v in problems.values())} seeds each: {', '.join(problems)}")
    print(f"{'q':>2} {'seeds':>5} {'scale':>5} {'mean ok':>8} {'max ok':>7} {'both':>6} {'median max':>10}"
          + (f" {'paired ok':>9}" if args.paired else ""))
    summary = []
    for q, problems in sorted(by_q.items()):
        held = min(len(v) for v in problems.values())
        for seeds in args.seeds or sorted({held, 50, 100}):
            for scale in args.scales:
                mean_ok, max_ok, both, largest = pass_rates(problems, scale, seeds, args.draws, args.mean, args.max, rng)
                paired = (f" {paired_pass_rate(problems, scale, seeds, args.draws, args.max, rng):>9.2f}"
                          if args.paired else "")
                print(f"{q:>2} {seeds:>5} {scale:>5.2f} {mean_ok:>8.2f} {max_ok:>7.2f} {both:>6.2f} {largest:>10.2f}"
                      + paired)
                if seeds == held and scale in (1.0, 0.85):
                    summary.append(f"q{q}_seeds{held}_s{scale:g}={both:.2f}")
    print("summary: " + " ".join(summary))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
