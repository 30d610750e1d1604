"""Time to choose a q-batch from large pools: matloop's select_batch against plain optimize_acqf_discrete.

A GP (SingleTaskGP, RBF kernel, hyperparameters fixed rather than fitted: fitting is not what is timed) is
conditioned on ``n_obs`` noisy observations of a 6-d multimodal test function; both methods choose q points
with matloop's default acquisition (qLogEI over the best posterior mean among the observations) from uniform
random pools. The naive baseline is BoTorch's ``optimize_acqf_discrete`` over the
whole pool, run in a child process with a time limit ("> limit" when it does not finish). Ends with
``summary: pool=100000 n_obs=2000 q=16 seconds=<s> vs_naive=<ratio>`` (naive seconds over ours; a ">" ratio
is a lower bound).

``--dask``: the same selection in this process and with the pool's scoring fanned out (as a campaign run with
``MATLOOP_COMPUTE`` of ``type: local_cluster`` does: :mod:`agent.selection.scoring` over ``flows.compute``'s Dask
task runner) on a LocalCluster of 1 and of 2 single-threaded worker processes, each started once and warmed up on a
small pool first, as a run's first step would. It times the pre-screen's posterior moments of the whole pool on
their own and the whole ``select_batch``, checks that the picks are the in-process ones, and ends with
``summary: pool=100000 n_obs=2000 moments_s=<in-process> one_worker=<ratio> two_workers=<ratio>`` (in-process
seconds over Dask seconds, for the moments).
"""

from __future__ import annotations

import argparse
import multiprocessing as mp
import sys
import time
import warnings
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

D = 6


def _function(X: torch.Tensor) -> torch.Tensor:
    return -((X - 0.35) ** 2).sum(-1) + 0.2 * torch.sin(9 * X).sum(-1)


def _model(n_obs: int, seed: int):
    from botorch.models import SingleTaskGP

    gen = torch.Generator().manual_seed(seed)
    X = torch.rand(n_obs, D, generator=gen, dtype=torch.double)
    y = (_function(X) + 0.02 * torch.randn(n_obs, generator=gen, dtype=torch.double)).unsqueeze(-1)
    model = SingleTaskGP(X, y)
    model.covar_module.lengthscale = 0.25
    model.likelihood.noise = 1e-3
    return model.eval(), X, y


def _pool(n: int, seed: int) -> torch.Tensor:
    return torch.rand(n, D, generator=torch.Generator().manual_seed(seed + 1), dtype=torch.double)


def time_matloop(pool_size: int, n_obs: int, q: int, threads: int) -> float:
    from agent.selection import select_batch
    from agent.spec.objectives import Objective

    torch.set_num_threads(threads)
    model, X, y = _model(n_obs, 0)
    pool = _pool(pool_size, 0)
    start = time.perf_counter()
    picks = select_batch(model, pool, objectives=[Objective(property="y", goal="maximize")], properties=["y"], q=q,
                         X_observed=X, Y_observed=y)
    seconds = time.perf_counter() - start
    assert len(picks) == q and len({p.index for p in picks}) == q
    return seconds


def _select(model, X, y, pool, q: int):
    from agent.selection import select_batch
    from agent.spec.objectives import Objective

    return select_batch(model, pool, objectives=[Objective(property="y", goal="maximize")], properties=["y"], q=q,
                        X_observed=X, Y_observed=y)


def time_scoring(pool_size: int, n_obs: int, q: int) -> tuple[float, float, list]:
    """Seconds of the pool's posterior moments alone, of the whole selection, and the picks, on the current
    executor (this process unless inside ``fanning_out``)."""
    from agent.selection.scoring import pool_moments

    model, X, y = _model(n_obs, 0)
    pool = _pool(pool_size, 0)
    start = time.perf_counter()
    pool_moments(model, pool)
    moments = time.perf_counter() - start
    model, X, y = _model(n_obs, 0)  # a fresh model: no cache left from the timing above
    start = time.perf_counter()
    picks = _select(model, X, y, pool, q)
    return moments, time.perf_counter() - start, [(p.index, p.acquisition_value) for p in picks]


