"""Gaussian processes for one property: an exact ``SingleTaskGP``, or a sparse variational GP for large data.

Why two: an exact GP costs O(n³) time and O(n²) memory per marginal-likelihood
step, which on a small CPU stops being practical at a few thousand points (see
``benchmarks/RESULTS-surrogates.md`` for the measured crossover). Above
``exact_gp_max_n`` observations we switch to BoTorch's ``SingleTaskVariationalGP``
(SVGP, Hensman et al. 2013) with ``num_inducing`` inducing points placed by greedy
variance reduction, trained full-batch on the ELBO: O(n m²) per step.

Both use inputs normalised to the unit cube and standardised outcomes. The exact GP
uses measured noise (``Yvar``) when results carry a standard deviation; the SVGP
learns one homoscedastic noise level (measured noise is not used there; say so in
the fit's reason). Categorical one-hot columns may be given as ``cat_dims`` to get
BoTorch's mixed kernel (Hamming distance on categories) instead of an RBF over bits.

**Input scaling.** A column that already lies in ``[0, 1]`` (what the featurizers make of
bounded parameters, fractions of a composition and one-hot bits) is normalised by the unit
interval, i.e. by the *known* bounds of the space, not by the range of the training data.
Scaling by the data's range made the first few points set the scale: with four points the
pool stretched far outside the unit cube, every lengthscale prior meant something else at
each iteration, and the posterior extrapolated with large variances (measured in
``benchmarks/RESULTS-selection.md``: the pool replay found the OER plates' best points later).
Other columns (descriptors in physical units) fall back to the training range unless the
caller passes ``settings["bounds"]`` (a ``2 x d`` list: the space's or pool's bounds).

**Priors of the exact GP** (``settings["gp_prior"]``, default ``"gamma"``): a Matern-5/2 ARD
kernel with a Gamma(3, ·) lengthscale prior whose mode grows with ``sqrt(d)`` (the
dimension-scaled prior of Hvarfner et al. 2024, with the lighter-tailed Gamma BayBE uses
instead of a LogNormal), a Gamma(2, ·) noise prior with its mode at ``exp(-5)`` of the
standardised variance, lengthscales bounded below by 0.025, and a constant mean. These are
BayBE 0.15's defaults, which the EDBO line of work tuned on chemistry and materials pools; in
the pool replay they found the best OER compositions sooner than BoTorch's RBF with LogNormal
priors (``"botorch"``, the previous default, still selectable).
"""

from __future__ import annotations

import math
import warnings
from functools import partial
from typing import Any

import gpytorch
import torch
from botorch.fit import fit_gpytorch_mll
from botorch.models import MixedSingleTaskGP, SingleTaskGP, SingleTaskVariationalGP
from botorch.models.model import Model
from botorch.models.transforms.input import Normalize
from botorch.models.transforms.outcome import Standardize
from botorch.optim.fit import fit_gpytorch_mll_scipy
from gpytorch.constraints import GreaterThan
from gpytorch.kernels import AdditiveKernel, Kernel, MaternKernel, ScaleKernel
from gpytorch.likelihoods import GaussianLikelihood
from gpytorch.means import ConstantMean
from gpytorch.mlls import ExactMarginalLogLikelihood, VariationalELBO
from gpytorch.priors import GammaPrior
from torch import Tensor

from surrogates.config import GP_PRIORS, KERNELS

#: Default switch from exact to sparse GP (observations per output); measured in the benchmark.
EXACT_GP_MAX_N = 1000
NUM_INDUCING = 256
#: L-BFGS iterations for the ELBO: scipy's default (15,000) takes minutes over ~33k variational parameters.
SPARSE_MAXITER = 200
#: L-BFGS-B's relative tolerance on the negative marginal log likelihood for a fit warm-started from a previous
#: optimum (scipy's default, 2.2e-9, is kept for a start from the priors). BoTorch's own fitting loop
#: (``fit_gpytorch_mll_torch``'s ``ExpMAStoppingCriterion``) calls a fit converged at 1e-5 relative change of a
#: 10-step moving average; L-BFGS-B tests single steps, so one tenth of that. From a nearby optimum the default
#: spends most of its 80-240 evaluations on the last few 1e-3 nats per point of a flat, prior-dominated
#: likelihood (``benchmarks/RESULTS-ask-speed.md``); this stops after 20-65 within 0.005 nats per point.
WARM_FTOL = 1e-6


