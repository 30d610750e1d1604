"""cINN (MatDesINNe) surrogate variants on MoS2: what was measured before a default changed.  (issue 9)

Same split, flow, validator and design count as ``benchmarks/inverse_design.py``; only the surrogate
ensemble that down-selects and localises, and the ensemble that ranks designs by agreement, differ: their
initialisation (``--init``, the torch seed set before the members are built), whether the surrogate's
members are bootstrapped (``--no-bootstrap`` for plain members), the ranking ensemble's size and share of
rows per member (``--ranking-members``, 0 to rank by the surrogate's own spread; ``--ranking-subsample``),
how many draws preselection starts from (``--preselect``) and the localisation's spread penalty
(``--spread-weight``). Prints the independent MAE per target and ends with

    summary: init=<i> bootstrap=<b> ranking=<k> preselect=<p> spread_weight=<w> mae_05=<a> mae_1=<c> s_10k=<t>

    .venv/bin/python benchmarks/cinn_variants.py --init 1                 # bootstrapped (the default)
    .venv/bin/python benchmarks/cinn_variants.py --init 1 --no-bootstrap  # plain members
    .venv/bin/python benchmarks/cinn_variants.py --init 1 --ranking-members 0  # rank by the surrogate's spread
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from benchmarks.inverse_design import independent_validator, mos2_split  # noqa: E402
from generators.inverse import FlowTraining, MatDesINNe, in_bounds  # noqa: E402
from generators.inverse.mlp import MLPEnsemble  # noqa: E402


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--init", type=int, default=1, help="torch seed before the members are built")
    parser.add_argument("--no-bootstrap", dest="bootstrap", action="store_false")
    parser.add_argument("--ranking-members", type=int, default=MatDesINNe.ranking_members)
    parser.add_argument("--ranking-subsample", type=float, default=MatDesINNe.ranking_subsample)
    parser.add_argument("--preselect", type=float, default=MatDesINNe.preselect)
    parser.add_argument("--spread-weight", type=float, default=0.0)
    parser.add_argument("--targets", type=float, nargs="+", default=[0.5, 1.0])
    parser.add_argument("--threads", type=int, default=1, help="torch CPU threads (the issue's time is on 2 cores)")
    parser.add_argument("--quick", action="store_true", help="3,000 rows, 1,000 designs, short training")
    args = parser.parse_args(argv)
    torch.set_num_threads(args.threads)
    seed = 0
    x, y, tr, ho, bounds = mos2_split(seed, args.quick)
    n = 1000 if args.quick else 10_000
    torch.manual_seed(1000 + args.init)
    surrogate = MLPEnsemble(x.shape[1], MatDesINNe.ensemble_members, hidden=MatDesINNe.surrogate_hidden).fit(
        x[tr], y[tr], epochs=40 if args.quick else 200, seed=seed, bootstrap=args.bootstrap)
    ranking = None
    if args.ranking_members > 0:
        torch.manual_seed(2000 + args.init)
        ranking = MLPEnsemble(x.shape[1], args.ranking_members, hidden=MatDesINNe.surrogate_hidden).fit(
            x[tr], y[tr], epochs=40 if args.quick else 200, seed=seed + 1, subsample=args.ranking_subsample)
    pipe = MatDesINNe(bounds, FlowTraining(epochs=15 if args.quick else 40, seed=seed), tolerance=0.1,
                      surrogate=surrogate, ranking=ranking, ranking_members=args.ranking_members,
                      preselect=args.preselect, spread_weight=args.spread_weight).fit(x[tr], y[tr])
    validator = independent_validator(x, y, ho, seed, args.quick)
    mae: dict[float, float] = {}
    seconds: list[float] = []
    for target in args.targets:
        start = time.perf_counter()
        designs = pipe.generate(target, n, seed=seed + 1).designs
        seconds.append((time.perf_counter() - start) * 10_000 / max(len(designs), 1))
        made = designs[in_bounds(designs, bounds)]
        mae[target] = float(np.mean(np.abs(validator.predict(made) - target)))
        print(f"target {target:.1f}: {len(made)} designs, independent MAE {mae[target]:.4f} eV, "
              f"{seconds[-1]:.1f} s per 10k", flush=True)
    print(f"summary: init={args.init} bootstrap={args.bootstrap} ranking={args.ranking_members} "
          f"preselect={args.preselect:g} spread_weight={args.spread_weight:g} mae_05={mae.get(0.5, float('nan')):.4f} "
          f"mae_1={mae.get(1.0, float('nan')):.4f} s_10k={np.mean(seconds):.1f}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
