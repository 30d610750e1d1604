"""Surrogates that share strength across fidelities: one property measured cheaply and roughly, and expensively.

Three models, all exact GPs from BoTorch/gpytorch, each exposing the posterior at the *target* fidelity (what
acquisition scores) and, for the choice of fidelity, how much of that posterior's variance a measurement at each
fidelity would remove:

* ``multitask`` — BoTorch's ``MultiTaskGP`` with the fidelity as the task (intrinsic coregionalisation: a
  Matern kernel over the inputs times a learnt, full-rank task covariance, one noise level per task). The
  learnt inter-task correlation is what decides whether the cheap fidelity is worth measuring: if the cheap
  answer is uncorrelated noise, the correlation goes to zero and so does its value.
* ``mfgp`` — BoTorch's ``SingleTaskMultiFidelityGP`` with a fidelity column ``s = cost / target cost`` and its
  linear-truncated fidelity kernel (Wu et al. 2019, the kernel of BoTorch's multi-fidelity KG tutorials). It
  assumes the answer moves smoothly towards the target as ``s -> 1``.
* ``delta`` — delta learning (two fidelities): a GP on the cheap fidelity, and a GP on the target fidelity whose
  inputs are the features *plus the cheap GP's mean* at that point, so the target model learns the correction
  to the cheap answer (as Delta-ML in chemistry does). The cheap GP's uncertainty does not enter the target
  posterior; a cheap measurement's value is how much it would move the target mean (below).

The default is ``multitask`` (:data:`DEFAULT_KIND`); see there for why.

**Removable variance.** For a point ``x`` and fidelity ``f``, ``Var_{y_f}[E(t(x) | y_f(x))]``: the expected drop
of the target posterior variance at ``x`` if ``x`` were measured at ``f`` (for jointly Gaussian outputs,
``cov(t, y_f)^2 / (var(y_f) + noise_f)``). It is what :mod:`agent.selection.fidelity` weighs against cost.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch
from botorch.fit import fit_gpytorch_mll
from botorch.models import MultiTaskGP, SingleTaskMultiFidelityGP
from botorch.models.model import Model
from botorch.models.transforms.input import Normalize
from botorch.models.transforms.outcome import Standardize
from botorch.posteriors import Posterior
from gpytorch.mlls import ExactMarginalLogLikelihood
from torch import Tensor

from surrogates.api import METRIC_KEYS, training_hash
from surrogates.calibration import regression_metrics
from surrogates.gp import fit_gp, input_bounds

KINDS = ("multitask", "mfgp", "delta")
#: The default model: the only one of the three that learns *how much* to trust a cheap fidelity (its task
#: correlation), which the choice of fidelity needs, and the best of the three by cross-validation where the cheap
#: fidelity is noise (``mfgp`` is more accurate where it is informative, and much worse where it is noise):
#: ``benchmarks/RESULTS-multifidelity.md``. Measured on augmented Hartmann with 40 cheap (s = 0.5) and 12 target
#: points: learnt correlation +0.92 with the informative cheap fidelity (which then removes about half the target
#: variance at an unmeasured point) and +0.25 with pure noise (6 %: the target is chosen); delta learning rated the
#: informative cheap fidelity at 6 %, so it chose the expensive one where the cheap one would do. BoTorch's
#: default Beta(2.5, 1.5) prior on the task correlation is dropped (``task_covar_prior=None``): with it, pure noise
#: read as +0.43 correlated and was measured.
DEFAULT_KIND = "multitask"
#: Gauss-Hermite nodes for the delta model's removable variance (the cheap GP's mean after a measurement).
#: L-BFGS iterations of the multitask fit. Run to convergence it took ~9 s of CPU for 52 points (augmented
#: Hartmann, 40 cheap + 12 target); 60 iterations take ~0.6 s and learn nearly the same correlation (+0.92
#: instead of +1.00 with an informative cheap fidelity, +0.25 instead of +0.23 with pure noise), so the choice
#: of fidelity is the same.
MAXITER = 60
_NODES, _WEIGHTS = np.polynomial.hermite_e.hermegauss(9)
_WEIGHTS = _WEIGHTS / _WEIGHTS.sum()


@dataclass
class FidelityData:
    """One fidelity's training data: features ``X`` (n, d) and values ``y`` (n,)."""

    name: str
    cost: float
    X: Tensor
    y: Tensor