def gp_variant(n: int, settings: dict[str, Any]) -> str:
    """``"exact"`` or ``"sparse"`` for ``n`` training points."""
    forced = settings.get("gp_variant")
    if forced in {"exact", "sparse"}:
        return forced
    return "exact" if n <= int(settings.get("exact_gp_max_n", EXACT_GP_MAX_N)) else "sparse"


#: Smallest lengthscale (unit-cube inputs): below a grid step of 0.025 a kernel only interpolates noise.
MIN_LENGTHSCALE = 2.5e-2


def input_bounds(X: Tensor, settings: dict[str, Any]) -> Tensor:
    """``2 x d`` bounds for ``Normalize``: the caller's, else ``[0, 1]`` for unit-scaled columns, else the data's.

    A column counts as unit-scaled when every training value lies in ``[0, 1]``; see the module docstring
    for why the known bounds beat the training range.
    """
    if settings.get("bounds") == "data":  # models saved before known-bounds scaling
        low, high = X.min(dim=0).values, X.max(dim=0).values
    elif settings.get("bounds") is not None:
        bounds = torch.as_tensor(settings["bounds"], dtype=X.dtype)
        if bounds.shape != (2, X.shape[-1]):
            raise ValueError(f"surrogate setting bounds must be 2 x {X.shape[-1]}, got {tuple(bounds.shape)}")
        low, high = torch.minimum(bounds[0], X.min(dim=0).values), torch.maximum(bounds[1], X.max(dim=0).values)
    else:
        low, high = X.min(dim=0).values, X.max(dim=0).values
        unit = (low >= 0) & (high <= 1)
        low, high = torch.where(unit, torch.zeros_like(low), low), torch.where(unit, torch.ones_like(high), high)
    # a constant column (e.g. a descriptor that never varies in the training data) must not divide by zero
    return torch.stack([low, torch.where(high - low > 1e-12, high, low + 1.0)])


def feature_groups(settings: dict[str, Any], d: int) -> list[list[int]]:
    """``settings["feature_groups"]`` checked: lists of column indices below ``d``, none empty, none shared."""
    groups = [[int(i) for i in g] for g in settings.get("feature_groups") or []]
    seen: set[int] = set()
    for g in groups:
        if not g or any(i < 0 or i >= d for i in g) or seen & set(g) or len(set(g)) != len(g):
            raise ValueError(f"surrogate setting feature_groups={groups}: each group needs distinct columns "
                             f"in 0..{d - 1}, and no column may be in two groups")
        seen |= set(g)
    return groups


def gamma_priors(d: int, fixed_noise: bool) -> dict[str, Any]:
    """Kernel, likelihood and mean of the ``"gamma"`` prior (see the module docstring)."""
    parts: dict[str, Any] = {"covar_module": dimension_scaled_matern(None, d), "mean_module": ConstantMean()}
    if not fixed_noise:  # measured noise (train_Yvar) brings its own fixed-noise likelihood
        noise_prior = GammaPrior(2.0, 1.0 / math.exp(-5.0))  # mode exp(-5): nearly noise-free a priori
        parts["likelihood"] = GaussianLikelihood(
            noise_prior=noise_prior,
            noise_constraint=GreaterThan(1e-4, transform=None, initial_value=noise_prior.mode),
        )
    return parts


def dimension_scaled_matern(dims: list[int] | None, d: int) -> MaternKernel:
    """Matern-5/2 ARD over ``dims`` (all columns when ``None``) with the ``"gamma"`` lengthscale prior for ``d``."""
    concentration = 3.0
    mode = math.sqrt(d) * math.exp(math.sqrt(2) - 3)
    rate = (concentration - 1) / mode
    lengthscale_prior = GammaPrior(concentration, rate)
    return MaternKernel(
        nu=2.5, ard_num_dims=d, active_dims=None if dims is None else torch.tensor(dims),
        lengthscale_prior=lengthscale_prior,
        lengthscale_constraint=GreaterThan(MIN_LENGTHSCALE, transform=None, initial_value=lengthscale_prior.mode),
    )


