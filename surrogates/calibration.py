"""Calibration: cross-validated accuracy and uncertainty metrics, and variance recalibration.

Metrics are computed on held-out predictions (k-fold), in the target's own units:
RMSE, MAE, R², the mean Gaussian negative log predictive density (NLL), the
fraction of held-out targets inside the central 68% and 95% intervals, and the
Spearman rank correlation between |error| and predicted std (does the model know
*where* it is wrong?).

Recalibration maps the predictive std through ``sigma' = a sigma0 (sigma/sigma0)^b``
(:class:`StdMap`): identity, one scale (``b = 1``; NLL-optimal or coverage-matching),
or a power map whose ``b < 1`` compresses over-spread stds. One scale cannot fit a
model whose stds are too small where it is confident and too large where it is not
(the ensemble's cov68 of 0.85 at a good cov95 in the first benchmark); a two-parameter
monotone map can, and keeps the Gaussian form every acquisition relies on (in the
spirit of Kuleshov et al. 2018 and Levi et al. 2022, but parametric, so it cannot
overfit a few dozen CV points). The map is chosen on every fit, not only when the
95% coverage is off, by cross-fitted NLL on the CV predictions (``fit_recalibration``).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
from botorch.models.model import Model
from botorch.posteriors import GPyTorchPosterior
from gpytorch.distributions import MultivariateNormal
from linear_operator.operators import DiagLinearOperator
from scipy.optimize import minimize_scalar
from scipy.stats import spearmanr
from torch import Tensor

COVERAGE_OK = (0.90, 0.98)
Z68 = 0.994457883209753  # central 68% interval of a standard normal
Z95 = 1.959963984540054
POWER_BOUNDS = (0.0, 2.0)  # b < 0 would make the model less sure where it says it is unsure
MIN_POINTS_POWER = 20  # below this the power map's second parameter is not worth cross-fitting
SIMPLER_WITHIN = 0.005  # nats: a simpler map within this of the best is preferred


def regression_metrics(y: np.ndarray, mean: np.ndarray, var: np.ndarray) -> dict[str, float]:
    """Accuracy and calibration of Gaussian predictions ``N(mean, var)`` for targets ``y``."""
    y, mean = np.asarray(y, float), np.asarray(mean, float)
    var = np.maximum(np.asarray(var, float), 1e-300)
    err = y - mean
    std = np.sqrt(var)
    z = np.abs(err) / std
    ss_tot = float(np.sum((y - y.mean()) ** 2))
    if len(y) > 2 and np.std(std) > 0 and np.std(np.abs(err)) > 0:
        rho = float(spearmanr(np.abs(err), std).statistic)
    else:
        rho = float("nan")
    return {
        "n": float(len(y)),
        "rmse": float(np.sqrt(np.mean(err**2))),
        "mae": float(np.mean(np.abs(err))),
        "r2": float(1.0 - np.sum(err**2) / ss_tot) if ss_tot > 0 else float("nan"),
        "nll": float(np.mean(0.5 * np.log(2 * math.pi * var) + 0.5 * err**2 / var)),
        "cov68": float(np.mean(z <= Z68)),
        "cov95": float(np.mean(z <= Z95)),
        "spearman_err_std": rho,
    }


@dataclass(frozen=True)
class StdMap:
    """A recalibration of the predictive std: ``sigma' = a * sigma0 * (sigma / sigma0) ** b``.

    ``b == 1`` is the classic single variance scale (``sigma' = a sigma``); ``b < 1``
    compresses the spread of the stds, which is what the cross-validated residuals ask
    for when a model is over-confident where it is sure and under-confident where it is
    not (deep ensembles on heteroscedastic data). ``sigma0`` (the median CV std) only
    makes ``a`` unit-free; it is not a free parameter.
    """

    name: str = "identity"
    a: float = 1.0
    b: float = 1.0
    sigma0: float = 1.0

    @property
    def is_identity(self) -> bool:
        return self.a == 1.0 and self.b == 1.0

    def as_dict(self) -> dict[str, Any]:
        return {"name": self.name, "a": self.a, "b": self.b, "sigma0": self.sigma0}

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> StdMap:
        return cls(str(d["name"]), float(d["a"]), float(d["b"]), float(d["sigma0"]))

    def variance(self, var: np.ndarray) -> np.ndarray:
        """Map predictive variances (numpy) to recalibrated ones."""
        var = np.maximum(np.asarray(var, float), 1e-300)
        return (self.a * self.sigma0) ** 2 * (var / self.sigma0**2) ** self.b

    def variance_ratio(self, var: Tensor) -> Tensor:
        """``sigma'^2 / sigma^2`` at predictive variance ``var`` (torch, differentiable)."""
        var = var.clamp_min(1e-300)
        return self.a**2 * (var / self.sigma0**2) ** (self.b - 1.0)


def _gauss_nll(err2: np.ndarray, var: np.ndarray) -> float:
    return float(np.mean(0.5 * np.log(2 * math.pi * var) + 0.5 * err2 / var))


def _fit_map(name: str, err2: np.ndarray, var: np.ndarray, sigma0: float) -> StdMap:
    """Fit one candidate map on squared errors and predictive variances by minimising the Gaussian NLL.

    For a fixed power ``b`` the NLL-optimal ``a`` is closed-form, so the power map is a
    bounded one-dimensional search over ``b`` in ``POWER_BOUNDS``.
    """
    z2 = err2 / var
    if name == "identity":
        return StdMap()
    if name == "scale":  # NLL-optimal single scale
        return StdMap("scale", float(np.sqrt(np.mean(z2))), 1.0, sigma0)
    if name == "coverage":  # the scale that puts 95% of CV residuals inside the 95% interval
        return StdMap("coverage", float(np.quantile(np.sqrt(z2), 0.95) / Z95), 1.0, sigma0)
    if name == "power":
        r = var / sigma0**2

        def a_for(b: float) -> float:
            with np.errstate(all="ignore"):
                return float(np.sqrt(np.mean(err2 / sigma0**2 / r**b)))

        def nll(b: float) -> float:
            with np.errstate(all="ignore"):  # degenerate stds make some b non-finite: rank those last
                value = _gauss_nll(err2, StdMap("power", a_for(b), b, sigma0).variance(var))
            return value if math.isfinite(value) else math.inf

        with np.errstate(all="ignore"):
            b = float(minimize_scalar(nll, bounds=POWER_BOUNDS, method="bounded", options={"xatol": 1e-3}).x)
        return StdMap("power", a_for(b), b, sigma0)
    raise ValueError(f"unknown recalibration map {name!r}")


def fit_recalibration(
    y: np.ndarray, mean: np.ndarray, var: np.ndarray, *, allow_power: bool = True, folds: int = 5, seed: int = 0
) -> tuple[StdMap, str, dict[str, float]]:
    """Choose and fit the std recalibration from cross-validated predictions.

    Each candidate (identity, NLL-optimal scale, coverage-matching scale, power map) is
    judged by *cross-fitting* on the CV predictions themselves: fitted on ``folds - 1``
    parts, scored on the held-out part, so a map with more freedom only wins when it
    generalises. Ranking: held-out 95% coverage inside ``COVERAGE_OK`` first, then
    held-out NLL; among candidates within ``SIMPLER_WITHIN`` nats of the best, the
    simplest wins. The winner is refitted on all predictions. Returns the map, why, and
    the winner's cross-fitted metrics (an honest estimate of the recalibrated model).
    """
    y, mean = np.asarray(y, float), np.asarray(mean, float)
    var = np.maximum(np.asarray(var, float), 1e-300)
    err2 = (y - mean) ** 2
    n = len(y)
    sigma0 = float(np.median(np.sqrt(var)))
    if not (math.isfinite(sigma0) and sigma0 > 0):
        sigma0 = 1.0
    names = ["identity", "scale", "coverage"] + (["power"] if allow_power and n >= MIN_POINTS_POWER else [])
    folds = max(2, min(folds, n))
    part = np.random.default_rng(seed).permutation(n) % folds
    scored = []
    for rank, name in enumerate(names):
        held = np.empty(n)
        for f in range(folds):
            tr, te = part != f, part == f
            held[te] = _fit_map(name, err2[tr], var[tr], sigma0).variance(var[te])
        if not np.all(np.isfinite(held)) or np.any(held <= 0):
            continue
        m = regression_metrics(y, mean, held)
        ok = COVERAGE_OK[0] <= m["cov95"] <= COVERAGE_OK[1]
        scored.append((not ok, m["nll"], rank, name, m))
    if not scored:
        return StdMap(), "no finite recalibration: left as is", regression_metrics(y, mean, var)
    scored.sort()
    best_bad, best_nll = scored[0][0], scored[0][1]
    pick = min((s for s in scored if s[0] == best_bad and s[1] <= best_nll + SIMPLER_WITHIN), key=lambda s: s[2])
    _, nll, _, name, held_metrics = pick
    fitted = _fit_map(name, err2, var, sigma0)
    ident = next((s for s in scored if s[3] == "identity"), None)
    before = f"{ident[1]:.4g}" if ident else "nan"
    if fitted.is_identity or name == "identity":
        why = f"no recalibration: cross-fitted NLL {before}, cov95 {held_metrics['cov95']:.3f}"
        return StdMap(), why, held_metrics
    form = f"std scaled by {fitted.a:.3g}" if fitted.b == 1.0 else (
        f"std mapped to {fitted.a:.3g}*s0*(s/s0)^{fitted.b:.3f}, s0={fitted.sigma0:.3g}")
    why = f"{form} ({name}): cross-fitted NLL {before} -> {nll:.4g}, cov95 {held_metrics['cov95']:.3f}"
    return fitted, why, held_metrics


class RecalibratedModel(Model):
    """A single-output model whose predictive std goes through a :class:`StdMap` (recalibration).

    The map was fitted on predictive (observation-noise) stds, so it is applied to them;
    the latent posterior (``observation_noise=False``, what acquisition functions use)
    is multiplied by the same ratio ``sigma'^2 / sigma^2`` evaluated at the predictive
    std. For ``b == 1`` this is the plain ``var' = a^2 var`` of a single scale.
    """

    def __init__(self, base: Model, std_map: StdMap) -> None:
        super().__init__()
        self.base = base
        self.std_map = std_map

    @property
    def num_outputs(self) -> int:
        return self.base.num_outputs

    @property
    def batch_shape(self) -> torch.Size:
        return self.base.batch_shape

    def posterior(
        self,
        X: Tensor,
        output_indices: list[int] | None = None,
        observation_noise: bool | Tensor = False,
        posterior_transform: Any = None,
        **kwargs: Any,
    ) -> GPyTorchPosterior:
        inner = self.base.posterior(X, output_indices=output_indices, observation_noise=observation_noise)
        mvn = inner.distribution
        if self.std_map.b == 1.0:
            ratio = torch.as_tensor(self.std_map.a**2, dtype=mvn.mean.dtype)
        elif observation_noise is False:
            total = self.base.posterior(X, output_indices=output_indices, observation_noise=True).variance
            ratio = self.std_map.variance_ratio(total.reshape(mvn.mean.shape))
        else:
            ratio = self.std_map.variance_ratio(mvn.variance)
        if isinstance(mvn.lazy_covariance_matrix, DiagLinearOperator):
            cov = DiagLinearOperator(mvn.lazy_covariance_matrix.diagonal() * ratio)
        elif ratio.dim() == 0:
            cov = mvn.lazy_covariance_matrix * ratio
        else:  # a full covariance: scale it as D^1/2 K D^1/2 so the correlations are kept
            root = ratio.sqrt()
            cov = root.unsqueeze(-1) * mvn.covariance_matrix * root.unsqueeze(-2)
        posterior = GPyTorchPosterior(MultivariateNormal(mvn.mean, cov))
        return posterior_transform(posterior) if posterior_transform is not None else posterior

    def marginal_moments(self, X: Tensor, observation_noise: bool = False, chunk: int = 2048) -> tuple[Tensor, Tensor]:
        """The base model's fast marginal moments through the same map as :meth:`posterior`."""
        from surrogates.moments import marginal_moments

        mean, var = marginal_moments(self.base, X, observation_noise, chunk)
        if self.std_map.b == 1.0:
            return mean, var * self.std_map.a**2
        total = var if observation_noise else marginal_moments(self.base, X, True, chunk)[1]
        return mean, var * self.std_map.variance_ratio(total)


class PriorModel(Model):
    """What a surrogate says when it has learned nothing: a constant mean and variance everywhere.

    Used for fewer than two points or constant targets; ``FittedSurrogate.is_prior``
    tells the controller to fall back to space-filling instead of trusting it.
    """

    def __init__(self, mean: float = 0.0, variance: float = 1.0) -> None:
        super().__init__()
        self.register_buffer("mean", torch.tensor(float(mean), dtype=torch.double))
        self.register_buffer("variance", torch.tensor(float(variance), dtype=torch.double))

    @property
    def num_outputs(self) -> int:
        return 1

    @property
    def batch_shape(self) -> torch.Size:
        return torch.Size()

    def posterior(
        self,
        X: Tensor,
        output_indices: list[int] | None = None,
        observation_noise: bool | Tensor = False,
        posterior_transform: Any = None,
        **kwargs: Any,
    ) -> GPyTorchPosterior:
        shape = X.shape[:-1]
        # 0 * X keeps the autograd graph connected, so gradient-based acquisition code does not fail.
        zero = (X.to(torch.double) * 0).sum(dim=-1)
        posterior = GPyTorchPosterior(
            MultivariateNormal(zero + self.mean.expand(shape), DiagLinearOperator(zero + self.variance.expand(shape)))
        )
        return posterior_transform(posterior) if posterior_transform is not None else posterior

    def marginal_moments(self, X: Tensor, observation_noise: bool = False, chunk: int = 2048) -> tuple[Tensor, Tensor]:
        """The constant mean and variance at every row (``n x 1``)."""
        n = X.shape[0]
        return self.mean.expand(n, 1).clone(), self.variance.expand(n, 1).clone()