class _AppendColumn(Model):
    """A model over ``d`` features made from one over ``d + 1``: the extra column fixed (or computed) per row.

    The acquisition and the pool see the design features only; the fidelity (task) column is the target's.
    """

    def __init__(self, base: Model, value: float | None = None, feature: Model | None = None) -> None:
        super().__init__()
        self.base = base
        self.value = value
        self.feature = feature  # delta learning: the column is this model's posterior mean

    @property
    def num_outputs(self) -> int:
        return 1

    @property
    def batch_shape(self) -> torch.Size:
        return torch.Size([])

    def extend(self, X: Tensor) -> Tensor:
        if self.feature is not None:
            with torch.no_grad():
                column = self.feature.posterior(X).mean
        else:
            column = torch.full((*X.shape[:-1], 1), float(self.value), dtype=X.dtype)
        return torch.cat([X, column.to(X)], dim=-1)

    def posterior(self, X: Tensor, output_indices: list[int] | None = None, observation_noise: bool | Tensor = False,
                  posterior_transform: Any = None, **kwargs: Any) -> Posterior:
        return self.base.posterior(self.extend(X), observation_noise=observation_noise,
                                   posterior_transform=posterior_transform)


@dataclass
class MultiFidelitySurrogate:
    """A fitted multi-fidelity model: the target posterior as a BoTorch ``Model``, and per-fidelity predictions.

    Shaped like :class:`surrogates.api.FittedSurrogate` where the loop reads it (``model``, ``predict``, ``kind``,
    ``reason``, ``metrics``, ``training_hash``, ``n_train``, ``is_prior``). ``metrics`` holds the target
    fidelity's cross-validated metrics under ``"0"`` (the first modelled property, as single-fidelity models do)
    and each other fidelity's under ``"<property>@<fidelity>"``.
    """

    model: Model
    kind: str
    reason: str
    fidelities: list[str]
    costs: list[float]
    target: int
    metrics: dict[str, dict[str, float]]
    training_hash: str
    n_train: int
    impl: Any = field(repr=False)
    is_prior: bool = False
    excluded_rows: list[int] = field(default_factory=list)

    def predict(self, X: Tensor, observation_noise: bool = False) -> tuple[Tensor, Tensor]:
        """Posterior mean and variance at the target fidelity, each ``(n, 1)``."""
        with torch.no_grad():
            post = self.model.posterior(X, observation_noise=observation_noise)
        return post.mean.reshape(-1, 1), post.variance.reshape(-1, 1)

    def predict_at(self, X: Tensor, fidelity: int) -> tuple[Tensor, Tensor]:
        """Predictive mean and variance (with that fidelity's noise) of a measurement at ``fidelity``."""
        with torch.no_grad():
            return self.impl.predict_at(X, fidelity)

    def removable_variance(self, X: Tensor) -> Tensor:
        """``(n, F)``: how much of the target posterior variance at each row a measurement at each fidelity removes."""
        with torch.no_grad():
            return self.impl.removable(X).clamp_min(0.0)

    def target_variance(self, X: Tensor) -> Tensor:
        with torch.no_grad():
            return self.model.posterior(X).variance.reshape(-1)


# --------------------------------------------------------------------------- the three models


class _Joint:
    """Models with a fidelity column (``multitask``: task index; ``mfgp``: cost fraction) share this."""

    def __init__(self, model: Model, codes: list[float], target: int) -> None:
        self.model, self.codes, self.target = model, codes, target

    def with_code(self, X: Tensor, f: int) -> Tensor:
        return torch.cat([X, torch.full((*X.shape[:-1], 1), self.codes[f], dtype=X.dtype)], dim=-1)

    def predict_at(self, X: Tensor, f: int) -> tuple[Tensor, Tensor]:
        post = self.model.posterior(self.with_code(X, f), observation_noise=True)
        return post.mean.reshape(-1), post.variance.reshape(-1)

    def removable(self, X: Tensor) -> Tensor:
        out = []
        for f in range(len(self.codes)):
            pair = torch.stack([self.with_code(X, f), self.with_code(X, self.target)], dim=-2)  # n x 2 x (d+1)
            cov = self.model.posterior(pair).distribution.covariance_matrix  # n x 2 x 2 (latent)
            noisy = self.model.posterior(pair, observation_noise=True).variance.reshape(-1, 2)[:, 0]
            out.append(cov[:, 0, 1] ** 2 / noisy.clamp_min(1e-12))
        return torch.stack(out, dim=-1)


