"""Surrogate benchmark: GP, deep ensemble and a random-forest baseline on the shared data sets.

    python benchmarks/surrogates.py [--quick] [--threads N] [--switch-only] [--accuracy-only] [--datasets a,b] [--seed S]

For each data set (OER plates, MoS2 band gaps, perovskite heats of formation from
composition + structure features) and each model, an outer k-fold cross-validation on
a random subset gives held-out RMSE, NLL, 68%/95% coverage and the Spearman rank
correlation of |error| with the predicted std. GP and ensemble are fitted with
``fit_surrogate`` (so their own inner CV recalibrates the variance, as in production);
the random forest's uncertainty is the spread of its trees' predictions, uncalibrated,
which is what a random-forest baseline usually reports. The ``auto`` row is what
``fit_surrogate(kind="auto")`` would have returned in each outer fold: the GP or the
ensemble, whichever had the lower inner-CV NLL (fits are deterministic under the seed,
so this equals fitting ``auto`` without paying for it twice). Fit time is one fit (no CV)
at 100 / 1,000 / 5,000 training points (``--accuracy-only`` skips it and the switch
table). The full run also times exact against sparse GP on MoS2 to show where
``gp.EXACT_GP_MAX_N`` belongs.

The run ends with one line per data set:
``summary: dataset=<name> best=<model> rmse=<x> nll=<y> cov95=<z> fit_s_1000=<t>``
(``best`` is the lowest held-out NLL; ``fit_s_1000`` is nan in ``--quick``, which times 100 points only).
"""

from __future__ import annotations

import argparse
import math
import sys
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pandas as pd
import torch

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from matloop.space import CategoricalParameter, ContinuousParameter, ParametricSpace, SimplexGroup  # noqa: E402
from surrogates import fit_surrogate  # noqa: E402
from surrogates.calibration import regression_metrics  # noqa: E402
from surrogates.featurize import ParametricFeaturizer, StructureFeaturizer  # noqa: E402
from surrogates.gp import fit_gp  # noqa: E402

DATA = REPO.parent / "shared" / "data"
MOS2_COLUMNS = ["a", "b", "c", "alpha", "beta", "gamma", "e_field"]


# --------------------------------------------------------------------------- data sets


def load_oer(n: int | None, rng: np.random.Generator) -> tuple[torch.Tensor, np.ndarray]:
    """All four OER plates: loads over the union of their metals (0 where absent) plus the plate, one-hot."""
    frames = []
    for path in sorted((DATA / "oer_plates").glob("oer_plate_*.csv")):
        df = pd.read_csv(path)
        df["plate"] = path.stem.removeprefix("oer_plate_")
        frames.append(df)
    df = pd.concat(frames, ignore_index=True)
    metals = sorted(c for c in df.columns if c.endswith("_load"))
    df[metals] = df[metals].fillna(0.0)
    df = df.iloc[_subset(len(df), n, rng)]
    space = ParametricSpace(
        parameters=[ContinuousParameter(name=m, bounds=(0.0, 1.0)) for m in metals]
        + [CategoricalParameter(name="plate", type="categorical", options=sorted(df["plate"].unique()))],
        simplex=[SimplexGroup(parameters=metals, total=1.0)],
    )
    X = ParametricFeaturizer(space).transform(df[[*metals, "plate"]].to_dict("records"))
    return X, df["overpotential"].to_numpy(float)


def load_mos2(n: int | None, rng: np.random.Generator) -> tuple[torch.Tensor, np.ndarray]:
    """Strained MoS2 cells and field → PBE band gap; bounds from the data."""
    x = np.loadtxt(DATA / "mos2_bandgap" / "data_x.csv", delimiter=",")
    y = np.loadtxt(DATA / "mos2_bandgap" / "data_y.csv", delimiter=",")
    space = ParametricSpace(
        parameters=[
            ContinuousParameter(name=c, bounds=(float(x[:, i].min()), float(x[:, i].max())))
            for i, c in enumerate(MOS2_COLUMNS)
        ]
    )
    idx = _subset(len(y), n, rng)
    points = [dict(zip(MOS2_COLUMNS, map(float, row), strict=True)) for row in x[idx]]
    return ParametricFeaturizer(space).transform(points), y[idx]


