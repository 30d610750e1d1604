"""Cost to find the best candidate: multi-fidelity matloop against single-fidelity matloop at the top fidelity.

Each problem is a pool with every candidate's answer known at every fidelity (a replay: a strategy sees only
what it has chosen). Both strategies start from the same random initial points (same seeds): the
multi-fidelity one sends them where a campaign's initial design does
(:func:`agent.selection.fidelity.initial_design_fidelity`), the single-fidelity one to the top fidelity. Then
batches of ``q``, chosen by the campaign's own code — the single-fidelity
strategy by :func:`agent.selection.select_batch` on :func:`surrogates.fit_surrogate` (a GP), the multi-fidelity
one by :func:`agent.selection.fidelity.select_with_fidelities` on :func:`surrogates.multifidelity.fit_multifidelity`
(its default model) — until a *top-fidelity* measurement lies within the stated tolerance of the pool's best,
or the cost cap is spent (then the run counts as the cap, marked ``>``).

Problems:
  * ``hartmann``: BoTorch's augmented Hartmann (maximise), a Sobol pool in [0, 1]^6; cheap fidelity s = 0.5
    at cost 0.1, truth s = 1 at cost 1; tolerance 2 % of the pool's range.
  * ``microstructure``: the simulated lab's conduction solver (no noise), conductivity closest to 5.0 W/(m K) on
    a grid of volume fraction x length scale; coarse 16x16 mesh at cost 0.1, fine 64x64 mesh (truth) at cost 1;
    tolerance 0.05 W/(m K) (the template's).
  * ``binaries``: CHGNet vs GPAW formation energies (minimise) from ``benchmarks/data/binaries_chgnet_gpaw.csv``
    (columns ``formula, chgnet, gpaw`` and optional numeric feature columns ``f_*``), cost 0.01 vs 1;
    skipped, with a line saying so, when the table is absent.

Development problems (``dev``; every change to the multi-fidelity strategy is decided on these, the three
above are the issue's report set):
  * ``branin``: BoTorch's augmented Branin (minimise) on a Sobol pool; cheap s = 0.5 at cost 0.1 (biased).
  * ``branin-target``: the same pool and fidelities, the objective a target value (the truth's 25th percentile),
    as the microstructure's is; added after the report set showed that the initial design's pairing matters
    differently for a target value than for an optimum.
  * ``hartmann-shifted``: Hartmann-6 whose cheap fidelity is the landscape displaced by 0.12 (correlation 0.79).

Ends with a ``dev:`` line over the development problems, then
``summary: problems=<n> cost_ratio_mean=<r> wins=<k>/<n>`` over the report set: per problem the ratio of mean
costs (multi- over single-fidelity, over seeds), their mean, and how many problems the multi-fidelity strategy
needs less. Model fits skip cross-validation (``cv_folds=0``, a campaign setting) in both strategies: the metrics do
not change the picks' model except through recalibration, which both then skip alike.

    python benchmarks/multifidelity.py [--quick] [--seeds N] [--jobs N] [--problems a,b]
"""

from __future__ import annotations

import argparse
import contextlib
import csv
import sys
import time
import warnings
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from agent.selection import select_batch  # noqa: E402
from agent.selection.fidelity import initial_design_fidelity, one_anchor, select_with_fidelities  # noqa: E402
from agent.spec.objectives import Objective  # noqa: E402
from surrogates import fit_surrogate  # noqa: E402
from surrogates.multifidelity import FidelityData, fit_multifidelity  # noqa: E402

BINARIES = ROOT / "benchmarks" / "data" / "binaries_chgnet_gpaw.csv"


@dataclass
class Problem:
    name: str
    X: torch.Tensor  # pool features, in [0, 1]
    values: list[np.ndarray]  # per fidelity, cheapest first; the last is the truth
    costs: list[float]
    fidelities: list[str]
    objective: Objective
    tolerance: float

    def utility(self, y: np.ndarray) -> np.ndarray:
        o = self.objective
        return y if o.goal == "maximize" else (-y if o.goal == "minimize" else -np.abs(y - float(o.target)))

    @property
    def best(self) -> float:
        return float(self.utility(self.values[-1]).max())


def hartmann(n: int) -> Problem:
    from botorch.test_functions import AugmentedHartmann
    from torch.quasirandom import SobolEngine

    f = AugmentedHartmann(negate=True)
    X = SobolEngine(6, scramble=True, seed=7).draw(n).to(torch.double)
    vals = [f(torch.cat([X, torch.full((n, 1), s, dtype=torch.double)], -1)).numpy() for s in (0.5, 1.0)]
    span = float(vals[1].max() - vals[1].min())
    return Problem("hartmann", X, vals, [0.1, 1.0], ["s=0.5", "s=1"], Objective(property="y", goal="maximize"),
                   0.02 * span)


