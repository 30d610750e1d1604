"""Synthetic benchmark pools with materials-like structure, for the wider efficiency suite.

Each entry of :data:`SYNTHETIC` builds a fully measured :class:`~benchmarks._common.Pool` from a seed (the seed
draws the pool's points where they are drawn; grids ignore it). Three kinds of structure that materials pools
have and the shared plates cover only partly, each once in the development split and once held out:

* **mixtures on a simplex** (composition grids like the OER plates, with the same presence-bit features);
* **a categorical choice plus continuous parameters** (a precursor or substrate, and process conditions);
* **needle-like optima** (a small region far better than a flat or rugged rest, like plate 3851's best);

plus the simulated lab's analytic scenarios (``lab_adapters/simlab/scenarios/analytic.py``) as pools, so the
suite also covers what the simulated lab serves. :data:`SPLIT` says which pools changes may be tuned on (``dev``)
and which are only reported (``heldout``); :data:`SOURCE` names each one's source and licence. None of the five
datasets of Liang et al. 2021 nor any Olympus dataset is here: they are kept for the independent check.
"""

from __future__ import annotations

import itertools
from collections.abc import Callable

import numpy as np
import torch
from botorch.test_functions.synthetic import AckleyMixed, DropWave, Hartmann, Michalewicz, Shekel, StyblinskiTang
from torch.quasirandom import SobolEngine

from benchmarks._common import Pool, campaign_features

BOTORCH = "BoTorch botorch.test_functions.synthetic.{} (MIT licence; standard definition, Surjanovic & Bingham's " \
          "Virtual Library of Simulation Experiments)"
SIMLAB = "matloop's simulated lab, lab_adapters/simlab/scenarios/analytic.py {} (this repository and its licence; standard " \
         "definition, Surjanovic & Bingham's Virtual Library of Simulation Experiments), measured without noise"


def _sobol(d: int, n: int, seed: int) -> torch.Tensor:
    return SobolEngine(d, scramble=True, seed=seed).draw(n, dtype=torch.double)


def _simplex_grid(parts: int, units: int) -> np.ndarray:
    """Every split of ``units`` grid steps among ``parts`` components, as fractions (stars and bars)."""
    rows = []
    for bars in itertools.combinations(range(units + parts - 1), parts - 1):
        edges = (-1, *bars, units + parts - 1)
        rows.append([edges[i + 1] - edges[i] - 1 for i in range(parts)])
    return np.asarray(rows, dtype=float) / units


def _simplex_pool(name: str, fn, parts: int, units: int, scale: float) -> Pool:
    """A composition grid (as the OER plates') measured by ``fn`` at ``scale`` times the fractions; minimised."""
    columns = [f"c{i + 1}" for i in range(parts)]
    fractions = _simplex_grid(parts, units)
    X = torch.tensor(fractions, dtype=torch.double)
    y = fn.evaluate_true(X * scale).numpy()
    features, groups = campaign_features(columns, [dict(zip(columns, row, strict=True)) for row in fractions.tolist()])
    return Pool(name, X, y, True, 0.01, columns, groups, features)


def simplex_hartmann6(seed: int) -> Pool:
    """Hartmann-6 on a six-component mixture, 0.1 steps (3003 compositions, the OER plates' grid)."""
    return _simplex_pool("simplex_hartmann6", Hartmann(dim=6), 6, 10, 1.0)


def simplex_shekel(seed: int) -> Pool:
    """Shekel-10 on a four-component mixture, 0.05 steps (1771 compositions), the fractions scaled to [0, 10]."""
    return _simplex_pool("simplex_shekel", Shekel(m=10), 4, 20, 10.0)


def mixed_ackley(seed: int) -> Pool:
    """Ackley with four on/off choices and three continuous parameters (BoTorch's ``AckleyMixed``, dim 7), its
    optimum moved off the origin (fixed); 96 drawn settings of the continuous part for each of the 16 choices."""
    with torch.random.fork_rng():
        torch.manual_seed(0)  # the optimum is part of the problem, not of the draw
        fn = AckleyMixed(dim=7, randomize_optimum=True)
    switches = torch.tensor(list(itertools.product((0.0, 1.0), repeat=4)), dtype=torch.double)
    cont = _sobol(3, 96, seed)
    X = torch.cat([switches.repeat_interleave(len(cont), 0), cont.repeat(len(switches), 1)], dim=-1)
    columns = [f"s{i + 1}" for i in range(4)] + ["t1", "t2", "t3"]
    return Pool("mixed_ackley", X, fn.evaluate_true(X).numpy(), True, 0.01, columns, [[i] for i in range(7)])


#: Styblinski-Tang's first coordinate, set by a categorical choice: near its optimum (-2.90), in between, far.
STYBLINSKI_OPTIONS = (-2.9, 0.0, 3.0)


