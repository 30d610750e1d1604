"""Shared helpers of the selection benchmarks: datasets as pools, the surrogate used, timing."""

from __future__ import annotations

import os
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd
import torch

DATA = Path(os.environ.get("MATLOOP_SHARED_DATA", Path(__file__).resolve().parents[2] / "shared" / "data"))
OER_PLATES = ("3496", "3851", "3860", "4098")


@dataclass
class Pool:
    """A fully measured pool: features (unit-scaled), the measured value, and the goal."""

    name: str
    X: torch.Tensor
    y: np.ndarray
    minimize: bool
    top_share: float  # the "top set" is this share of the pool (1% OER, 5% perovskites)
    columns: list[str]
    #: each design parameter's feature columns, as a campaign's featurizer reports them (one-hot blocks for
    #: the perovskites' three choices; the OER plates' six loadings, and their presence bits)
    groups: list[list[int]] | None = None
    #: what matloop's model sees, when it is not ``X`` itself: a campaign's featurizer applied to the rows
    #: (the OER plates' loadings plus one presence bit per metal); BayBE is given ``X``
    features: torch.Tensor | None = None

    @property
    def model_X(self) -> torch.Tensor:
        return self.X if self.features is None else self.features

    @property
    def feature_groups(self) -> list[list[int]]:
        return self.groups if self.groups is not None else [[i] for i in range(self.model_X.shape[-1])]

    @property
    def utility(self) -> np.ndarray:
        return -self.y if self.minimize else self.y

    @property
    def best_rows(self) -> set[int]:
        u = self.utility
        return set(np.flatnonzero(u == u.max()).tolist())

    @property
    def top_rows(self) -> set[int]:
        k = max(1, int(round(self.top_share * len(self.y))))
        return set(np.argsort(-self.utility, kind="stable")[:k].tolist())

    @property
    def random_best(self) -> float:
        """Random search's expected experiments to find a best row: (N + 1) / (K + 1) for K of N."""
        return (len(self.y) + 1) / (len(self.best_rows) + 1)

    @property
    def random_top(self) -> float:
        """Random search's expected experiments to a first top-set member (the acceleration factors' baseline)."""
        return (len(self.y) + 1) / (len(self.top_rows) + 1)


def _dedupe(df: pd.DataFrame, columns: list[str], target: str) -> pd.DataFrame:
    """Repeated compositions become one pool point with their mean value (a pool point is revealed once)."""
    return df.groupby(columns, as_index=False, sort=False)[target].mean()


def oer_pool(plate: str, limit: int | None = None, seed: int = 0) -> Pool:
    raw = pd.read_csv(DATA / "oer_plates" / f"oer_plate_{plate}.csv")
    columns = [c for c in raw.columns if c.endswith("_load")]  # each plate has its own six metals
    df = _dedupe(raw, columns, "overpotential")
    if limit is not None and limit < len(df):
        df = df.sample(n=limit, random_state=seed).reset_index(drop=True)
    X = torch.tensor(df[columns].to_numpy(), dtype=torch.double)
    features, groups = campaign_features(columns, df[columns].to_dict("records"))
    return Pool(f"oer_{plate}", X, df["overpotential"].to_numpy(), True, 0.01, columns, groups, features)


def campaign_features(columns: list[str], rows: list[dict[str, float]]) -> tuple[torch.Tensor, list[list[int]]]:
    """The features and groups matloop's loop would give these plate rows: the ``oer`` template's space
    (six loadings in [0, 1] on a 0.1-step simplex) through the campaign featurizer."""
    from matloop.space import ParametricSpace
    from surrogates.featurize import ParametricFeaturizer

    space = ParametricSpace.model_validate({
        "parameters": [{"name": c, "type": "continuous", "bounds": [0.0, 1.0]} for c in columns],
        "simplex": [{"parameters": columns, "total": 1.0, "step": 0.1}],
    })
    featurizer = ParametricFeaturizer(space)
    return featurizer.transform(rows).double(), featurizer.feature_groups


def perovskite_pool() -> Pool:
    """Hybrid perovskites, each categorical choice one-hot encoded.

    The shared ``descriptors.csv`` gives every option of a parameter the same descriptor values (a defect of
    that copy), so descriptors cannot tell options apart; one-hot encoding is the honest choice here.
    """
    df = pd.read_csv(DATA / "hybrid_perovskites" / "hse_gaps.csv")
    onehot = pd.get_dummies(df[["organic", "cation", "anion"]], dtype=float)
    columns = list(onehot.columns)
    df = _dedupe(pd.concat([onehot, df["hse_gap"]], axis=1), columns, "hse_gap")
    X = torch.tensor(df[columns].to_numpy(dtype=float), dtype=torch.double)
    groups = [[i for i, c in enumerate(columns) if c.startswith(f"{name}_")] for name in ("organic", "cation", "anion")]
    return Pool("perovskites", X, df["hse_gap"].to_numpy(), True, 0.05, columns, groups)


def fit_model(X: torch.Tensor, y: torch.Tensor, seed: int, bounds: torch.Tensor | None = None,
              groups: list[list[int]] | None = None, kernel: str | None = None):
    """The project's surrogate (GP, no cross-validation inside the loop); plain SingleTaskGP if it is absent.

    ``bounds`` (2 x d) are the pool's known feature bounds: the GP scales its inputs by them, as BayBE scales
    by its search space's bounds, rather than by the range of the few points measured so far. ``groups`` are
    the design parameters' feature columns, which the loop passes from its featurizer (``kernel: auto``
    then sums one kernel per categorical parameter; see ``surrogates/gp.py``). ``kernel`` overrides ``auto``.
    """
    try:
        from surrogates import api
    except ImportError:
        api = None
    if api is not None and hasattr(api, "fit_surrogate"):
        settings: dict = {} if bounds is None else {"bounds": bounds.tolist()}
        if groups is not None:
            settings["feature_groups"] = groups
        if kernel is not None:
            settings["kernel"] = kernel
        return api.fit_surrogate(X, y, kind="gp", seed=seed, cv_folds=0, settings=settings).model
    from botorch.fit import fit_gpytorch_mll
    from botorch.models import SingleTaskGP
    from gpytorch.mlls import ExactMarginalLogLikelihood

    torch.manual_seed(seed)
    model = SingleTaskGP(X, y)
    fit_gpytorch_mll(ExactMarginalLogLikelihood(model.likelihood, model))
    return model.eval()


class Stopwatch:
    def __init__(self) -> None:
        self.start = time.perf_counter()

    @property
    def seconds(self) -> float:
        return time.perf_counter() - self.start
