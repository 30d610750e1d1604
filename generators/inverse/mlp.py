"""A small differentiable regressor: the default surrogate for down-selection and localisation.

The cINN's localisation step needs ``∂prediction/∂x``; a campaign's BoTorch surrogate
gives that through its posterior mean, and when none is supplied this MLP (trained on the
same measured designs as the flow) does.  Inputs and outputs are standardised inside the
module so callers pass raw design coordinates.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
import torch
from torch import nn


def _register_scaling(module: nn.Module, n_in: int) -> None:
    """Buffers for the standardisation done inside the module (saved and moved with its weights)."""
    module.register_buffer("x_mean", torch.zeros(n_in))
    module.register_buffer("x_std", torch.ones(n_in))
    module.register_buffer("y_mean", torch.zeros(()))
    module.register_buffer("y_std", torch.ones(()))


def _fit_standardised(
    module: nn.Module, predict: Callable[[torch.Tensor], torch.Tensor], x: np.ndarray, y: np.ndarray, *,
    epochs: int, lr: float, batch_size: int, seed: int, row_weights: torch.Tensor | None = None,
) -> None:
    """Set ``module``'s scaling from the data, then Adam on standardised squared error with cosine decay.

    ``predict`` maps raw inputs to raw predictions of any leading shape that broadcasts
    against the targets (one network, or every member of an ensemble at once).
    ``row_weights`` (broadcasting like the predictions, last axis the rows) weight each
    row's squared error: an ensemble's bootstrap counts.
    """
    torch.manual_seed(seed)
    xt = torch.as_tensor(np.asarray(x, dtype=np.float32))
    yt = torch.as_tensor(np.asarray(y, dtype=np.float32)).reshape(-1)
    module.x_mean.copy_(xt.mean(0))
    module.x_std.copy_(xt.std(0).clamp_min(1e-8))
    module.y_mean.copy_(yt.mean())
    module.y_std.copy_(yt.std().clamp_min(1e-8))
    opt = torch.optim.Adam(module.parameters(), lr=lr)
    steps_per_epoch = max(1, int(np.ceil(len(xt) / batch_size)))
    sched = torch.optim.lr_scheduler.CosineAnnealingLR(opt, T_max=epochs * steps_per_epoch)
    gen = torch.Generator().manual_seed(seed)
    module.train()
    for _ in range(epochs):
        order = torch.randperm(len(xt), generator=gen)
        for k in range(steps_per_epoch):
            b = order[k * batch_size : (k + 1) * batch_size]
            squared = ((predict(xt[b]) - yt[b]) / module.y_std) ** 2
            if row_weights is None:
                loss = torch.mean(squared)
            else:
                w = row_weights[..., b]
                loss = (w * squared).sum() / w.sum().clamp_min(1.0)
            opt.zero_grad()
            loss.backward()
            opt.step()
            sched.step()
    module.eval()


class MLPRegressor(nn.Module):
    """``x (raw units) -> y (raw units)``; fit with :meth:`fit`, differentiable end to end."""

    def __init__(self, n_in: int, hidden: int = 128, depth: int = 3) -> None:
        super().__init__()
        layers: list[nn.Module] = []
        width = n_in
        for _ in range(depth):
            layers += [nn.Linear(width, hidden), nn.SiLU()]
            width = hidden
        layers.append(nn.Linear(width, 1))
        self.net = nn.Sequential(*layers)
        _register_scaling(self, n_in)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.net((x - self.x_mean) / self.x_std).squeeze(-1) * self.y_std + self.y_mean

    def fit(self, x: np.ndarray, y: np.ndarray, *, epochs: int = 300, lr: float = 3e-3, batch_size: int = 256,
            seed: int = 0) -> MLPRegressor:
        """Adam on mean-squared error with a cosine learning-rate decay (full control, no early stopping)."""
        _fit_standardised(self, self, x, y, epochs=epochs, lr=lr, batch_size=batch_size, seed=seed)
        return self

    @torch.no_grad()
    def predict(self, x: np.ndarray) -> np.ndarray:
        return self(torch.as_tensor(np.asarray(x, dtype=np.float32))).numpy()


class MLPEnsemble(nn.Module):
    """A deep ensemble of MLPs trained as one batched network; ``forward`` is the mean, :meth:`spread` the std.

    Localisation pushes designs wherever the surrogate says "on target"; a single network
    can be fooled by its own extrapolation.  Averaging members started from different
    initialisations damps that, and the members' disagreement flags designs no model is
    sure about, which the final down-selection drops.  The members' weights are stacked
    and applied with batched matrix products, so K members train in one pass (K times
    fewer optimiser steps than training them one after another).
    """

    def __init__(self, n_in: int, n_members: int = 4, hidden: int = 64, depth: int = 3) -> None:
        super().__init__()
        sizes = [n_in] + [hidden] * depth + [1]
        self.weights = nn.ParameterList()
        self.biases = nn.ParameterList()
        for a, b in zip(sizes[:-1], sizes[1:], strict=True):
            w = torch.empty(n_members, a, b)
            for k in range(n_members):
                nn.init.kaiming_uniform_(w[k].T, a=5**0.5)  # nn.Linear's default, per member
            self.weights.append(nn.Parameter(w))
            self.biases.append(nn.Parameter(torch.zeros(n_members, 1, b)))
        _register_scaling(self, n_in)

    def members_forward(self, x: torch.Tensor) -> torch.Tensor:
        """``(n, d)`` raw inputs → ``(K, n)`` raw predictions of every member."""
        h = ((x - self.x_mean) / self.x_std).unsqueeze(0).expand(len(self.weights[0]), -1, -1)
        for i, (w, b) in enumerate(zip(self.weights, self.biases, strict=True)):
            h = torch.baddbmm(b, h, w)
            if i < len(self.weights) - 1:
                h = torch.nn.functional.silu(h)
        return h.squeeze(-1) * self.y_std + self.y_mean

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.members_forward(x).mean(0)

    def fit(self, x: np.ndarray, y: np.ndarray, *, epochs: int = 200, lr: float = 3e-3, batch_size: int = 256,
            seed: int = 0, bootstrap: bool = False, subsample: float | None = None) -> MLPEnsemble:
        """Every member at once, on the same minibatches (their initialisations differ).

        With ``bootstrap`` each member also weights every row by its own Poisson(1) count
        (online bagging, Oza & Russell 2001: a bootstrap resample without copying data), so
        the members differ by the data they saw as well as by their start. Their spread
        then also measures how much a prediction depends on which rows were measured,
        which is what a model fitted on other rows disagrees about.

        With ``subsample`` (a share in (0, 1)) each member sees only its own random share of
        the rows (subagging, Bühlmann & Yu 2002). Members that each saw fewer rows disagree
        more, and more where few rows pin the function down; that makes them a sharper judge
        of *where* a prediction is trustworthy, at some cost to each member's accuracy.
        """
        if bootstrap and subsample is not None:
            raise ValueError("MLPEnsemble.fit: choose bootstrap or subsample, not both")
        weights = None
        if bootstrap:
            counts = np.random.default_rng(seed).poisson(1.0, size=(len(self.weights[0]), len(x)))
            weights = torch.as_tensor(counts, dtype=torch.float32)
        if subsample is not None:
            if not 0.0 < subsample < 1.0:
                raise ValueError(f"MLPEnsemble.fit: subsample must be a share in (0, 1), got {subsample}")
            drawn = np.random.default_rng(seed).random((len(self.weights[0]), len(x))) < subsample
            weights = torch.as_tensor(drawn, dtype=torch.float32)
        _fit_standardised(self, self.members_forward, x, y, epochs=epochs, lr=lr, batch_size=batch_size, seed=seed,
                          row_weights=weights)
        return self

    @torch.no_grad()
    def predict(self, x: np.ndarray) -> np.ndarray:
        return self(torch.as_tensor(np.asarray(x, dtype=np.float32))).numpy()

    @torch.no_grad()
    def spread(self, x: np.ndarray) -> np.ndarray:
        return self.members_forward(torch.as_tensor(np.asarray(x, dtype=np.float32))).std(0).numpy()
