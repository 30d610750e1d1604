"""Pool-based replay: how many experiments matloop needs to find the best candidates, against BayBE and random.

Each dataset is a fully measured pool; a strategy sees only what it has chosen (each chosen pool point is
revealed from the data). Every run starts from the same random initial points for every strategy with the
same seed, then chooses batches of q until it has found the pool's best point or spent the budget.

Reported per dataset and batch size (medians over seeds; ">B" when more than half the runs did not find it
within the budget B):
  * n_best: experiments to find the pool's best point; n_top: to find a first point of the top set
    (top 1% for the OER plates, top 5% for the perovskites);
  * EF@25 / EF@50: enhancement factor, the share of the top set found after n experiments over the share
    random search finds in expectation (n / N);
  * AF_top, AF_best: acceleration factor, random search's expected experiments to find a first member of
    the set, (N + 1) / (K + 1) for K members among N, over the strategy's median.

Ends with ``summary: datasets=<n> af_top_mean=<x> vs_baybe_experiments_ratio=<r> wins=<k>/<n>``: the ratio is
the mean over datasets of matloop's median n_best (all batch sizes and seeds pooled) over BayBE's; ``wins``
counts datasets where matloop's median is lower. Censored runs count as the budget + 1 (which favours
whichever strategy fails, so a ratio is only meaningful when medians are not censored). The default budget,
250, is why: on plates 3851 and 3860 the best point is an isolated outlier that neither strategy finds in
half its runs within 150 experiments, so at 150 both medians read ">150" and the ratio says 1.0 whatever the
strategies do (``benchmarks/RESULTS-selection.md``). BayBE's orders are read from the committed cache
(``benchmarks/results/baybe-cache``, ~45 min for a full run on two processes; ``--no-baybe-cache`` recomputes
them, hours), and cached orders of a shorter budget are resumed, not recomputed (``cached_replay``).
"""

from __future__ import annotations

import argparse
import json
import sys
import time
import warnings
from collections.abc import Callable
from functools import partial
from pathlib import Path
from typing import Any

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from benchmarks._common import OER_PLATES, Pool, Stopwatch, fit_model, oer_pool, perovskite_pool  # noqa: E402

Chooser = Callable[[Pool, list[int], int, int], list[int]]
ROOT = Path(__file__).resolve().parents[1]
COMMITTED_BAYBE_CACHE = ROOT / "benchmarks" / "results" / "baybe-cache"


def matloop_chooser(pool: Pool, observed: list[int], q: int, seed: int, exploit_share: float = 0.0) -> list[int]:
    from agent.selection import select_batch
    from agent.spec.objectives import Objective

    features = pool.model_X  # what a campaign's featurizer makes of the pool's rows
    X = features[observed]
    y = torch.tensor(pool.y[observed], dtype=torch.double).unsqueeze(-1)
    bounds = torch.stack([features.min(dim=0).values, features.max(dim=0).values])
    model = fit_model(X, y, seed, bounds=bounds, groups=pool.feature_groups)
    exclude = torch.zeros(len(pool.X), dtype=torch.bool)
    exclude[observed] = True
    picks = select_batch(
        model, features, objectives=[Objective(property="y", goal="minimize" if pool.minimize else "maximize")],
        properties=["y"], q=q, X_observed=X, Y_observed=y, exclude=exclude, seed=seed, exploit_share=exploit_share,
    )
    return [p.index for p in picks]


class BayBEChooser:
    """BayBE's default recommender (its default surrogate and acquisition) over the same pool."""

    def __init__(self) -> None:
        import pandas as pd  # noqa: F401
        from baybe import Campaign  # noqa: F401

    def __call__(self, pool: Pool, observed: list[int], q: int, seed: int) -> list[int]:
        import pandas as pd
        from baybe import Campaign
        from baybe.parameters import NumericalDiscreteParameter
        from baybe.searchspace import SearchSpace
        from baybe.targets import NumericalTarget
        from baybe.utils.random import set_random_seed

        set_random_seed(seed)
        frame = pd.DataFrame(pool.X.numpy(), columns=pool.columns)
        parameters = [
            NumericalDiscreteParameter(name=c, values=tuple(sorted(set(frame[c].round(12))))) for c in pool.columns
        ]
        frame = frame.round(12)
        space = SearchSpace.from_dataframe(frame, parameters=parameters)
        # BayBE's default recommender; only told, like matloop, never to re-propose a measured point
        campaign = Campaign(
            space, NumericalTarget(name="y", minimize=pool.minimize).to_objective(),
            allow_recommending_already_measured=False, allow_recommending_already_recommended=False,
        )
        measured = frame.iloc[observed].copy()
        measured["y"] = pool.y[observed]
        campaign.add_measurements(measured)
        rec = campaign.recommend(batch_size=q)
        key = {tuple(r): i for i, r in enumerate(frame.to_numpy().tolist())}
        return [key[tuple(r)] for r in rec[pool.columns].to_numpy().tolist()]