def load_perov(n: int | None, rng: np.random.Generator) -> tuple[torch.Tensor, np.ndarray]:
    """Cubic perovskites from CIF → composition + structure features → heat of formation (eV/atom)."""
    from pymatgen.core import Structure

    df = pd.read_csv(DATA / "perov5" / "perov5_val.csv")
    df = df.iloc[_subset(len(df), n, rng)]
    structures = [Structure.from_str(cif, fmt="cif") for cif in df["cif"]]
    return StructureFeaturizer().transform(structures), df["heat_all"].to_numpy(float)


MODELS = ("gp", "ensemble", "random_forest")
DATASETS: dict[str, Callable[[int | None, np.random.Generator], tuple[torch.Tensor, np.ndarray]]] = {
    "oer_plates": load_oer,
    "mos2_bandgap": load_mos2,
    "perov5_heat": load_perov,
}


def _subset(total: int, n: int | None, rng: np.random.Generator) -> np.ndarray:
    return np.sort(rng.choice(total, size=min(n, total), replace=False)) if n else np.arange(total)


# --------------------------------------------------------------------------- models


def fit_predict(model: str, Xtr: torch.Tensor, ytr: np.ndarray, Xte: torch.Tensor, cfg: dict, seed: int,
                cv_folds: int) -> tuple[np.ndarray, np.ndarray, dict]:
    """Held-out predictive mean and variance (observation noise included), and the fit's own CV metrics."""
    if model == "random_forest":
        from sklearn.ensemble import RandomForestRegressor

        rf = RandomForestRegressor(n_estimators=cfg["rf_trees"], min_samples_leaf=2, random_state=seed, n_jobs=1)
        rf.fit(Xtr.numpy(), ytr)
        per_tree = np.stack([t.predict(Xte.numpy()) for t in rf.estimators_])
        return per_tree.mean(axis=0), np.maximum(per_tree.var(axis=0), 1e-12), {}
    fitted = fit_surrogate(Xtr, torch.tensor(ytr).unsqueeze(-1), kind=model, seed=seed, cv_folds=cv_folds,
                           settings=cfg["settings"])
    mean, var = fitted.predict(Xte, observation_noise=True)
    return mean[:, 0].numpy(), var[:, 0].numpy(), fitted.metrics["0"]


def outer_folds(n: int, cfg: dict) -> list[np.ndarray]:
    order = np.random.default_rng(1 + 1000 * cfg["seed"]).permutation(n)
    return [order[k :: cfg["outer_folds"]] for k in range(cfg["outer_folds"])]


def cross_validate(model: str, X: torch.Tensor, y: np.ndarray, cfg: dict) -> tuple[dict[str, float], dict]:
    """Outer-CV metrics, plus the per-fold predictions and inner-CV metrics (for the ``auto`` row)."""
    n = len(y)
    mean, var = np.empty(n), np.empty(n)
    inner = []
    for k, test in enumerate(outer_folds(n, cfg)):
        train = np.setdiff1d(np.arange(n), test)
        m, v, fold_metrics = fit_predict(model, X[train], y[train], X[test], cfg, seed=k + 1000 * cfg["seed"],
                                         cv_folds=cfg["inner_folds"])
        mean[test], var[test] = m, v
        inner.append(fold_metrics)
    return regression_metrics(y, mean, var), {"mean": mean, "var": var, "inner": inner}


def auto_choice(y: np.ndarray, runs: dict[str, dict], cfg: dict) -> tuple[dict[str, float], list[str]]:
    """What ``kind="auto"`` returns per outer fold (lower inner-CV NLL, ties to the GP), and its held-out metrics."""
    mean, var = np.empty(len(y)), np.empty(len(y))
    picks = []
    for k, test in enumerate(outer_folds(len(y), cfg)):
        pick = min(("gp", "ensemble"), key=lambda m: (runs[m]["inner"][k]["nll"], m != "gp"))
        mean[test], var[test] = runs[pick]["mean"][test], runs[pick]["var"][test]
        picks.append(pick)
    return regression_metrics(y, mean, var), picks