def _fit_multitask(data: list[FidelityData], target: int, seed: int, settings: dict[str, Any]) -> tuple[Model, Any]:
    d = data[0].X.shape[-1]
    X = torch.cat([torch.cat([D.X, torch.full((len(D.y), 1), float(i), dtype=D.X.dtype)], -1)
                   for i, D in enumerate(data)])
    y = torch.cat([D.y for D in data]).unsqueeze(-1)
    bounds = input_bounds(X[:, :d], settings)
    with torch.random.fork_rng():
        torch.manual_seed(seed)
        model = MultiTaskGP(X, y, task_feature=-1, output_tasks=[target], all_tasks=list(range(len(data))),
                            task_covar_prior=None,
                            input_transform=Normalize(d + 1, indices=list(range(d)), bounds=bounds))
        fit_gpytorch_mll(ExactMarginalLogLikelihood(model.likelihood, model),
                         optimizer_kwargs={"options": {"maxiter": MAXITER}})
    model.eval()
    return model, _Joint(model, [float(i) for i in range(len(data))], target)


def _fit_mfgp(data: list[FidelityData], target: int, seed: int, settings: dict[str, Any]) -> tuple[Model, Any]:
    d = data[0].X.shape[-1]
    codes = [D.cost / data[target].cost for D in data]
    X = torch.cat([torch.cat([D.X, torch.full((len(D.y), 1), codes[i], dtype=D.X.dtype)], -1)
                   for i, D in enumerate(data)])
    y = torch.cat([D.y for D in data]).unsqueeze(-1)
    bounds = input_bounds(X[:, :d], settings)
    with torch.random.fork_rng():
        torch.manual_seed(seed)
        model = SingleTaskMultiFidelityGP(X, y, data_fidelities=[d], outcome_transform=Standardize(m=1),
                                          input_transform=Normalize(d + 1, indices=list(range(d)), bounds=bounds))
        fit_gpytorch_mll(ExactMarginalLogLikelihood(model.likelihood, model))
    model.eval()
    return _AppendColumn(model, value=codes[target]), _Joint(model, codes, target)


class _Delta:
    """Two fidelities: a GP on the cheap one, and one on the target over ``[x, cheap mean(x)]``."""

    def __init__(self, low: Model, high: Model, target_model: _AppendColumn) -> None:
        self.low, self.high, self.target_model = low, high, target_model

    def predict_at(self, X: Tensor, f: int) -> tuple[Tensor, Tensor]:
        if f == 0:
            post = self.low.posterior(X, observation_noise=True)
        else:
            post = self.target_model.posterior(X, observation_noise=True)
        return post.mean.reshape(-1), post.variance.reshape(-1)

    def removable(self, X: Tensor) -> Tensor:
        latent = self.target_model.posterior(X)
        var_t = latent.variance.reshape(-1)
        noisy_t = self.target_model.posterior(X, observation_noise=True).variance.reshape(-1)
        at_target = var_t**2 / noisy_t.clamp_min(1e-12)
        low = self.low.posterior(X)
        m_l, v_l = low.mean.reshape(-1), low.variance.reshape(-1)
        noisy_l = self.low.posterior(X, observation_noise=True).variance.reshape(-1)
        shift = v_l / noisy_l.clamp_min(1e-12).sqrt()  # std of the cheap mean after one cheap measurement
        nodes = torch.as_tensor(_NODES, dtype=X.dtype)
        weights = torch.as_tensor(_WEIGHTS, dtype=X.dtype)
        moved = m_l.unsqueeze(-1) + shift.unsqueeze(-1) * nodes  # n x k
        Xk = torch.cat([X.unsqueeze(-2).expand(-1, len(nodes), -1), moved.unsqueeze(-1)], dim=-1)
        means = self.high.posterior(Xk).mean.reshape(len(X), len(nodes))
        first = (means * weights).sum(-1)
        at_low = ((means - first.unsqueeze(-1)) ** 2 * weights).sum(-1)
        return torch.stack([torch.minimum(at_low, var_t), at_target], dim=-1)


def _fit_delta(data: list[FidelityData], target: int, seed: int, settings: dict[str, Any]) -> tuple[Model, Any]:
    if len(data) != 2 or target != 1:
        raise ValueError("delta learning needs exactly two fidelities, the target the more expensive")
    low_data, high_data = data
    low, _ = fit_gp(low_data.X, low_data.y.unsqueeze(-1), None, seed, dict(settings))
    with torch.no_grad():
        column = low.posterior(high_data.X).mean
    high_settings = {k: v for k, v in settings.items() if k not in ("bounds", "feature_groups", "kernel")}
    high, _ = fit_gp(torch.cat([high_data.X, column], -1), high_data.y.unsqueeze(-1), None, seed + 1, high_settings)
    target_model = _AppendColumn(high, feature=low)
    return target_model, _Delta(low, high, target_model)