def mixed_styblinski(seed: int) -> Pool:
    """Styblinski-Tang (4-D, [-5, 5]) whose first coordinate is a three-way categorical choice (one-hot), the other
    three continuous; 500 drawn settings for each option."""
    fn = StyblinskiTang(dim=4)
    cont = _sobol(3, 500, seed)
    rows, feats = [], []
    for k, level in enumerate(STYBLINSKI_OPTIONS):
        x = torch.cat([torch.full((len(cont), 1), level, dtype=torch.double), -5 + 10 * cont], dim=-1)
        rows.append(x)
        onehot = torch.zeros(len(cont), len(STYBLINSKI_OPTIONS), dtype=torch.double)
        onehot[:, k] = 1.0
        feats.append(torch.cat([onehot, cont], dim=-1))
    y = fn.evaluate_true(torch.cat(rows)).numpy()
    columns = [f"choice_{v:g}" for v in STYBLINSKI_OPTIONS] + ["t1", "t2", "t3"]
    return Pool("mixed_styblinski", torch.cat(feats), y, True, 0.01, columns, [[0, 1, 2], [3], [4], [5]])


def _box_pool(name: str, fn, d: int, n: int, seed: int, minimize: bool = True) -> Pool:
    """``n`` scrambled Sobol points of ``fn``'s box, unit-scaled for the model."""
    u = _sobol(d, n, seed)
    low, high = fn.bounds[0], fn.bounds[1]
    y = fn.evaluate_true(low + u * (high - low)).numpy()
    return Pool(name, u, y, minimize, 0.01, [f"x{i + 1}" for i in range(d)])


def needle_dropwave(seed: int) -> Pool:
    """Drop-Wave (2-D): a single sharp central well inside concentric ripples; 2000 drawn points."""
    return _box_pool("needle_dropwave", DropWave(), 2, 2000, seed)


def needle_michalewicz(seed: int) -> Pool:
    """Michalewicz (5-D, m = 10): steep narrow valleys on a flat plateau; 2000 drawn points."""
    return _box_pool("needle_michalewicz", Michalewicz(dim=5), 5, 2000, seed)


def _simlab_pool(name: str, scenario, n: int, seed: int) -> Pool:
    """The scenario's closed form, measured without noise at ``n`` Sobol points of its box (unit-scaled)."""
    names = list(scenario.bounds)
    low = np.array([scenario.bounds[k][0] for k in names])
    high = np.array([scenario.bounds[k][1] for k in names])
    u = _sobol(len(names), n, seed)
    rng = np.random.default_rng(seed)
    y = np.array([
        scenario.evaluate(dict(zip(names, (low + row * (high - low)).tolist(), strict=True)), rng,
                          noise_scale=0.0).values["y"].value
        for row in u.numpy()
    ])
    return Pool(name, u, y, True, 0.01, names)


def simlab_branin(seed: int) -> Pool:
    from lab_adapters.simlab.scenarios.analytic import Branin

    return _simlab_pool("simlab_branin", Branin(), 1000, seed)


def simlab_hartmann6(seed: int) -> Pool:
    from lab_adapters.simlab.scenarios.analytic import Hartmann6

    return _simlab_pool("simlab_hartmann6", Hartmann6(), 2000, seed)


SYNTHETIC: dict[str, Callable[[int], Pool]] = {
    "simplex_hartmann6": simplex_hartmann6,
    "simplex_shekel": simplex_shekel,
    "mixed_ackley": mixed_ackley,
    "mixed_styblinski": mixed_styblinski,
    "needle_dropwave": needle_dropwave,
    "needle_michalewicz": needle_michalewicz,
    "simlab_branin": simlab_branin,
    "simlab_hartmann6": simlab_hartmann6,
}

#: Which pools changes may be decided on, and which are only reported: one of each kind in each split.
SPLIT: dict[str, str] = {
    "simplex_hartmann6": "dev",
    "simplex_shekel": "heldout",
    "mixed_ackley": "dev",
    "mixed_styblinski": "heldout",
    "needle_dropwave": "dev",
    "needle_michalewicz": "heldout",
    "simlab_branin": "dev",
    "simlab_hartmann6": "heldout",
}

SOURCE: dict[str, str] = {
    "simplex_hartmann6": BOTORCH.format("Hartmann"),
    "simplex_shekel": BOTORCH.format("Shekel"),
    "mixed_ackley": BOTORCH.format("AckleyMixed"),
    "mixed_styblinski": BOTORCH.format("StyblinskiTang"),
    "needle_dropwave": BOTORCH.format("DropWave"),
    "needle_michalewicz": BOTORCH.format("Michalewicz"),
    "simlab_branin": SIMLAB.format("Branin"),
    "simlab_hartmann6": SIMLAB.format("Hartmann6"),
}
