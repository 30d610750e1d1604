"""Calibration: cross-validated accuracy and uncertainty metrics, and variance recalibration.

Metrics are computed on held-out predictions (k-fold), in the target's own units:
RMSE, MAE, R², the mean Gaussian negative log predictive density (NLL), the
fraction of held-out targets inside the central 68% and 95% intervals, and the
Spearman rank correlation between |error| and predicted std (does the model know
*where* it is wrong?).

Recalibration is one variance scale per output (``var' = s² var``). It is chosen
on the cross-validated predictions and applied only when the 95% coverage falls
outside ``COVERAGE_OK``: a single scalar cannot overfit much, and a well-calibrated
model is left alone. Among ``s = sqrt(mean z²)`` (the NLL-optimal scale) and
``s = q95(|z|) / 1.96`` (the coverage-matching scale), we take the one with the better
NLL whose coverage lands in the window, else the coverage-matching one.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np
import torch
from botorch.models.model import Model
from botorch.posteriors import GPyTorchPosterior
from gpytorch.distributions import MultivariateNormal
from linear_operator.operators import DiagLinearOperator
from scipy.stats import spearmanr
from torch import Tensor

COVERAGE_OK = (0.90, 0.98)
Z68 = 0.994457883209753  # central 68% interval of a standard normal
Z95 = 1.959963984540054


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


def recalibration_scale(y: np.ndarray, mean: np.ndarray, var: np.ndarray) -> tuple[float, str]:
    """The std scale ``s`` to apply (1.0 when coverage is already fine), and why."""
    var = np.maximum(np.asarray(var, float), 1e-300)
    z = np.abs(np.asarray(y, float) - np.asarray(mean, float)) / np.sqrt(var)
    cov = float(np.mean(z <= Z95))
    if COVERAGE_OK[0] <= cov <= COVERAGE_OK[1]:
        return 1.0, f"cv cov95 {cov:.3f} within {COVERAGE_OK}: no recalibration"
    s_nll = float(np.sqrt(np.mean(z**2)))
    s_cov = float(np.quantile(z, 0.95) / Z95)
    options = []
    for name, s in (("nll-optimal", s_nll), ("coverage-matching", s_cov)):
        if not (math.isfinite(s) and s > 0):
            continue
        zs = z / s
        nll = float(np.mean(np.log(s) + 0.5 * zs**2 - 0.5 * z**2))  # NLL change relative to s=1
        ok = COVERAGE_OK[0] <= float(np.mean(zs <= Z95)) <= COVERAGE_OK[1]
        options.append((not ok, nll, name, s))
    if not options:
        return 1.0, f"cv cov95 {cov:.3f} off but no finite scale: left as is"
    options.sort()
    _, _, name, s = options[0]
    return s, f"cv cov95 {cov:.3f} outside {COVERAGE_OK}: std scaled by {s:.3g} ({name})"


class ScaledVarianceModel(Model):
    """A single-output model whose posterior variance is multiplied by ``scale²`` (recalibration)."""

    def __init__(self, base: Model, scale: float) -> None:
        super().__init__()
        self.base = base
        self.register_buffer("scale", torch.tensor(float(scale), dtype=torch.double))

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
        s2 = self.scale**2
        if isinstance(mvn.lazy_covariance_matrix, DiagLinearOperator):
            cov = DiagLinearOperator(mvn.lazy_covariance_matrix.diagonal() * s2)
        else:
            cov = mvn.lazy_covariance_matrix * s2
        posterior = GPyTorchPosterior(MultivariateNormal(mvn.mean, cov))
        return posterior_transform(posterior) if posterior_transform is not None else posterior


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
