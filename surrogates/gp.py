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
"""

from __future__ import annotations

import warnings
from functools import partial
from typing import Any

import torch
from botorch.fit import fit_gpytorch_mll
from botorch.models import MixedSingleTaskGP, SingleTaskGP, SingleTaskVariationalGP
from botorch.models.model import Model
from botorch.models.transforms.input import Normalize
from botorch.models.transforms.outcome import Standardize
from botorch.optim.fit import fit_gpytorch_mll_scipy
from gpytorch.kernels import MaternKernel, ScaleKernel
from gpytorch.mlls import ExactMarginalLogLikelihood, VariationalELBO
from torch import Tensor

#: Default switch from exact to sparse GP (observations per output); measured in the benchmark.
EXACT_GP_MAX_N = 1000
NUM_INDUCING = 256
#: L-BFGS iterations for the ELBO: scipy's default (15,000) takes minutes over ~33k variational parameters.
SPARSE_MAXITER = 200


def gp_variant(n: int, settings: dict[str, Any]) -> str:
    """``"exact"`` or ``"sparse"`` for ``n`` training points."""
    forced = settings.get("gp_variant")
    if forced in {"exact", "sparse"}:
        return forced
    return "exact" if n <= int(settings.get("exact_gp_max_n", EXACT_GP_MAX_N)) else "sparse"


def build_gp(
    X: Tensor, y: Tensor, yvar: Tensor | None, variant: str, settings: dict[str, Any]
) -> Model:
    """An unfitted GP on ``(X, y)``; the same call rebuilds it before ``load_state_dict``."""
    d = X.shape[-1]
    low, high = X.min(dim=0).values, X.max(dim=0).values
    # a constant column (e.g. a one-hot bit never set in the training data) must not divide by zero
    bounds = torch.stack([low, torch.where(high - low > 1e-12, high, low + 1.0)])
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
        return SingleTaskGP(
            X, y, train_Yvar=yvar, input_transform=Normalize(d, bounds=bounds), outcome_transform=Standardize(m=1)
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


def fit_gp(X: Tensor, y: Tensor, yvar: Tensor | None, seed: int, settings: dict[str, Any]) -> tuple[Model, dict]:
    """Fit a GP to one output column; returns the model and what is needed to rebuild it."""
    variant = gp_variant(X.shape[0], settings)
    with torch.random.fork_rng():
        torch.manual_seed(seed)
        model = build_gp(X, y, yvar if variant == "exact" else None, variant, settings)
        if variant == "exact":
            mll = ExactMarginalLogLikelihood(model.likelihood, model)
            fit_gpytorch_mll(mll)
        else:
            mll = VariationalELBO(model.likelihood, model.model, num_data=X.shape[0])
            maxiter = int(settings.get("sparse_maxiter", SPARSE_MAXITER))
            fit_gpytorch_mll(mll, optimizer=partial(fit_gpytorch_mll_scipy, options={"maxiter": maxiter}))
    model.eval()
    recipe = {"variant": variant, "cat_dims": list(settings.get("cat_dims", [])),
              "num_inducing": int(settings.get("num_inducing", NUM_INDUCING))}
    return model, recipe


def rebuild_gp(X: Tensor, y: Tensor, yvar: Tensor | None, recipe: dict, state: dict) -> Model:
    """The fitted GP again, from its training data, recipe and state dict."""
    settings = {"cat_dims": recipe["cat_dims"], "num_inducing": recipe["num_inducing"]}
    variant = recipe["variant"]
    with torch.random.fork_rng():
        torch.manual_seed(0)
        model = build_gp(X, y, yvar if variant == "exact" else None, variant, settings)
    # keep_transforms=False: the state dict already holds the transforms' buffers, and BoTorch's
    # default path needs ``train_targets``, which a variational GP does not have.
    model.load_state_dict(state, keep_transforms=False)
    return model.eval()
