"""How well can *any* independent model check a MoS2 design at 0.5 and 1.0 eV?  (issue 9, cINN)

``benchmarks/inverse_design.py`` grades cINN designs with an independent validator (an MLP fitted on
held-out rows).  Its own error on *measured* rows whose gap is within ±0.02 eV of the target bounds what
that check can show.  This script fits validators of three sizes, and the cINN's surrogate ensemble at two
sizes, on the same split as the benchmark (seed 0, 70/30) and prints that error for each, so the floor is
not one architecture's accident.

    .venv/bin/python benchmarks/inverse_validator_floor.py
"""

from __future__ import annotations

import sys
import time
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from benchmarks.inverse_design import mos2_split, near_target_error  # noqa: E402
from generators.inverse import MLPRegressor  # noqa: E402
from generators.inverse.mlp import MLPEnsemble  # noqa: E402

TARGETS = (0.5, 1.0)


def errors_near_targets(predict, x: np.ndarray, y: np.ndarray, rows: np.ndarray) -> list[float]:
    """``predict``'s mean error on the measured ``rows`` near each of ``TARGETS``."""
    return [near_target_error(predict, x, y, rows, target)[1] for target in TARGETS]


def main() -> None:
    torch.set_num_threads(1)
    torch.manual_seed(0)  # the first network is built before any fit seeds torch: without this its start varies
    x, y, train, held_out, _ = mos2_split(0)
    print(f"{'model':<44} {'rows fitted':>11} {'err@0.5':>8} {'err@1.0':>8} {'MAE all':>8} {'fit s':>6}")
    for hidden, depth, epochs in [(96, 3, 300), (256, 3, 300), (256, 4, 600)]:
        t = time.perf_counter()
        validator = MLPRegressor(x.shape[1], hidden=hidden, depth=depth).fit(x[held_out], y[held_out], epochs=epochs, seed=7)
        errs = errors_near_targets(validator.predict, x, y, train)
        mae = float(np.mean(np.abs(validator.predict(x[train]) - y[train])))
        print(f"{f'validator MLP {hidden}x{depth}, {epochs} epochs':<44} {len(held_out):>11} {errs[0]:>8.3f} "
              f"{errs[1]:>8.3f} {mae:>8.4f} {time.perf_counter() - t:>6.0f}")
    for hidden, epochs in [(64, 100), (128, 200)]:
        t = time.perf_counter()
        ensemble = MLPEnsemble(x.shape[1], 4, hidden=hidden).fit(x[train], y[train], epochs=epochs, seed=0)
        errs = errors_near_targets(ensemble.predict, x, y, held_out)
        mae = float(np.mean(np.abs(ensemble.predict(x[held_out]) - y[held_out])))
        print(f"{f'surrogate ensemble 4x{hidden}, {epochs} epochs':<44} {len(train):>11} {errs[0]:>8.3f} "
              f"{errs[1]:>8.3f} {mae:>8.4f} {time.perf_counter() - t:>6.0f}")


if __name__ == "__main__":
    main()
