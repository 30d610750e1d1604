"""Held-out accuracy and fit time of the GP on the OER plates, with and without the mixture's presence bits.

For each plate and training size, the GP (the project's ``fit_surrogate``, kind ``gp``, no cross-validation)
is fitted on random rows and predicts the rest, once on what a campaign's featurizer makes of the rows
(six loadings + one presence bit per metal, ``kernel: auto`` = additive over the two groups) and once on
the loadings alone (one Matern), over the same splits. Prints RMSE and fit seconds per variant and ends with
``summary: plates=<n> rmse_ratio_mean=<r> fit_time_ratio_mean=<t>`` (presence over loadings; below 1 is better
for RMSE). Selection itself is measured by ``benchmarks/efficiency.py``.

    .venv/bin/python benchmarks/presence_bits.py [--splits 5] [--sizes 40 100] [--quick]
"""

from __future__ import annotations

import argparse
import sys
import time
import warnings
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from benchmarks._common import OER_PLATES, fit_model, oer_pool  # noqa: E402


def held_out(X: torch.Tensor, y: torch.Tensor, groups: list[list[int]], train: np.ndarray, test: np.ndarray,
             seed: int) -> tuple[float, float]:
    """RMSE on ``test`` of the GP fitted on ``train``, and the fit's seconds."""
    unit = torch.stack([torch.zeros(X.shape[-1]), torch.ones(X.shape[-1])]).double()
    start = time.perf_counter()
    model = fit_model(X[train], y[train], seed, bounds=unit, groups=groups)
    seconds = time.perf_counter() - start
    with torch.no_grad():
        mean = model.posterior(X[test]).mean
    return float((mean - y[test]).pow(2).mean().sqrt()), seconds


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--splits", type=int, default=5)
    parser.add_argument("--sizes", type=int, nargs="+", default=[40, 100])
    parser.add_argument("--quick", action="store_true", help="one plate, one split, 40 rows: for the test suite")
    args = parser.parse_args(argv)
    plates = OER_PLATES[:1] if args.quick else OER_PLATES
    if args.quick:
        args.splits, args.sizes = 1, [40]
    torch.set_num_threads(1)
    warnings.filterwarnings("ignore")
    print(f"{'plate':<6} {'n':>4} {'rmse loadings':>14} {'rmse presence':>14} {'ratio':>6} {'fit s loadings':>15} "
          f"{'fit s presence':>15}")
    rmse_ratios, time_ratios = [], []
    for plate in plates:
        pool = oer_pool(plate)
        y = torch.tensor(pool.y, dtype=torch.double).unsqueeze(-1)
        loadings = (pool.X, [[i] for i in range(pool.X.shape[-1])])
        presence = (pool.model_X, pool.feature_groups)
        for n in args.sizes:
            results = {"loadings": [], "presence": []}
            for split in range(args.splits):
                order = np.random.default_rng(split).permutation(len(y))
                for name, (X, groups) in (("loadings", loadings), ("presence", presence)):
                    results[name].append(held_out(X, y, groups, order[:n], order[n:], split))
            rmse = {k: float(np.mean([r for r, _ in v])) for k, v in results.items()}
            secs = {k: float(np.mean([s for _, s in v])) for k, v in results.items()}
            rmse_ratios.append(rmse["presence"] / rmse["loadings"])
            time_ratios.append(secs["presence"] / secs["loadings"])
            print(f"{plate:<6} {n:>4} {rmse['loadings']:>14.4f} {rmse['presence']:>14.4f} {rmse_ratios[-1]:>6.2f} "
                  f"{secs['loadings']:>15.2f} {secs['presence']:>15.2f}", flush=True)
    print(f"summary: plates={len(plates)} rmse_ratio_mean={np.mean(rmse_ratios):.3f} "
          f"fit_time_ratio_mean={np.mean(time_ratios):.2f}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