def resolved_kernel(settings: dict[str, Any]) -> str:
    """``"matern"`` or ``"additive"``: what ``settings["kernel"]`` (default ``"auto"``) means for these groups."""
    kernel = settings.get("kernel", "auto")
    if kernel not in KERNELS:
        raise ValueError(f"surrogate setting kernel={kernel!r}: expected one of {KERNELS}")
    groups = settings.get("feature_groups") or []
    if kernel == "additive" and len(groups) < 2:
        raise ValueError("surrogate setting kernel='additive' needs feature_groups with at least two parameters")
    if kernel == "additive" and settings.get("gp_prior", "gamma") != "gamma":
        raise ValueError("surrogate setting kernel='additive' works with gp_prior='gamma' only")
    if settings.get("cat_dims"):  # the mixed (Hamming) kernel already treats categories as categories
        return "matern"
    if kernel == "auto":
        multi_column = any(len(g) > 1 for g in groups)
        gamma = settings.get("gp_prior", "gamma") == "gamma"
        return "additive" if len(groups) >= 2 and multi_column and gamma else "matern"
    return kernel


def additive_kernel(groups: list[list[int]], d: int) -> Kernel:
    """One scaled Matern per parameter's columns plus one over all ``d`` columns (see the module docstring).

    Each term's outputscale has a Gamma(2, 4) prior (mode 0.25 of the standardised variance), so that with
    a handful of parameters the terms together start near the data's unit variance.
    """
    terms = [ScaleKernel(dimension_scaled_matern(g, len(g)), outputscale_prior=GammaPrior(2.0, 4.0)) for g in groups]
    terms.append(ScaleKernel(dimension_scaled_matern(None, d), outputscale_prior=GammaPrior(2.0, 4.0)))
    return AdditiveKernel(*terms)


def build_gp(
    X: Tensor, y: Tensor, yvar: Tensor | None, variant: str, settings: dict[str, Any]
) -> Model:
    """An unfitted GP on ``(X, y)``; the same call rebuilds it before ``load_state_dict``."""
    d = X.shape[-1]
    bounds = input_bounds(X, settings)
    cat_dims = [int(i) for i in settings.get("cat_dims", [])]
    if variant == "exact":
        if cat_dims:
            cont = [i for i in range(d) if i not in set(cat_dims)]
            return MixedSingleTaskGP(
                X,
                y,
                cat_dims=cat_dims,
                train_Yvar=yvar,
                input_transform=Normalize(d, indices=cont, bounds=bounds[:, cont]) if cont else None,
                outcome_transform=Standardize(m=1),
            )
        prior = settings.get("gp_prior", "gamma")
        if prior not in GP_PRIORS:
            raise ValueError(f"surrogate setting gp_prior={prior!r}: expected one of {GP_PRIORS}")
        parts = gamma_priors(d, fixed_noise=yvar is not None) if prior == "gamma" else {}
        if resolved_kernel(settings) == "additive":
            parts["covar_module"] = additive_kernel(feature_groups(settings, d), d)
        return SingleTaskGP(
            X, y, train_Yvar=yvar, input_transform=Normalize(d, bounds=bounds), outcome_transform=Standardize(m=1),
            **parts,
        )
    if variant == "sparse":
        m = min(int(settings.get("num_inducing", NUM_INDUCING)), X.shape[0])
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # full-batch training: Standardize sees all data once
            return SingleTaskVariationalGP(
                X,
                y,
                inducing_points=m,
                covar_module=ScaleKernel(MaternKernel(nu=2.5, ard_num_dims=d)),
                input_transform=Normalize(d, bounds=bounds),
                outcome_transform=Standardize(m=1),
            )
    raise ValueError(f"unknown GP variant {variant!r}")