def replay(
    pool: Pool, chooser: Chooser, q: int, seed: int, n_init: int, budget: int, start: list[int] | None = None
) -> list[int]:
    """The order in which ``chooser`` reveals pool rows, until the best is found or ``budget`` is spent.

    ``start`` resumes a run from its first experiments (``n_init`` random rows, then whole batches of ``q``),
    as an earlier, shorter replay of the same seed left them.
    """
    if start is None:
        rng = np.random.default_rng(seed)
        order = rng.choice(len(pool.y), size=n_init, replace=False).tolist()
    else:
        order = list(start)
    best = pool.best_rows
    while not (best & set(order)) and len(order) < budget:
        picks = chooser(pool, order, min(q, budget - len(order)), seed)
        fresh = [i for i in picks if i not in set(order)]
        if len(fresh) != len(picks) or not fresh:
            raise RuntimeError(f"strategy picked measured or no rows: {picks}")
        order += fresh
    return order


def cached_replay(
    cache: Path | None, name: str, pool: Pool, chooser: Chooser, q: int, seed: int, n_init: int, budget: int
) -> list[int]:
    """``replay``, reading and writing BayBE's orders under ``cache`` when given.

    BayBE's runs are deterministic for a seed and cost 10-100x matloop's; caching them (keyed by pool, its
    size, q, seed, n_init, budget and the BayBE version) lets matloop's side be re-run against the same
    BayBE orders. A larger budget than a cached one reuses it: an order that found the best is already
    complete, and one cut off by its budget is resumed from its last whole batch (the chooser sees the same
    measurements, so it makes the same picks a longer run would have made). matloop's own runs are never cached.
    """
    if cache is None or name != "baybe":
        return replay(pool, chooser, q, seed, n_init, budget)
    from importlib.metadata import version

    stem = f"{pool.name}-N{len(pool.y)}-q{q}-seed{seed}-init{n_init}-budget"
    suffix = f"-baybe{version('baybe')}.json"
    path = cache / f"{stem}{budget}{suffix}"
    if path.exists():
        return json.loads(path.read_text())
    shorter = _longest_shorter_order(cache, stem, suffix, budget)
    if shorter is not None and pool.best_rows & set(shorter):
        return shorter  # found the best within the shorter budget: a longer run stops at the same place
    start = None if shorter is None else shorter[: n_init + (len(shorter) - n_init) // q * q]
    order = replay(pool, chooser, q, seed, n_init, budget, start=start)
    cache.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(order))
    return order


def _longest_shorter_order(cache: Path, stem: str, suffix: str, budget: int) -> list[int] | None:
    """The cached order of the same run with the largest budget below ``budget``, if any."""
    budgets = []
    for candidate in cache.glob(f"{stem}*{suffix}"):
        text = candidate.name[len(stem) : -len(suffix)]
        if text.isdigit() and int(text) < budget:
            budgets.append(int(text))
    if not budgets:
        return None
    return json.loads((cache / f"{stem}{max(budgets)}{suffix}").read_text())


def first_hit(order: list[int], targets: set[int], budget: int) -> int:
    for i, row in enumerate(order):
        if row in targets:
            return i + 1
    return budget + 1


def enhancement(order: list[int], top: set[int], n: int, N: int) -> float:
    """Share of the top set found in the first n experiments over random's expected share (n/N).

    A run that found the best before n experiments stopped early; its later picks are not known, so the
    top members found so far are all that is counted (conservative for the strategy).
    """
    found = len(top & set(order[:n]))
    return (found / len(top)) / (n / N)