def describe_maps(inner: list[dict]) -> str:
    """The recalibration each outer fold's model carries, e.g. ``power b=0.41 a=0.93``."""
    out = []
    for m in inner:
        a, b = m.get("variance_scale", 1.0), m.get("std_power", 1.0)
        out.append("none" if (a, b) == (1.0, 1.0) else (f"scale {a:.2f}" if b == 1.0 else f"power a={a:.2f} b={b:.2f}"))
    return ", ".join(out)


def fit_seconds(model: str, X: torch.Tensor, y: np.ndarray, cfg: dict) -> float:
    t0 = time.perf_counter()
    fit_predict(model, X, y, X[:1], cfg, seed=0, cv_folds=0)
    return time.perf_counter() - t0


def switch_table(cfg: dict) -> list[str]:
    """Exact vs sparse GP on MoS2: fit time and held-out quality against n (where the switch belongs)."""
    rng = np.random.default_rng(2)
    X, y = load_mos2(max(cfg["switch_sizes"]) + 1000, rng)
    order = torch.as_tensor(rng.permutation(len(y)))  # the file is ordered: shuffle before splitting
    X, y = X[order], y[order.numpy()]
    Xte, yte = X[-1000:], y[-1000:]
    lines = ["| n | variant | fit s | rmse | nll | cov95 |", "|---|---|---|---|---|---|"]
    print("\n".join(lines), flush=True)
    for n in cfg["switch_sizes"]:
        for variant in ("exact", "sparse"):
            t0 = time.perf_counter()
            model, _ = fit_gp(X[:n], torch.tensor(y[:n]).unsqueeze(-1), None, 0, {"gp_variant": variant})
            dt = time.perf_counter() - t0
            with torch.no_grad():
                post = model.posterior(Xte, observation_noise=True)
                mean, var = post.mean.reshape(-1).numpy(), post.variance.reshape(-1).numpy()
            r = regression_metrics(yte, mean, var)
            lines.append(f"| {n} | {variant} | {dt:.1f} | {r['rmse']:.4f} | {r['nll']:.3f} | {r['cov95']:.3f} |")
            print(lines[-1], flush=True)
    return lines