def microstructure(steps: tuple[int, int]) -> Problem:
    from lab_adapters.simlab.scenarios.microstructure import Microstructure, MicrostructureCoarse

    vf, ls = np.linspace(0.1, 0.9, steps[0]), np.linspace(2.0, 8.0, steps[1])
    grid = [(a, b) for a in vf for b in ls]
    rng = np.random.default_rng(0)
    vals = []
    for scenario in (MicrostructureCoarse(), Microstructure()):
        vals.append(np.array([scenario.evaluate({"volume_fraction": a, "length_scale": b}, rng).raw["exact"]
                              for a, b in grid]))
    X = torch.tensor([[(a - 0.1) / 0.8, (b - 2.0) / 6.0] for a, b in grid], dtype=torch.double)
    return Problem("microstructure", X, vals, [0.1, 1.0], ["coarse", "fine"],
                   Objective(property="y", goal="target", target=5.0, tolerance=0.05), 0.05)


#: the features of a binary a campaign's crystal featurizer would see first: each site's element (Pauling
#: electronegativity, atomic radius, period) and the prototype, one-hot
PROTOTYPES = ("rocksalt", "zincblende", "cesium_chloride")


def _binary_features(formula: str, prototype: str) -> list[float]:
    from pymatgen.core import Composition

    cation, anion = sorted(Composition(formula).elements, key=lambda e: e.X)
    sites = [[float(e.X), float(e.atomic_radius or 0.0), float(e.row)] for e in (cation, anion)]
    return [*sites[0], *sites[1], *[float(prototype == p) for p in PROTOTYPES]]


def binaries() -> Problem | None:
    """CHGNet (relaxed) vs GPAW (static, at the prototype's geometry) formation energies of the dft-binaries space,
    from the table ``benchmarks/make_binaries_table.py`` computed once (its settings beside it)."""
    if not BINARIES.is_file():
        return None
    with BINARIES.open() as fh:
        rows = [r for r in csv.DictReader(fh) if r.get("gpaw_status") == "succeeded"
                and r.get("chgnet_formation_energy") and r.get("gpaw_formation_energy")]
    if len(rows) < 10:
        print(f"binaries: {BINARIES.name} has {len(rows)} usable rows; skipped")
        return None
    F = np.array([_binary_features(r["formula"], r["prototype"]) for r in rows])
    F = (F - F.min(0)) / np.where(np.ptp(F, 0) > 0, np.ptp(F, 0), 1.0)
    vals = [np.array([float(r[k]) for r in rows]) for k in ("chgnet_formation_energy", "gpaw_formation_energy")]
    return Problem("binaries", torch.tensor(F), vals, [0.01, 1.0], ["chgnet", "gpaw"],
                   Objective(property="y", goal="minimize"), 0.01)


def run(problem: Problem, multi: bool, seed: int, n0: int, q: int, cap: float) -> tuple[float, bool]:
    """Cost until a top-fidelity result is within tolerance of the pool's best (or the cap, unfound)."""
    n, top = len(problem.X), len(problem.values) - 1
    rng = np.random.default_rng(seed)
    measured: list[set[int]] = [set() for _ in problem.values]
    start = [int(i) for i in rng.choice(n, size=n0, replace=False)]
    cost = 0.0
    for rank, i in enumerate(start):  # the campaign's initial design: which fidelities each point goes to
        at = (initial_design_fidelity(rank, n0, problem.fidelities, one_anchor([problem.objective])) if multi
              else problem.fidelities[top])
        for f in range(len(problem.values)) if at is None else [problem.fidelities.index(at)]:
            measured[f].add(i)
            cost += problem.costs[f]
    it = 0
    while True:
        found = [i for i in measured[top] if problem.utility(problem.values[top][[i]])[0] >= problem.best
                 - problem.tolerance]
        if found:
            return cost, True
        if cost >= cap:
            return cost, False
        it += 1
        rows = sorted(measured[top])
        X_obs = problem.X[rows]
        Y_obs = torch.tensor(problem.values[top][rows]).unsqueeze(-1)
        kwargs = dict(objectives=[problem.objective], properties=["y"], q=q, X_observed=X_obs, Y_observed=Y_obs,
                      seed=seed * 1000 + it)
        if multi:
            data = [FidelityData(name, c, problem.X[sorted(m)], torch.tensor(v[sorted(m)]))
                    for name, c, m, v in zip(problem.fidelities, problem.costs, measured, problem.values, strict=True)]
            fitted = fit_multifidelity(data, top, seed=seed, cv_folds=0)
            fps = [str(i) for i in range(n)]
            jobs_at = {str(i): {problem.fidelities[f] for f in range(len(measured)) if i in measured[f]}
                       for i in range(n)}
            pool = [i for i in range(n) if i not in measured[top]]
            picks = select_with_fidelities(fitted, problem.X[pool], [fps[i] for i in pool], jobs_at, **kwargs)
            chosen = [(pool[p.index], problem.fidelities.index(p.fidelity)) for p in picks]
        else:
            fitted = fit_surrogate(X_obs, Y_obs, kind="gp", seed=seed, cv_folds=0)
            pool = [i for i in range(n) if i not in measured[top]]
            picks = select_batch(fitted.model, problem.X[pool], **kwargs)
            chosen = [(pool[int(p.index)], top) for p in picks]
        if not chosen:
            return cost, False
        for i, f in chosen:
            measured[f].add(i)
            cost += problem.costs[f]


