"""The efficiency benchmark's problems: fully measured pools, which were used for tuning, and where each comes from.

``PROBLEMS`` maps a name to a builder ``seed -> Pool`` (the measured datasets ignore the seed; a synthetic
problem may draw its pool from it). ``SPLIT`` says whether a problem was used to decide changes (``dev``) or is
kept for reporting (``heldout``): the four OER plates and the hybrid perovskites tuned every default so far, so
they are ``dev``, and a change is decided on them and reported on the rest. ``SOURCE`` names each problem's
origin and licence.

More problems come in through :func:`register` (one line); ``benchmarks/problems_synthetic.py``, when present,
is registered here (its ``SYNTHETIC``, ``SPLIT`` and ``SOURCE``). Left out on purpose, for the independent
check: the five datasets of Liang et al. 2021 (npj Comput. Mater.) and the Olympus datasets beyond those in
``../shared/data``.
"""

from __future__ import annotations

import dataclasses
import importlib
import re
from collections.abc import Callable
from functools import cache
from pathlib import Path

import numpy as np
import pandas as pd

from benchmarks._common import DATA, Pool, categorical_space, dedupe, numeric_space

OER_PLATES = ("3496", "3851", "3860", "4098")
Builder = Callable[[int], Pool]


def oer_pool(plate: str) -> Pool:
    """One plate of Rohr et al.: six metal loadings on a 10 at.% simplex (the ``oer`` template's space),
    overpotential minimised."""
    raw = pd.read_csv(DATA / "oer_plates" / f"oer_plate_{plate}.csv")
    columns = [c for c in raw.columns if c.endswith("_load")]  # each plate has its own six metals
    df = dedupe(raw, columns, "overpotential")
    space = {
        "type": "parametric",
        "parameters": [{"name": c, "type": "continuous", "bounds": [0.0, 1.0]} for c in columns],
        "simplex": [{"parameters": columns, "total": 1.0, "step": 0.1}],
    }
    return Pool(f"oer_{plate}", df[columns], df["overpotential"].to_numpy(), True, 0.01, space)


def perovskite_pool() -> Pool:
    """Hybrid perovskites (Olympus): three categorical choices, HSE band gap minimised.

    BayBE is given each choice one-hot encoded, as its cached orders were computed (the shared
    ``descriptors.csv`` gives every option of a parameter the same values, so descriptors cannot tell
    options apart); matloop's campaign has three categorical parameters, which its featurizer one-hot encodes.
    """
    df = pd.read_csv(DATA / "hybrid_perovskites" / "hse_gaps.csv")
    choices = ["organic", "cation", "anion"]
    df = dedupe(df, choices, "hse_gap")
    onehot = pd.get_dummies(df[choices], dtype=float)
    return Pool("perovskites", df[choices], df["hse_gap"].to_numpy(), True, 0.05, categorical_space(df[choices]),
                baybe_frame=onehot)


_SITE = re.compile(r"^\s*([A-Z][a-z]?)\s+\S+\s+\d+\s+(-?[\d.]+)\s+(-?[\d.]+)\s+(-?[\d.]+)\s+[\d.]+\s*$", re.M)
ANIONS = ("O", "N", "F", "S")


def _abx(cif: str) -> tuple[str, str, str]:
    """The A-site metal, the B-site metal and the anion set of one cubic ABX3 cell: B is the metal the anions
    surround at half a lattice constant (the octahedral site), A the one at the cube's corner from them."""
    sites = [(el, np.array([float(x), float(y), float(z)])) for el, x, y, z in _SITE.findall(cif)]
    anions = [(el, xyz) for el, xyz in sites if el in ANIONS]
    metals = [(el, xyz) for el, xyz in sites if el not in ANIONS]
    if len(sites) != 5 or len(anions) != 3 or len(metals) != 2:
        raise ValueError("not a five-site ABX3 cell")

    def nearest(xyz: np.ndarray) -> float:
        return min(float(np.linalg.norm((xyz - a + 0.5) % 1.0 - 0.5)) for _, a in anions)

    a_site, b_site = sorted(metals, key=lambda m: -nearest(m[1]))
    counts = {el: sum(1 for e, _ in anions if e == el) for el in ANIONS}
    anion = "".join(f"{el}{n if n > 1 else ''}" for el, n in counts.items() if n)
    return a_site[0], b_site[0], anion