def median_text(values: list[int], budget: int, exact: bool = False) -> str:
    """The median rounded to a whole experiment (``exact``: a half stays, as pooled medians of an even count
    have), ``>B`` when censored at the budget B."""
    m = float(np.median(values))
    return f">{budget}" if m > budget else (f"{m:g}" if exact else f"{m:.0f}")


def median_interval(values: list[int], budget: int, level: float = 0.9, resamples: int = 2000) -> str:
    """Bootstrap interval of the median, as ``lo..hi``.

    Why it is printed: experiments-to-best varies 10x from seed to seed on these pools, so two strategies'
    medians over 10 seeds can differ by 20 experiments by chance alone; the interval says how far to trust
    a difference. Censored runs (budget + 1) stay censored, and an end above the budget prints as ``>B``.
    """
    if len(values) < 2:
        return "-"
    rng = np.random.default_rng(0)
    draws = np.median(rng.choice(np.asarray(values), size=(resamples, len(values))), axis=1)
    lo, hi = np.quantile(draws, [(1 - level) / 2, (1 + level) / 2])
    if lo > budget:
        return f">{budget}"
    return f"{lo:.0f}.." + (f">{budget}" if hi > budget else f"{hi:.0f}")


def run(args: argparse.Namespace) -> int:
    torch.set_num_threads(args.threads)
    warnings.filterwarnings("ignore")
    pools: list[Pool] = []
    if args.quick:
        pools = [oer_pool(OER_PLATES[0], limit=300, seed=0), perovskite_pool()]
    else:
        pools = [oer_pool(p) for p in args.plates] + ([perovskite_pool()] if not args.no_perovskites else [])
    strategies: dict[str, Chooser] = {"matloop": partial(matloop_chooser, exploit_share=args.exploit_share)}
    if not args.no_baybe:
        try:
            strategies["baybe"] = BayBEChooser()
        except ImportError as exc:
            print(f"BayBE not importable ({exc}); running matloop and random only")
    print(f"# efficiency: datasets={[p.name for p in pools]} batch_sizes={args.batch_sizes} seeds={args.seeds} "
          f"n_init={args.n_init} budget={args.budget} strategies={list(strategies)}")
    header = f"{'dataset':<12} {'N':>5} {'q':>2} {'strategy':<8} {'n_best':>7} {'90% CI':>9} {'n_top':>6} " \
             f"{'EF@25':>6} {'EF@50':>6} {'AF_best':>7} {'AF_top':>7} {'sec/run':>7}"
    print(header)
    per_seed: list[dict[str, Any]] = []
    for pool in pools:
        N = len(pool.y)
        top, best = pool.top_rows, pool.best_rows
        random_best, random_top = pool.random_best, pool.random_top
        for q in args.batch_sizes:
            for name, chooser in strategies.items():
                n_best, n_top, ef25, ef50 = [], [], [], []
                clock = Stopwatch()
                for seed in range(args.seeds):
                    order = cached_replay(args.baybe_cache, name, pool, chooser, q, seed, max(args.n_init, 2),
                                          args.budget)
                    n_best.append(first_hit(order, best, args.budget))
                    n_top.append(first_hit(order, top, args.budget))
                    ef25.append(enhancement(order, top, 25, N))
                    ef50.append(enhancement(order, top, 50, N))
                per_seed.extend({"dataset": pool.name, "q": q, "strategy": name, "seed": seed, "n_best": b, "n_top": t}
                                for seed, (b, t) in enumerate(zip(n_best, n_top, strict=True)))
                af_best = random_best / float(np.median(n_best))
                af_top = random_top / float(np.median(n_top))
                print(f"{pool.name:<12} {N:>5} {q:>2} {name:<8} {median_text(n_best, args.budget):>7} "
                      f"{median_interval(n_best, args.budget):>9} {median_text(n_top, args.budget):>6} {np.mean(ef25):>6.1f} {np.mean(ef50):>6.1f} "
                      f"{af_best:>7.1f} {af_top:>7.1f} {clock.seconds / args.seeds:>7.1f}", flush=True)
        print(f"{pool.name:<12} random search expects n_best={random_best:.0f} n_top={random_top:.1f}")
    if args.per_seed is not None:
        args.per_seed.write_text(json.dumps({
            "budget": args.budget, "n_init": args.n_init, "runs": per_seed,
            "random_top": {pool.name: pool.random_top for pool in pools},
        }, indent=1))
        print(f"# per-seed results written to {args.per_seed}")
    print(summary_line(per_seed, {pool.name: pool.random_top for pool in pools}))
    return 0


