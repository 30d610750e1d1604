"""Seconds per ask at a campaign's defaults, against BayBE's default ``recommend`` on the same pools, same run.

matloop asks through its ask/tell API (``agent.Recommender``: the campaign's own sync, fit, generate and select
steps over a SQLite store) with the campaign file ``benchmarks._common.campaign_spec`` writes: the pool's space
and goal, q = 4 (the default batch size) and nothing else, so the surrogate is ``auto`` (a GP against a deep
ensemble, recalibrated) and the acquisition ``auto``. BayBE 0.15 gets the same pool, the same measurements and
its default recommender (``Campaign.recommend``). Only the ask is timed on either side (telling the results is not).

Per case (pool size P, observations n): the pool is P unmeasured rows of a problem, and the measurements are n
other rows of it. matloop is first told n - 4 of them and asked (``redecide_s``: no previous fit, so the
``auto`` verdict is cross-validated), then told the 4 rows it picked and asked again (``ask_s``: the ask a running
campaign makes, starting from the previous fit's memo; see ``surrogates/reuse.py``, which re-runs the verdict
once the data grew by half, so most asks are these). BayBE is asked once with the same n measurements. Pools
of ~100 and 1,000 rows come from OER plate 3496 (2,121 measured compositions), 10^4 from the Hartmann-6 problem
on Sobol points (``benchmarks/problems.py``).

Ends with ``summary: ask_s=<median> baybe_s=<median> ratio=<ask_s/baybe_s> worst_ratio=<max> redecide_s=<median>``,
medians over the cases, and the largest per-case ratio (the issue's target, at most 0.5, is per case). ``--quick`` (two small cases, for the test suite) takes well under a minute on two idle cores.
``--pools 10000`` runs only the full form's cases with those pool sizes (in the order given). ``--verbose`` adds
each second ask's model version reason and what both asks picked (rows, and the acquisition values as float hex).
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
import warnings
from pathlib import Path
from typing import Any

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from benchmarks._common import Pool, baybe_add_measurements, baybe_search_space, campaign_spec  # noqa: E402

Q = 4
FULL = [(p, n) for p in (100, 1000, 10_000) for n in (20, 100, 200)]
QUICK = [(100, 20), (1000, 20)]


def problem_for(pool_size: int, n_obs: int) -> Pool:
    from benchmarks.problems import hartmann6_pool, oer_pool

    if pool_size + n_obs <= 2000:
        return oer_pool("3496")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # Sobol balance: a power of two is not needed here
        return hartmann6_pool(size=pool_size + n_obs)


def split(problem: Pool, pool_size: int, n_obs: int, seed: int) -> tuple[Pool, list[int]]:
    """A sub-pool of ``pool_size + n_obs`` rows and which ``n_obs`` of them are measured."""
    rows = np.random.default_rng(seed).permutation(len(problem.y))[: pool_size + n_obs]
    frame = problem.frame.iloc[rows].reset_index(drop=True)
    sub = Pool(f"{problem.name}-P{pool_size}", frame, problem.y[rows], problem.minimize, problem.top_share,
               problem.space)
    return sub, list(range(n_obs))


def matloop_asks(pool: Pool, measured: list[int], seed: int, *, second: bool = True,
                 ) -> tuple[float, float, list[int], str, str]:
    """(seconds of the first ask on n - q results, of the next ask on n, rows measured at the second, its reason,
    what both asks picked: their rows and the second's acquisition values, exactly, as float hex).

    ``second=False`` asks once (the warm-up)."""
    from sqlalchemy import select

    from agent import Recommender
    from agent.store.models import ModelVersionRecord

    told = measured[:-Q]
    spec = campaign_spec(pool, seed=seed, q=Q, n_init=len(told), budget=len(pool.y))
    # the candidates are the unmeasured rows (their labels are their rows in ``pool``); the measured are told
    with Recommender(spec, pool.frame.iloc[len(measured):]) as rec:
        rec.add_measurements(pool.frame.iloc[told].assign(y=pool.y[told]))
        start = time.perf_counter()
        first = rec.recommend(Q)
        redecide = time.perf_counter() - start
        picked = [int(i) for i in first.index]
        if not second:
            return redecide, float("nan"), told + picked, "", ""
        rec.add_measurements(pool.frame.iloc[picked].assign(y=pool.y[picked]))
        start = time.perf_counter()
        then = rec.recommend(Q)
        ask = time.perf_counter() - start
        with rec.db.reading() as session:
            reason = session.scalars(select(ModelVersionRecord.reason).order_by(ModelVersionRecord.id.desc())).first()
    picks = (f"first {picked} second {[int(i) for i in then.index]} acquisition "
             f"{[float(v).hex() for v in then['acquisition_value']]}")
    return redecide, ask, told + picked, str(reason), picks


def baybe_ask(pool: Pool, rows: list[int], measured: list[int], seed: int) -> float:
    """Seconds of BayBE's default ``recommend`` of ``Q`` of ``pool``'s ``rows``, told the ``measured`` ones."""
    from baybe import Campaign
    from baybe.parameters import NumericalDiscreteParameter
    from baybe.targets import NumericalTarget
    from baybe.utils.random import set_random_seed

    set_random_seed(seed)
    frame = pool.for_baybe.iloc[rows].astype(float).round(12)
    parameters = [NumericalDiscreteParameter(name=c, values=tuple(sorted(set(frame[c])))) for c in frame.columns]
    space = baybe_search_space(frame, parameters)
    campaign = Campaign(space, NumericalTarget(name="y", minimize=pool.minimize).to_objective(),
                        allow_recommending_already_measured=False, allow_recommending_already_recommended=False)
    told = pool.for_baybe.iloc[measured].astype(float).round(12)
    told["y"] = pool.y[measured]
    baybe_add_measurements(campaign, told)
    start = time.perf_counter()
    campaign.recommend(batch_size=Q)
    return time.perf_counter() - start


def _rows(pool: Pool, measured: list[int], measured_now: list[int]) -> list[int]:
    """BayBE's search space: what matloop saw at its second ask (its measurements and its candidates)."""
    unused = set(measured) - set(measured_now)
    return [i for i in range(len(pool.y)) if i not in unused]


def run(cases: list[tuple[int, int]], seed: int) -> list[dict[str, Any]]:
    rows = []
    # untimed warm-up: imports and first calls of torch, gpytorch and BayBE are not what a campaign pays per ask
    warm_pool, warm_measured = split(problem_for(50, 12), 50, 12, seed)
    _, _, warm_now, _, _ = matloop_asks(warm_pool, warm_measured, seed, second=False)
    baybe_ask(warm_pool, _rows(warm_pool, warm_measured, warm_now), warm_now, seed)
    for pool_size, n_obs in cases:
        pool, measured = split(problem_for(pool_size, n_obs), pool_size, n_obs, seed)
        redecide, ask, measured_now, reason, picks = matloop_asks(pool, measured, seed)
        baybe = baybe_ask(pool, _rows(pool, measured, measured_now), measured_now, seed)
        kept = "kept" if "kept from the verdict" in reason else "re-decided"
        rows.append({"pool": pool_size, "n": n_obs, "problem": pool.name.split("-")[0], "redecide_s": redecide,
                     "ask_s": ask, "baybe_s": baybe, "ratio": ask / baybe, "verdict": kept, "model": reason,
                     "picks": picks})
        print(f"pool={pool_size:>6} n={n_obs:>4} {rows[-1]['problem']:<10} redecide_s={redecide:7.3f} "
              f"ask_s={ask:7.3f} ({kept:<10}) baybe_s={baybe:7.3f} ratio={ask / baybe:6.3f}", flush=True)
    return rows


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true", help="two small cases (the test suite's form)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--verbose", action="store_true", help="print each second ask's model version reason")
    parser.add_argument("--pools", type=int, nargs="+", default=None, metavar="P",
                        help="only the full form's cases with these pool sizes, in this order (e.g. 10000 1000 100)")
    args = parser.parse_args(argv)
    warnings.filterwarnings("ignore")
    cases = QUICK if args.quick else FULL
    if args.pools:
        cases = [(p, n) for p in args.pools for (q, n) in FULL if q == p]
        if not cases:
            parser.error(f"no case has a pool of {args.pools}; the pools are {sorted({p for p, _ in FULL})}")
    rows = run(cases, args.seed)
    if args.verbose:
        for r in rows:
            print(f"  pool={r['pool']} n={r['n']}: {r['model']}")
        for r in rows:  # which rows were picked: a change meant to be pure speed leaves these alone, bit for bit
            print(f"  pool={r['pool']} n={r['n']} picks: {r['picks']}")
    ask = statistics.median(r["ask_s"] for r in rows)
    baybe = statistics.median(r["baybe_s"] for r in rows)
    redecide = statistics.median(r["redecide_s"] for r in rows)
    worst = max(r["ratio"] for r in rows)
    print(f"summary: ask_s={ask:.3f} baybe_s={baybe:.3f} ratio={ask / baybe:.3f} worst_ratio={worst:.3f} "
          f"redecide_s={redecide:.3f}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