def perov5_pool() -> Pool:
    """Cubic ABX3 perovskites (perov5, Castelli et al.): A metal, B metal and anion set as categorical choices,
    DFT heat of formation minimised (the ``perovskite`` template's objective); 3,787 rows of the validation split."""
    raw = pd.read_csv(DATA / "perov5" / "perov5_val.csv")
    rows = [_abx(cif) for cif in raw["cif"]]
    df = pd.DataFrame(rows, columns=["a_site", "b_site", "anion"]).assign(heat=raw["heat_all"].to_numpy())
    df = dedupe(df, ["a_site", "b_site", "anion"], "heat")
    choices = df[["a_site", "b_site", "anion"]]
    return Pool("perov5", choices, df["heat"].to_numpy(), True, 0.01, categorical_space(choices))


def mos2_pool(limit: int = 2000, seed: int = 0) -> Pool:
    """Strained monolayer MoS2 (MatDesINNe): cell and field, seven continuous inputs, DFT band gap maximised;
    ``limit`` rows drawn once at random from the 10,798 (a fixed pool)."""
    names = ["a", "b", "c", "alpha", "beta", "gamma", "field"]
    x = pd.read_csv(DATA / "mos2_bandgap" / "data_x.csv", header=None, names=names)
    y = pd.read_csv(DATA / "mos2_bandgap" / "data_y.csv", header=None, names=["gap"])
    df = dedupe(pd.concat([x, y], axis=1), names, "gap")
    df = df.sample(n=min(limit, len(df)), random_state=seed).reset_index(drop=True)
    return Pool("mos2", df[names], df["gap"].to_numpy(), False, 0.01, numeric_space(df[names]))


def branin_pool() -> Pool:
    """The simulated lab's Branin scenario without noise, on its 0.5-step grid (961 points), minimised."""
    from lab_adapters.simlab.scenarios.analytic import branin

    grid = [(x1, x2) for x1 in np.arange(-5.0, 10.0001, 0.5) for x2 in np.arange(0.0, 15.0001, 0.5)]
    frame = pd.DataFrame(grid, columns=["x1", "x2"])
    y = np.array([branin(a, b) for a, b in grid])
    space = {"type": "parametric", "parameters": [
        {"name": "x1", "type": "continuous", "bounds": [-5.0, 10.0], "step": 0.5},
        {"name": "x2", "type": "continuous", "bounds": [0.0, 15.0], "step": 0.5},
    ]}
    return Pool("branin", frame, y, True, 0.01, space)


def hartmann6_pool(size: int = 2048) -> Pool:
    """The simulated lab's Hartmann-6 scenario without noise on 2,048 scrambled Sobol points of the unit cube
    (seed 0, the same pool for every replay seed), minimised: one narrow global basin among flat ones."""
    from scipy.stats import qmc

    from lab_adapters.simlab.scenarios.analytic import hartmann6

    points = np.round(qmc.Sobol(d=6, scramble=True, seed=0).random(size), 6)
    frame = pd.DataFrame(points, columns=[f"x{i}" for i in range(1, 7)])
    y = np.array([hartmann6(p) for p in points])
    space = {"type": "parametric", "parameters": [
        {"name": c, "type": "continuous", "bounds": [0.0, 1.0]} for c in frame.columns]}
    return Pool("hartmann6", frame, y, True, 0.01, space)


def xtb_pool(scaffold: str) -> Pool:
    """GFN2-xTB HOMO-LUMO gaps of substituted benzenes (874) or thiophenes (955; three sites, ten groups each),
    minimised: read through its problem file (``benchmarks/data/xtb_<scaffold>.yaml``), as a user's own dataset
    would be."""
    from benchmarks.problem_file import load_problem

    pool = load_problem(Path(__file__).resolve().parent / "data" / f"xtb_{scaffold}.yaml")
    return dataclasses.replace(pool, name=f"xtb_{scaffold}")