FITTERS = {"multitask": _fit_multitask, "mfgp": _fit_mfgp, "delta": _fit_delta}


# --------------------------------------------------------------------------- fitting and cross-validation


def fit_multifidelity(
    data: list[FidelityData],
    target: int,
    *,
    kind: str = DEFAULT_KIND,
    seed: int = 0,
    cv_folds: int = 5,
    settings: dict[str, Any] | None = None,
    property_name: str = "y",
) -> MultiFidelitySurrogate:
    """Fit ``kind`` on every fidelity's data (``data`` cheapest first, ``target`` the index of the truth).

    ``cv_folds >= 2`` cross-validates each fidelity's predictions (k folds of that fidelity's points held out,
    every other point kept: a cheap answer is usually known before the expensive one) into ``metrics``.
    """
    if kind not in KINDS:
        raise ValueError(f"unknown multi-fidelity model {kind!r}; use one of {', '.join(KINDS)}")
    data = [FidelityData(D.name, float(D.cost), torch.as_tensor(D.X, dtype=torch.double),
                         torch.as_tensor(D.y, dtype=torch.double).reshape(-1)) for D in data]
    if len(data[target].y) < 1:  # one target answer anchors the level; the cheap answers carry the shape
        raise ValueError(f"the target fidelity {data[target].name!r} has no results yet; need 1")
    reason = f"{kind}: multi-fidelity model over {', '.join(f'{D.name} ({len(D.y)})' for D in data)}"
    if kind == "delta" and (len(data) != 2 or target != 1):
        kind, reason = "multitask", f"multitask (delta learning needs two fidelities): over {len(data)} fidelities"
    settings = dict(settings or {})
    settings.pop("feature_groups", None)
    model, impl = FITTERS[kind](data, target, seed, settings)
    metrics: dict[str, dict[str, float]] = {}
    for f, D in enumerate(data):
        key = "0" if f == target else f"{property_name}@{D.name}"
        metrics[key] = _cross_validate(kind, data, target, f, seed, cv_folds, settings)
    corr = _correlation_note(impl, data, target)
    return MultiFidelitySurrogate(
        model=model, kind=kind, reason=reason + corr, fidelities=[D.name for D in data],
        costs=[D.cost for D in data], target=target, metrics=metrics,
        training_hash=training_hash(torch.cat([torch.cat([D.X, torch.full((len(D.y), 1), float(i))], -1)
                                               for i, D in enumerate(data)]),
                                    torch.cat([D.y for D in data]), None),
        n_train=sum(len(D.y) for D in data), impl=impl,
    )


def _cross_validate(kind: str, data: list[FidelityData], target: int, f: int, seed: int, folds: int,
                    settings: dict[str, Any]) -> dict[str, float]:
    n = len(data[f].y)
    folds = min(folds, n)
    nan = {k: float("nan") for k in METRIC_KEYS} | {"n": float(n)}
    if folds < 2 or n < 3 or (f == target and n - math.ceil(n / folds) < 2):
        return nan
    order = np.random.default_rng(seed).permutation(n)
    mean, var = torch.empty(n, dtype=torch.double), torch.empty(n, dtype=torch.double)
    for i in range(folds):
        test = torch.as_tensor(order[i::folds])
        keep = torch.ones(n, dtype=torch.bool)
        keep[test] = False
        fold = [D if j != f else FidelityData(D.name, D.cost, D.X[keep], D.y[keep]) for j, D in enumerate(data)]
        try:
            _, impl = FITTERS[kind](fold, target, seed + 1 + i, settings)
            with torch.no_grad():
                mu, v = impl.predict_at(data[f].X[test], f)
        except Exception:  # noqa: BLE001 - a fold too small to fit says nothing; report no metrics rather than fail
            return nan
        mean[test], var[test] = mu, v
    return regression_metrics(data[f].y.numpy(), mean.numpy(), var.numpy())


def _correlation_note(impl: Any, data: list[FidelityData], target: int) -> str:
    """The learnt correlation of each cheap fidelity with the target (multitask), for the reason string."""
    model = getattr(impl, "model", None)
    if not isinstance(model, MultiTaskGP):
        return ""
    with torch.no_grad():
        B = torch.as_tensor(model.covar_module.kernels[1].covar_matrix)
    notes = []
    for f, D in enumerate(data):
        if f != target:
            rho = float(B[f, target] / (B[f, f] * B[target, target]).sqrt())
            notes.append(f"{D.name} {rho:+.2f}")
    return f"; learnt correlation with {data[target].name}: {', '.join(notes)}"