# --------------------------------------------------------------------------- main


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="small subsets, for the test suite (< 60 s)")
    parser.add_argument("--threads", type=int, default=1, help="torch threads (the CI machine has 2 cores)")
    parser.add_argument("--switch-only", action="store_true", help="only the exact-vs-sparse GP timing table")
    parser.add_argument("--accuracy-only", action="store_true",
                        help="only the cross-validated accuracy table: no fit-time columns, no switch table")
    parser.add_argument("--seed", type=int, default=0,
                        help="another CV subset, fold split and model seeds (0 = the committed table)")
    parser.add_argument("--datasets", default=",".join(DATASETS), help=f"comma-separated subset of {list(DATASETS)}")
    parser.add_argument("--models", default=",".join(MODELS), help=f"comma-separated subset of {list(MODELS)}")
    args = parser.parse_args(argv)
    datasets, models = args.datasets.split(","), args.models.split(",")
    unknown = sorted(set(datasets) - set(DATASETS)) + sorted(set(models) - set(MODELS))
    if unknown:
        parser.error(f"unknown datasets or models {unknown}; known: {list(DATASETS)}, {list(MODELS)}")
    torch.set_num_threads(args.threads)
    if args.quick:
        cfg = {"n_cv": 90, "outer_folds": 3, "inner_folds": 3, "fit_sizes": [100], "rf_trees": 50,
               "settings": {"ensemble": {"steps": 250, "n_members": 4, "hidden": 32}}, "switch_sizes": []}
    else:
        cfg = {"n_cv": 600, "outer_folds": 5, "inner_folds": 3, "fit_sizes": [100, 1000, 5000], "rf_trees": 200,
               "settings": {}, "switch_sizes": [500, 1000, 2000]}
    # the rows the CV subset is drawn from stay the same with --accuracy-only, so its table is comparable
    cfg["load_n"] = max(cfg["n_cv"], *cfg["fit_sizes"])
    cfg["seed"] = args.seed
    if args.accuracy_only:
        cfg["fit_sizes"], cfg["switch_sizes"] = [], []
    if args.switch_only:
        print("exact vs sparse GP (MoS2, 1000 held-out points):")
        switch_table(cfg)
        return 0
    rows, summaries = [], []
    t_start = time.perf_counter()
    for name in datasets:
        loader = DATASETS[name]
        rng = np.random.default_rng(0)
        t0 = time.perf_counter()
        X, y = loader(cfg["load_n"], rng)
        print(f"# {name}: {len(y)} rows, {X.shape[1]} features, loaded in {time.perf_counter() - t0:.1f} s", flush=True)
        results, runs = {}, {}
        cv_idx = np.random.default_rng(3 + 1000 * cfg["seed"]).choice(len(y), size=min(cfg["n_cv"], len(y)), replace=False)
        for model in models:
            t0 = time.perf_counter()
            r, runs[model] = cross_validate(model, X[cv_idx], y[cv_idx], cfg)
            r["cv_s"] = time.perf_counter() - t0
            for size in cfg["fit_sizes"]:
                size_used = min(size, len(y))
                r[f"fit_s_{size}"] = fit_seconds(model, X[:size_used], y[:size_used], cfg)
                r[f"n_fit_{size}"] = size_used
            results[model] = r
            rows.append((name, model, r))
            maps = f"; recalibration per fold: {describe_maps(runs[model]['inner'])}" if model != "random_forest" else ""
            print(f"#   {model}: rmse {r['rmse']:.4g} nll {r['nll']:.3f} cov95 {r['cov95']:.3f} "
                  f"({r['cv_s']:.0f} s){maps}", flush=True)
        if {"gp", "ensemble"} <= set(results):
            auto, picks = auto_choice(y[cv_idx], runs, cfg)
            rows.append((name, "auto", auto))
            results["auto"] = auto
            print(f"#   auto: picks {picks}: rmse {auto['rmse']:.4g} nll {auto['nll']:.3f} cov95 {auto['cov95']:.3f}",
                  flush=True)
        best = min((m for m in models), key=lambda m: results[m]["nll"])
        b = results[best]
        ours = [m for m in ("gp", "ensemble", "auto") if m in results]
        verdicts = [f"{m}: cov95 in [0.90, 0.98] {0.90 <= results[m]['cov95'] <= 0.98}"
                    + (f", NLL below random forest {results[m]['nll'] < results['random_forest']['nll']}"
                       if "random_forest" in results else "") for m in ours]
        print(f"# {name}: target: " + "; ".join(verdicts), flush=True)
        summaries.append(
            f"summary: dataset={name} best={best} rmse={b['rmse']:.4g} nll={b['nll']:.4g} "
            f"cov95={b['cov95']:.3f} fit_s_1000={b.get('fit_s_1000', math.nan):.2f}"
        )
    sizes = cfg["fit_sizes"]
    print()
    print("| dataset | model | n (cv) | rmse | mae | r2 | nll | cov68 | cov95 | spearman |"
          + "".join(f" fit s @{s} |" for s in sizes))
    print("|---|---|---|---|---|---|---|---|---|---|" + "---|" * len(sizes))
    for name, model, r in rows:
        fits = "".join(
            (f" {r[f'fit_s_{s}']:.2f}" + ("" if r[f"n_fit_{s}"] == s else f" (n={r[f'n_fit_{s}']})") + " |")
            if f"fit_s_{s}" in r else " – |"
            for s in sizes
        )
        print(f"| {name} | {model} | {int(r['n'])} | {r['rmse']:.4g} | {r['mae']:.4g} | {r['r2']:.3f} | "
              f"{r['nll']:.3f} | {r['cov68']:.3f} | {r['cov95']:.3f} | {r['spearman_err_std']:.3f} |{fits}")
    if cfg["switch_sizes"] and "gp" in models:
        print("\nexact vs sparse GP (MoS2, 1000 held-out points):")
        switch_table(cfg)
    print(f"\ntotal {time.perf_counter() - t_start:.1f} s, torch threads {args.threads}")
    for line in summaries:
        print(line)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