def _fixed(build: Callable[[], Pool]) -> Builder:
    """A dataset's builder: the same pool for every seed, built once."""
    once = cache(build)
    return lambda seed: once()


PROBLEMS: dict[str, Builder] = {
    **{f"oer_{p}": _fixed(lambda p=p: oer_pool(p)) for p in OER_PLATES},
    "perovskites": _fixed(perovskite_pool),
    "perov5": _fixed(perov5_pool),
    "mos2": _fixed(mos2_pool),
    "branin": _fixed(branin_pool),
    "hartmann6": _fixed(hartmann6_pool),
    "xtb_benzenes": _fixed(lambda: xtb_pool("benzenes")),
    "xtb_thiophenes": _fixed(lambda: xtb_pool("thiophenes")),
}
SPLIT: dict[str, str] = {
    **{f"oer_{p}": "dev" for p in OER_PLATES},
    "perovskites": "dev",
    "perov5": "heldout",
    "mos2": "heldout",
    "branin": "heldout",
    "hartmann6": "heldout",
    "xtb_benzenes": "heldout",
    "xtb_thiophenes": "dev",
}
SOURCE: dict[str, str] = {
    **{f"oer_{p}": f"OER plate {p}, Rohr et al., Chem. Sci. 2020, via the Olympus suite (MIT); ../shared/data"
        for p in OER_PLATES},
    "perovskites": "hybrid organic-inorganic perovskites, Kim et al., Sci. Data 2017, via Olympus (MIT); ../shared/data",
    "perov5": "perov5 validation split, Castelli et al. 2012 via the CDVAE repository (MIT); ../shared/data",
    "mos2": "strained MoS2 band gaps, MatDesINNe (Fung, Zhang et al., npj Comput. Mater. 2021) (MIT); ../shared/data",
    "branin": "Branin-Hoo (Surjanovic & Bingham's library), the simulated lab's closed form; no data file",
    "hartmann6": "Hartmann-6 (Surjanovic & Bingham's library), the simulated lab's closed form; no data file",
    "xtb_benzenes": "GFN2-xTB HOMO-LUMO gaps of 1,2,4-trisubstituted benzenes, computed for this repository "
                    "(benchmarks/data/make_xtb_gaps.py; MIT); benchmarks/data/xtb_benzenes.csv",
    "xtb_thiophenes": "GFN2-xTB HOMO-LUMO gaps of 2,3,5-trisubstituted thiophenes, computed for this repository "
                      "(benchmarks/data/make_xtb_gaps.py; MIT); benchmarks/data/xtb_thiophenes.csv",
}


def register(problems: dict[str, Builder], split: dict[str, str], source: dict[str, str]) -> None:
    """Add problems (``name -> seed -> Pool``) with their split (``dev``/``heldout``) and source; a name already
    registered, or one without a split or source, is refused."""
    for name in problems:
        if name in PROBLEMS:
            raise ValueError(f"problem {name!r} is registered already")
        if split.get(name) not in ("dev", "heldout"):
            raise ValueError(f"problem {name!r} needs a split, 'dev' or 'heldout' (got {split.get(name)!r})")
        if not source.get(name):
            raise ValueError(f"problem {name!r} needs a source")
    PROBLEMS.update(problems)
    SPLIT.update({name: split[name] for name in problems})
    SOURCE.update({name: source[name] for name in problems})


def _register_synthetic() -> None:
    try:
        module = importlib.import_module("benchmarks.problems_synthetic")
    except ModuleNotFoundError as exc:
        if exc.name != "benchmarks.problems_synthetic":
            raise
        return
    register(module.SYNTHETIC, module.SPLIT, module.SOURCE)


_register_synthetic()


def split_of(name: str) -> str:
    """``dev`` or ``heldout`` (a name not registered, e.g. from an old per-seed file, counts as held out)."""
    return SPLIT.get(name, "heldout")