def compare_models(problems: list[Problem], n_cheap: int, n_target: int) -> None:
    """5-fold cross-validated metrics per fidelity of each multi-fidelity model (``--models``)."""
    from surrogates.multifidelity import KINDS

    print("| problem | model | target RMSE | target NLL | target cov95 | cheap RMSE | seconds |\n|---|---|---|---|---|---|---|")
    for problem in problems:
        rng = np.random.default_rng(0)
        cheap = rng.choice(len(problem.X), size=min(n_cheap, len(problem.X)), replace=False)
        target = cheap[:n_target]
        data = [FidelityData(problem.fidelities[0], problem.costs[0], problem.X[cheap],
                             torch.tensor(problem.values[0][cheap])),
                FidelityData(problem.fidelities[-1], problem.costs[-1], problem.X[target],
                             torch.tensor(problem.values[-1][target]))]
        for kind in KINDS:
            t0 = time.perf_counter()
            m = fit_multifidelity(data, 1, kind=kind, seed=0, cv_folds=5).metrics
            low = next(v for k, v in m.items() if k != "0")
            print(f"| {problem.name} | {kind} | {m['0']['rmse']:.4f} | {m['0']['nll']:.3f} | {m['0']['cov95']:.2f} | "
                  f"{low['rmse']:.4f} | {time.perf_counter() - t0:.1f} |", flush=True)


def branin(n: int) -> Problem:
    """Development problem: BoTorch's augmented Branin (minimise) on a Sobol pool in [0, 1]^2; cheap fidelity
    s = 0.5 at cost 0.1 (biased: its minima sit elsewhere than the truth's), truth s = 1 at cost 1."""
    from botorch.test_functions import AugmentedBranin
    from torch.quasirandom import SobolEngine

    f = AugmentedBranin()
    lo, hi = f.bounds[0, :2].to(torch.double), f.bounds[1, :2].to(torch.double)
    X = SobolEngine(2, scramble=True, seed=11).draw(n).to(torch.double)
    Z = lo + (hi - lo) * X
    vals = [f(torch.cat([Z, torch.full((n, 1), s, dtype=torch.double)], -1)).numpy() for s in (0.5, 1.0)]
    span = float(vals[1].max() - vals[1].min())
    return Problem("branin", X, vals, [0.1, 1.0], ["s=0.5", "s=1"], Objective(property="y", goal="minimize"),
                   0.01 * span)


def branin_target(n: int) -> Problem:
    """Development problem with a target-value objective (as the microstructure's): the branin pool, the value
    wanted the truth's 25th percentile over the pool, tolerance 0.5 % of its range."""
    p = branin(n)
    target = float(np.quantile(p.values[1], 0.25))
    span = float(p.values[1].max() - p.values[1].min())
    return Problem("branin-target", p.X, p.values, p.costs, p.fidelities,
                   Objective(property="y", goal="target", target=target, tolerance=0.005 * span), 0.005 * span)


def hartmann_shifted(n: int) -> Problem:
    """Development problem: Hartmann-6 (maximise) whose cheap fidelity is biased the way a coarse model often is:
    the same landscape with its features displaced (evaluated at ``x + 0.12``, clipped; correlation 0.79 over the pool), so the cheap optimum is
    not the true one; cost 0.1 vs 1, a pool drawn with another seed; tolerance 2 % of the range."""
    from botorch.test_functions import Hartmann
    from torch.quasirandom import SobolEngine

    f = Hartmann(dim=6, negate=True)
    X = SobolEngine(6, scramble=True, seed=23).draw(n).to(torch.double)
    vals = [f((X + 0.12).clamp(0, 1)).numpy(), f(X).numpy()]
    span = float(vals[1].max() - vals[1].min())
    return Problem("hartmann-shifted", X, vals, [0.1, 1.0], ["shifted", "true"],
                   Objective(property="y", goal="maximize"), 0.02 * span)