def fit_gp(
    X: Tensor, y: Tensor, yvar: Tensor | None, seed: int, settings: dict[str, Any],
    init: dict[str, Tensor] | None = None, optimize: bool = True,
) -> tuple[Model, dict]:
    """Fit a GP to one output column; returns the model and what is needed to rebuild it.

    ``init`` (an exact GP's hyperparameters by parameter name, see :func:`hyperparameters`) starts the
    marginal-likelihood optimisation from a previous fit's optimum instead of the priors' modes, and stops at
    ``WARM_FTOL``; with ``optimize=False`` they are used as they are (the GP is only conditioned on the new data).
    """
    variant = gp_variant(X.shape[0], settings)
    with torch.random.fork_rng():
        torch.manual_seed(seed)
        model = build_gp(X, y, yvar if variant == "exact" else None, variant, settings)
        if variant == "exact" and init is not None:
            params = dict(model.named_parameters())
            with torch.no_grad():
                for name, value in init.items():
                    params[name].copy_(value)
        if variant == "exact":
            # Dense kernel matrices straight away: on the few dozen rows an exact GP is refitted on, gpytorch's
            # lazily evaluated kernel tensors cost more Python than the arithmetic they defer (each L-BFGS step
            # builds one per additive term and evaluates it at once anyway); the same numbers, ~10 % sooner.
            with gpytorch.settings.lazily_evaluate_kernels(False):
                if init is None:
                    fit_gpytorch_mll(ExactMarginalLogLikelihood(model.likelihood, model))
                elif optimize:
                    fit_gpytorch_mll(ExactMarginalLogLikelihood(model.likelihood, model),
                                     optimizer_kwargs={"options": {"ftol": WARM_FTOL}})
        else:
            mll = VariationalELBO(model.likelihood, model.model, num_data=X.shape[0])
            maxiter = int(settings.get("sparse_maxiter", SPARSE_MAXITER))
            fit_gpytorch_mll(mll, optimizer=partial(fit_gpytorch_mll_scipy, options={"maxiter": maxiter}))
    model.eval()
    recipe = {"variant": variant, "cat_dims": list(settings.get("cat_dims", [])),
              "num_inducing": int(settings.get("num_inducing", NUM_INDUCING)),
              "gp_prior": settings.get("gp_prior", "gamma"), "bounds": input_bounds(X, settings).tolist(),
              "kernel": resolved_kernel(settings) if variant == "exact" else "matern",
              "feature_groups": feature_groups(settings, X.shape[-1])}
    return model, recipe


def hyperparameters(model: Model) -> dict[str, Tensor]:
    """An exact GP's fitted hyperparameters by parameter name (what ``fit_gp(init=...)`` starts from)."""
    return {name: p.detach().clone() for name, p in model.named_parameters()}


def gp_on_rows(model: Model, recipe: dict, X: Tensor, y: Tensor, yvar: Tensor | None) -> Model:
    """A fitted exact GP on other rows ``(X, y, yvar)``: its hyperparameters and transforms, nothing re-optimised.

    What cross-validation fits on a fold's training rows (Ax's ``refit_on_cv=False``): BoTorch's
    ``load_state_dict(keep_transforms=True)`` keeps the full fit's input scaling and outcome standardisation, so
    the hyperparameters mean exactly what they meant, and the fold's targets are standardised the same way.
    """
    if recipe["variant"] != "exact":
        raise ValueError("only an exact GP can be conditioned on other rows with its hyperparameters")
    with torch.random.fork_rng():
        torch.manual_seed(0)
        fold = build_gp(X, y, yvar, "exact", _recipe_settings(recipe))
    fold.load_state_dict(model.state_dict(), keep_transforms=True)
    return fold.eval()


def _recipe_settings(recipe: dict) -> dict[str, Any]:
    # recipes written before the gamma prior and the known-bounds scaling rebuild what they were fitted with
    return {"cat_dims": recipe["cat_dims"], "num_inducing": recipe["num_inducing"],
            "gp_prior": recipe.get("gp_prior", "botorch"), "bounds": recipe.get("bounds", "data"),
            # recipes written before the additive kernel were fitted with the single Matern
            "kernel": recipe.get("kernel", "matern"), "feature_groups": recipe.get("feature_groups", [])}


def rebuild_gp(X: Tensor, y: Tensor, yvar: Tensor | None, recipe: dict, state: dict) -> Model:
    """The fitted GP again, from its training data, recipe and state dict."""
    settings = _recipe_settings(recipe)
    variant = recipe["variant"]
    with torch.random.fork_rng():
        torch.manual_seed(0)
        model = build_gp(X, y, yvar if variant == "exact" else None, variant, settings)
    # keep_transforms=False: the state dict already holds the transforms' buffers, and BoTorch's
    # default path needs ``train_targets``, which a variational GP does not have.
    model.load_state_dict(state, keep_transforms=False)
    return model.eval()