def run_dask(args) -> int:
    """In-process against Dask LocalClusters of 1 and 2 worker processes (see the module docstring)."""
    from agent.selection.scoring import SCORE_CHUNK
    from flows.compute import open_fan_out
    from matloop.compute import LocalDaskCluster, fanning_out

    torch.set_num_threads(args.threads)
    load = " ".join(f"{v:.1f}" for v in __import__("os").getloadavg())
    print(f"# pool scoring on Dask: n_obs={args.n_obs} q={args.q} d={D}; in-process with {args.threads} torch "
          f"thread(s); Dask workers 1 thread each; load average {load}")
    print(f"{'pool':>9} {'where':>14} {'moments_s':>10} {'select_s':>9} {'moments x':>10} {'select x':>9} same")
    warm = SCORE_CHUNK + 1  # two chunks: every code path of a fanned-out step, imports included
    time_scoring(warm, 50, 2)
    here = {n: time_scoring(n, args.n_obs, args.q) for n in args.pools}
    for n, (moments, select, _) in here.items():
        print(f"{n:>9} {'in-process':>14} {moments:>10.2f} {select:>9.2f} {'1.00':>10} {'1.00':>9} -", flush=True)
    ratios: dict[int, dict[int, float]] = {}
    for workers in (1, 2):
        with open_fan_out(LocalDaskCluster(n_workers=workers, threads_per_worker=1)) as fan_out, \
                fanning_out(fan_out):
            time_scoring(warm, 50, 2)
            for n in args.pools:
                moments, select, picks = time_scoring(n, args.n_obs, args.q)
                same = picks == here[n][2]
                ratios.setdefault(n, {})[workers] = here[n][0] / moments
                print(f"{n:>9} {f'{workers} worker(s)':>14} {moments:>10.2f} {select:>9.2f} "
                      f"{here[n][0] / moments:>10.2f} {here[n][1] / select:>9.2f} {'yes' if same else 'NO'}",
                      flush=True)
                if not same:
                    print(f"error: the picks on {workers} Dask worker(s) differ from the in-process ones", flush=True)
                    return 1
    n = 100_000 if 100_000 in ratios else max(ratios)
    print(f"summary: pool={n} n_obs={args.n_obs} moments_s={here[n][0]:.2f} one_worker={ratios[n][1]:.2f} "
          f"two_workers={ratios[n][2]:.2f}", flush=True)
    return 0


def _naive_child(pool_size: int, n_obs: int, q: int, threads: int, out) -> None:
    warnings.filterwarnings("ignore")
    from botorch.acquisition.logei import qLogExpectedImprovement
    from botorch.optim import optimize_acqf_discrete

    torch.set_num_threads(threads)
    model, X, _ = _model(n_obs, 0)
    pool = _pool(pool_size, 0)
    start = time.perf_counter()
    with torch.no_grad():
        best_f = float(model.posterior(X).mean.max())  # the plug-in incumbent, as select_batch uses
    acq = qLogExpectedImprovement(model, best_f=best_f)
    optimize_acqf_discrete(acq, q=q, choices=pool, X_avoid=X)
    out.put(time.perf_counter() - start)


def time_naive(pool_size: int, n_obs: int, q: int, threads: int, limit: float) -> float | None:
    """Seconds of plain optimize_acqf_discrete, or None when it ran past ``limit``."""
    ctx = mp.get_context("spawn")
    out = ctx.Queue()
    child = ctx.Process(target=_naive_child, args=(pool_size, n_obs, q, threads, out))
    child.start()
    child.join(limit)
    if child.is_alive():
        child.terminate()
        child.join()
        return None
    return out.get() if not out.empty() else None


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true",
                        help="pools 1,000 and 3,000 with 500 observations, q=4 (with --dask: 40,000)")
    parser.add_argument("--pools", type=int, nargs="+", default=[10_000, 100_000, 1_000_000])
    parser.add_argument("--n-obs", type=int, default=2000)
    parser.add_argument("--q", type=int, default=16)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--naive-limit", type=float, default=300.0, help="seconds before the naive run is stopped")
    parser.add_argument("--naive-max-pool", type=int, default=100_000, help="skip the naive run on larger pools")
    parser.add_argument("--dask", action="store_true",
                        help="in-process against Dask LocalClusters of 1 and 2 workers (default pool: 100,000)")
    args = parser.parse_args(argv)
    if args.dask:
        if args.quick:
            args.pools, args.n_obs, args.q = [40_000], 500, 4
        elif args.pools == parser.get_default("pools"):
            args.pools = [100_000]
        warnings.filterwarnings("ignore")
        return run_dask(args)
    if args.quick:
        args.pools, args.n_obs, args.q, args.naive_limit = [1_000, 3_000], 500, 4, 20.0
    warnings.filterwarnings("ignore")
    print(f"# acquisition speed: n_obs={args.n_obs} q={args.q} threads={args.threads} d={D}")
    print(f"{'pool':>9} {'matloop_s':>10} {'naive_s':>10} {'naive/matloop':>14}")
    time_matloop(100, 50, 2, args.threads)  # warm-up: imports and first-call overheads are not selection time
    summary = None
    for n in args.pools:
        ours = time_matloop(n, args.n_obs, args.q, args.threads)
        naive = time_naive(n, args.n_obs, args.q, args.threads, args.naive_limit) if n <= args.naive_max_pool else None
        if naive is None:
            skipped = n > args.naive_max_pool
            naive_text = "not run" if skipped else f">{args.naive_limit:.0f}"
            ratio_text = "n/a" if skipped else f">{args.naive_limit / ours:.1f}"
        else:
            naive_text, ratio_text = f"{naive:.1f}", f"{naive / ours:.1f}"
        print(f"{n:>9} {ours:>10.2f} {naive_text:>10} {ratio_text:>14}", flush=True)
        if summary is None or n == 100_000 or (summary[0] != 100_000 and n > summary[0]):
            summary = (n, ours, ratio_text)  # the 10^5 pool when measured, else the largest
    assert summary is not None
    print(f"summary: pool={summary[0]} n_obs={args.n_obs} q={args.q} seconds={summary[1]:.2f} vs_naive={summary[2]}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