def pooled_median(runs: list[dict[str, Any]], dataset: str, strategy: str) -> float:
    """Median n_best over every batch size and seed of one strategy on one dataset (the summary's unit)."""
    return float(np.median([r["n_best"] for r in runs if r["dataset"] == dataset and r["strategy"] == strategy]))


def summary_line(runs: list[dict[str, Any]], random_top: dict[str, float]) -> str:
    """The issue's one-line summary from per-seed runs; ``random_top`` is random search's expected experiments
    to a first top-set member per dataset (AF_top is that over matloop's median n_top, per batch size)."""
    datasets = list(dict.fromkeys(r["dataset"] for r in runs))
    af_tops = []
    for dataset in datasets:
        for q in sorted({r["q"] for r in runs if r["dataset"] == dataset}):
            n_top = [r["n_top"] for r in runs if (r["dataset"], r["q"], r["strategy"]) == (dataset, q, "matloop")]
            af_tops.append(random_top[dataset] / float(np.median(n_top)))
    ratios, wins = [], 0
    for dataset in datasets:
        if any(r["dataset"] == dataset and r["strategy"] == "baybe" for r in runs):
            ours, theirs = pooled_median(runs, dataset, "matloop"), pooled_median(runs, dataset, "baybe")
            ratios.append(ours / theirs)
            wins += int(ours < theirs)
    ratio = f"{np.mean(ratios):.3f}" if ratios else "nan"
    return (f"summary: datasets={len(datasets)} af_top_mean={np.mean(af_tops):.2f} "
            f"vs_baybe_experiments_ratio={ratio} wins={wins}/{len(datasets)}")


def _baybe_cache(args: argparse.Namespace) -> Path | None:
    """The folder of BayBE orders to use: the committed cache for full runs, so that a plain
    ``python benchmarks/efficiency.py`` replays BayBE's committed orders instead of recomputing them;
    none for ``--quick`` (its 300-row plate would add files to the committed folder)."""
    if args.no_baybe_cache:
        return None
    if args.baybe_cache is not None:
        return args.baybe_cache
    return None if args.quick else COMMITTED_BAYBE_CACHE


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true", help="300-row OER plate and the perovskites, 2 seeds, q=4, budget 32: for the test suite")
    parser.add_argument("--seeds", type=int, default=10)
    parser.add_argument("--batch-sizes", type=int, nargs="+", default=[1, 4, 8])
    parser.add_argument("--plates", nargs="*", default=list(OER_PLATES), help="OER plates (none: the perovskites only)")
    parser.add_argument("--no-perovskites", action="store_true")
    parser.add_argument("--n-init", type=int, default=4)
    parser.add_argument("--budget", type=int, default=250)
    parser.add_argument("--no-baybe", action="store_true")
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--exploit-share", type=float, default=0.0,
                        help="share of each batch given to the best posterior means (matloop's default: 0)")
    parser.add_argument("--baybe-cache", type=Path, default=None,
                        help="folder for BayBE's replay orders (deterministic per seed): re-runs reuse them; "
                        f"default: the committed {COMMITTED_BAYBE_CACHE.relative_to(ROOT)} (none with --quick)")
    parser.add_argument("--no-baybe-cache", action="store_true", help="recompute every BayBE order (hours at budget 250)")
    parser.add_argument("--per-seed", type=Path, default=None,
                        help="write every run's n_best and n_top as JSON (for paired or bootstrap comparisons)")
    args = parser.parse_args(argv)
    if args.quick:
        args.seeds, args.batch_sizes, args.budget = min(args.seeds, 2), [4], 32
    args.baybe_cache = _baybe_cache(args)
    start = time.perf_counter()
    code = run(args)
    print(f"# wall time {time.perf_counter() - start:.0f} s")
    return code


if __name__ == "__main__":
    raise SystemExit(main())
