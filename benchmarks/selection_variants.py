"""Surrogate variants in the efficiency benchmark's pool replay: what was tried before a default changed.

The replay, the acquisition (``select_batch``, plug-in qLogEI) and the seeds are those of
``benchmarks/efficiency.py``; only the GP (or, for ``local-*``, the candidates offered) differs. It prints the
median number of experiments to find the pool's best point per batch size and pooled, matloop only (compare
with BayBE through ``efficiency.py``). The variants, all on BayBE-style Gamma priors:

* ``default``: one Matern-5/2 over all columns (what ``kernel: auto`` picks for one-column parameters);
  the project's own GP (``surrogates.api.fit_surrogate`` with ``kernel: matern``);
* ``additive``: one Matern per feature group plus one over all (the project's GP with ``kernel: additive``;
  what ``kernel: auto`` picks for the plates' loadings + presence bits and for the perovskites' one-hot blocks);
* ``raw``: ``default`` on the design columns alone, as before presence bits (on the plates, the six loadings);
* ``additive-only``: the per-parameter terms without the full term;
* ``warp``: ``default`` after a learnt Kumaraswamy warp of every input (BoTorch ``Warp``);
* ``lengthscale-x0.5`` / ``lengthscale-x2``: ``default`` with the lengthscale prior's mode halved / doubled;
* ``local-R-K``: ``default``, offering only candidates within L1 distance R of the K best measured points
  (a TuRBO-like trust region; the whole pool when fewer than q remain).

    .venv/bin/python benchmarks/selection_variants.py --pool 4098 --variant warp --batch-sizes 8 --seeds 30

The GP sees the pool's features as a campaign's featurizer makes them (``Pool.model_X``: on the plates the
loadings plus a presence bit per metal, since that featurizer change; the warp, lengthscale and local rows of
RESULTS-selection.md were measured on the loadings alone, before it). The other variants are built here on the same parts (``surrogates.gp``'s priors and kernels), so they differ from
``default`` only by what their name says. ``--quick`` (2 seeds, q=4, budget 24) is the test suite's smoke run.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from benchmarks._common import OER_PLATES, Pool, fit_model, oer_pool, perovskite_pool  # noqa: E402
from benchmarks.efficiency import first_hit, replay  # noqa: E402

VARIANTS = ("default", "additive", "raw", "additive-only", "warp", "lengthscale-x0.5", "lengthscale-x2")


def fit_variant(X: torch.Tensor, y: torch.Tensor, seed: int, variant: str, groups: list[list[int]]):
    """The benchmark's GP (unit-cube inputs, standardised outcome, Gamma priors) with ``variant``'s change.

    ``default`` and ``additive`` are the project's GP itself, so they follow any change to its defaults.
    """
    if variant in ("default", "additive"):
        unit = torch.stack([torch.zeros(X.shape[-1]), torch.ones(X.shape[-1])]).double()
        kernel = "matern" if variant == "default" else "additive"
        return fit_model(X, y, seed, bounds=unit, groups=groups, kernel=kernel)
    from botorch.fit import fit_gpytorch_mll
    from botorch.models import SingleTaskGP
    from botorch.models.transforms.input import ChainedInputTransform, Normalize, Warp
    from botorch.models.transforms.outcome import Standardize
    from gpytorch.kernels import AdditiveKernel, ScaleKernel
    from gpytorch.mlls import ExactMarginalLogLikelihood
    from gpytorch.priors import LogNormalPrior

    from surrogates.gp import dimension_scaled_matern, gamma_priors

    d = X.shape[-1]
    parts = gamma_priors(d, fixed_noise=False)
    if variant == "additive-only":
        parts["covar_module"] = AdditiveKernel(*[ScaleKernel(dimension_scaled_matern(g, len(g))) for g in groups])
    elif variant.startswith("lengthscale-x"):
        factor = float(variant.removeprefix("lengthscale-x"))
        parts["covar_module"] = dimension_scaled_matern(None, d, mode_scale=factor)
    transform = Normalize(d, bounds=torch.stack([torch.zeros(d), torch.ones(d)]).double())
    if variant == "warp":
        prior = LogNormalPrior(0.0, 0.75**0.5)
        warp = Warp(d=d, indices=list(range(d)), concentration1_prior=prior, concentration0_prior=prior)
        transform = ChainedInputTransform(normalize=transform, warp=warp)
    with torch.random.fork_rng():
        torch.manual_seed(seed)
        model = SingleTaskGP(X, y, input_transform=transform, outcome_transform=Standardize(m=1), **parts)
        fit_gpytorch_mll(ExactMarginalLogLikelihood(model.likelihood, model))
    return model.eval()


def chooser(variant: str):
    """A replay chooser for ``variant`` (``local-R-K`` restricts the candidates; its GP is ``default``)."""
    from agent.selection import select_batch
    from agent.spec.objectives import Objective

    local = None
    if variant.startswith("local-"):
        _, radius, k = variant.split("-")
        local, variant = (float(radius), int(k)), "default"

    raw = variant == "raw"  # the design columns alone (on the plates: the loadings without presence bits)

    def choose(pool: Pool, observed: list[int], q: int, seed: int) -> list[int]:
        features = pool.X if raw else pool.model_X
        groups = [[i] for i in range(features.shape[-1])] if raw else pool.feature_groups
        X = features[observed]
        y = torch.tensor(pool.y[observed], dtype=torch.double).unsqueeze(-1)
        model = fit_variant(X, y, seed, "default" if raw else variant, groups)
        exclude = torch.zeros(len(pool.X), dtype=torch.bool)
        exclude[observed] = True
        if local is not None:
            best = pool.X[observed][np.argsort(-pool.utility[observed])[: local[1]]]
            near = (torch.cdist(pool.X, best, p=1) <= local[0] + 1e-9).any(dim=1)
            if int((near & ~exclude).sum()) >= q:
                exclude |= ~near
        goal = "minimize" if pool.minimize else "maximize"
        picks = select_batch(model, features, objectives=[Objective(property="y", goal=goal)], properties=["y"], q=q,
                             X_observed=X, Y_observed=y, exclude=exclude, seed=seed)
        return [p.index for p in picks]

    return choose


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--pool", choices=[*OER_PLATES, "perovskites"], required=True)
    parser.add_argument("--variant", required=True, help=f"one of {VARIANTS} or local-R-K (e.g. local-0.4-3)")
    parser.add_argument("--batch-sizes", type=int, nargs="+", default=[8])
    parser.add_argument("--seeds", type=int, default=30)
    parser.add_argument("--budget", type=int, default=150)
    parser.add_argument("--n-init", type=int, default=4)
    parser.add_argument("--quick", action="store_true", help="2 seeds, q=4, budget 24: the test suite's smoke run")
    args = parser.parse_args(argv)
    if args.quick:
        args.seeds, args.batch_sizes, args.budget = min(args.seeds, 2), [4], 24
    if args.variant not in VARIANTS and not args.variant.startswith("local-"):
        parser.error(f"--variant {args.variant!r}: expected one of {VARIANTS} or local-R-K")
    torch.set_num_threads(1)
    pool = perovskite_pool() if args.pool == "perovskites" else oer_pool(args.pool)
    start = time.perf_counter()
    found: dict[int, list[int]] = {}
    for q in args.batch_sizes:
        for seed in range(args.seeds):
            order = replay(pool, chooser(args.variant), q, seed, args.n_init, args.budget)
            found.setdefault(q, []).append(first_hit(order, pool.best_rows, args.budget))
        print(f"{pool.name} {args.variant} q={q}: median n_best {np.median(found[q]):g} over {args.seeds} seeds "
              f"(>{args.budget} = not found: {sum(v > args.budget for v in found[q])})", flush=True)
    pooled = [v for values in found.values() for v in values]
    print(f"summary: pool={pool.name} variant={args.variant} median_n_best={np.median(pooled):g} runs={len(pooled)} "
          f"seconds={time.perf_counter() - start:.0f}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