def noisy_hartmann(n: int) -> Problem:
    """Augmented Hartmann whose cheap fidelity is replaced by noise of the same spread (uncorrelated)."""
    p = hartmann(n)
    rng = np.random.default_rng(1)
    noise = rng.normal(p.values[0].mean(), p.values[0].std(), size=n)
    return Problem("hartmann-noise", p.X, [noise, p.values[1]], p.costs, p.fidelities, p.objective, p.tolerance)


def _quiet() -> None:
    """A worker process as the main one: no warnings, one thread."""
    warnings.filterwarnings("ignore")
    torch.set_num_threads(1)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="small pools, one seed (< 60 s)")
    parser.add_argument("--seeds", type=int, default=None, help="seeds per problem (default 10, quick 1)")
    parser.add_argument("--models", action="store_true",
                        help="instead: cross-validate the multi-fidelity models against each other")
    parser.add_argument("--problems", default=None, help="comma-separated problem names to run (default: all)")
    parser.add_argument("--jobs", type=int, default=1, help="seeds run in this many processes (same costs)")
    args = parser.parse_args()
    warnings.filterwarnings("ignore")
    torch.set_num_threads(1)
    if args.models:
        compare_models([hartmann(512), noisy_hartmann(512), microstructure((21, 13))], 48, 16)
        return
    seeds = args.seeds or (1 if args.quick else 10)
    report = [hartmann(128 if args.quick else 512), microstructure((9, 5) if args.quick else (21, 13))]
    extra = binaries()
    if extra is None and not BINARIES.is_file():
        print(f"binaries: {BINARIES.relative_to(ROOT)} absent; skipped")
    report += [extra] if extra is not None else []
    dev = [branin(64 if args.quick else 256), branin_target(64 if args.quick else 256),
           hartmann_shifted(64 if args.quick else 384)]
    wanted = set(args.problems.split(",")) if args.problems else None
    sets = [("report", [p for p in report if wanted is None or p.name in wanted]),
            ("dev", [p for p in dev if wanted is None or p.name in wanted])]
    n0, q = (4, 4)
    print("| problem | set | pool | strategy | mean cost | found | runs | seconds |\n|---|---|---|---|---|---|---|---|")
    ratios: dict[str, list[float]] = {"report": [], "dev": []}
    with ProcessPoolExecutor(args.jobs, initializer=_quiet) if args.jobs > 1 else contextlib.nullcontext() as pool:
        for kind, problems in sets:
            for problem in problems:
                ratios[kind].append(compare(problem, kind, seeds, n0, q, args.quick, pool))
    for kind, line in (("dev", "dev"), ("report", "summary")):
        if ratios[kind]:
            r = ratios[kind]
            print(f"{line}: problems={len(r)} cost_ratio_mean={float(np.mean(r)):.3f} wins={sum(x < 1.0 for x in r)}/"
                  f"{len(r)}")


def compare(problem: Problem, kind: str, seeds: int, n0: int, q: int, quick: bool, pool: Any = None) -> float:
    """Both strategies on one problem over the seeds (in ``pool``'s processes if given: the same runs, the
    same costs); prints their rows and returns the cost ratio."""
    cap = 0.5 * len(problem.X) * problem.costs[-1] if not quick else 24.0
    means = {}
    for multi in (False, True):
        t0 = time.perf_counter()
        if pool is None:
            results = [run(problem, multi, s, n0, q, cap) for s in range(seeds)]
        else:
            results = list(pool.map(run, *zip(*[(problem, multi, s, n0, q, cap) for s in range(seeds)], strict=True)))
        costs = [c for c, _ in results]
        found = sum(ok for _, ok in results)
        means[multi] = float(np.mean(costs))
        label = "multi-fidelity" if multi else "top fidelity only"
        mark = "" if found == len(results) else ">"
        print(f"| {problem.name} | {kind} | {len(problem.X)} | {label} | {mark}{means[multi]:.2f} | {found}/{seeds} | "
              f"{seeds} | {time.perf_counter() - t0:.1f} |", flush=True)
    ratio = means[True] / means[False]
    print(f"{problem.name}: cost ratio (multi / single) {ratio:.3f}", flush=True)
    return ratio

if __name__ == "__main__":
    main()
