"""MatDesINNe: a conditional invertible network that samples designs for a target property.

After Fung, Zhang et al., npj Comput. Mater. 7, 200 (2021).  The flow maps a design ``x``
to a latent ``z`` *given* the property ``y``; trained by maximum likelihood
(``½‖z‖² − log|det J|``) it learns ``p(x | y)``, so pushing ``z ~ N(0, I)`` backwards with
``y = y*`` draws designs for the target.  Two cheap steps then make the draws precise:

* **down-selection** drops samples outside the design box and those whose surrogate
  prediction misses the target by more than a tolerance;
* **localisation** moves each survivor by Adam on ``(f(x) − y*)²`` through a
  differentiable surrogate ``f``, projecting back into the box after every step.

:class:`ForwardINN` is the plain (non-conditional) INN of Ardizzone et al. that MatDesINNe
compares against: trained forward (``x ⊕ padding → [ŷ, z]``), inverted by fixing ``ŷ = y*``.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import torch

from generators.inverse.invertible import InvertibleNetwork

TorchRegressor = Callable[[torch.Tensor], torch.Tensor]


@dataclass(frozen=True)
class FlowTraining:
    """How to train a flow; defaults fit ~10k rows in well under a minute on 2 cores."""

    n_blocks: int = 6
    hidden: int = 96
    epochs: int = 60
    batch_size: int = 256
    lr: float = 2e-3
    weight_decay: float = 1e-5
    condition_noise: float = 0.02  # in standardised y units: smooths the spike of metallic (y = 0) rows
    seed: int = 0


class _Standardiser:
    def __init__(self, data: np.ndarray) -> None:
        self.mean = data.mean(axis=0)
        self.std = np.where(data.std(axis=0) > 1e-12, data.std(axis=0), 1.0)

    def to(self, data: np.ndarray) -> np.ndarray:
        return (data - self.mean) / self.std

    def back(self, data: np.ndarray) -> np.ndarray:
        return data * self.std + self.mean


def _check_xy(x: np.ndarray, y: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    x = np.asarray(x, dtype=np.float64)
    y = np.asarray(y, dtype=np.float64).reshape(-1)
    if x.ndim != 2 or x.shape[0] != y.shape[0]:
        raise ValueError(f"designs must be (n, d) with one property per row; got x {x.shape}, y {y.shape}")
    if x.shape[0] < 8:
        raise ValueError(f"an invertible network needs at least 8 measured designs, got {x.shape[0]}")
    if not (np.all(np.isfinite(x)) and np.all(np.isfinite(y))):
        raise ValueError("designs or properties contain non-finite values")
    return x, y


def _train(net: InvertibleNetwork, loss_fn: Callable[[torch.Tensor, torch.Tensor], torch.Tensor],
           x: torch.Tensor, y: torch.Tensor, cfg: FlowTraining) -> list[float]:
    opt = torch.optim.Adam(net.parameters(), lr=cfg.lr, weight_decay=cfg.weight_decay)
    steps = max(1, int(np.ceil(len(x) / cfg.batch_size)))
    sched = torch.optim.lr_scheduler.CosineAnnealingLR(opt, T_max=cfg.epochs * steps)
    gen = torch.Generator().manual_seed(cfg.seed)
    history = []
    net.train()
    for _ in range(cfg.epochs):
        order = torch.randperm(len(x), generator=gen)
        total = 0.0
        for k in range(steps):
            b = order[k * cfg.batch_size : (k + 1) * cfg.batch_size]
            loss = loss_fn(x[b], y[b])
            opt.zero_grad()
            loss.backward()
            torch.nn.utils.clip_grad_norm_(net.parameters(), 10.0)
            opt.step()
            sched.step()
            total += float(loss.detach()) * len(b)
        history.append(total / len(x))
    net.eval()
    return history


class ConditionalINN:
    """``p(x | y)`` by a conditional affine-coupling flow trained by maximum likelihood."""

    def __init__(self, training: FlowTraining | None = None) -> None:
        self.cfg = training or FlowTraining()
        self.net: InvertibleNetwork | None = None
        self.history: list[float] = []

    def fit(self, x: np.ndarray, y: np.ndarray) -> ConditionalINN:
        x, y = _check_xy(x, y)
        torch.manual_seed(self.cfg.seed)
        self._xs, self._ys = _Standardiser(x), _Standardiser(y[:, None])
        xt = torch.as_tensor(self._xs.to(x), dtype=torch.float32)
        yt = torch.as_tensor(self._ys.to(y[:, None]), dtype=torch.float32)
        self.net = InvertibleNetwork(x.shape[1], self.cfg.n_blocks, cond_dim=1, hidden=self.cfg.hidden, seed=self.cfg.seed)
        dim = x.shape[1]
        noise = self.cfg.condition_noise

        def nll(xb: torch.Tensor, yb: torch.Tensor) -> torch.Tensor:
            z, log_det = self.net(xb, yb + noise * torch.randn_like(yb))  # type: ignore[misc]
            return torch.mean(0.5 * torch.sum(z**2, dim=1) - log_det) / dim

        self.history = _train(self.net, nll, xt, yt, self.cfg)
        return self

    @torch.no_grad()
    def sample(self, target: float, n: int, seed: int = 0) -> np.ndarray:
        """``n`` draws from ``p(x | y = target)`` in raw design units."""
        if self.net is None:
            raise RuntimeError("ConditionalINN.sample called before fit")
        gen = torch.Generator().manual_seed(seed)
        z = torch.randn(n, self.net.dim, generator=gen)
        c = torch.full((n, 1), float(self._ys.to(np.array([[target]]))[0, 0]))
        return self._xs.back(self.net.inverse(z, c).double().numpy())


class ForwardINN:
    """The plain INN: ``[x, padding] -> [ŷ, z]`` trained forward; inverted with ``ŷ = y*``, ``z ~ N(0, I)``."""

    def __init__(self, training: FlowTraining | None = None, padding: int = 1, y_weight: float = 5.0) -> None:
        self.cfg = training or FlowTraining()
        self.padding = padding
        self.y_weight = y_weight
        self.net: InvertibleNetwork | None = None
        self.history: list[float] = []

    def fit(self, x: np.ndarray, y: np.ndarray) -> ForwardINN:
        x, y = _check_xy(x, y)
        torch.manual_seed(self.cfg.seed)
        self._dx = x.shape[1]
        self._xs, self._ys = _Standardiser(x), _Standardiser(y[:, None])
        xt = torch.as_tensor(self._xs.to(x), dtype=torch.float32)
        yt = torch.as_tensor(self._ys.to(y[:, None]), dtype=torch.float32)
        dim = self._dx + self.padding
        self.net = InvertibleNetwork(dim, self.cfg.n_blocks, cond_dim=0, hidden=self.cfg.hidden, seed=self.cfg.seed)

        def loss(xb: torch.Tensor, yb: torch.Tensor) -> torch.Tensor:
            pad = 0.05 * torch.randn(len(xb), self.padding)  # noisy zero padding, as in the INN paper
            out, log_det = self.net(torch.cat([xb, pad], dim=1))  # type: ignore[misc]
            y_hat, z = out[:, :1], out[:, 1:]
            fit = torch.mean((y_hat - yb) ** 2)
            latent = torch.mean(0.5 * torch.sum(z**2, dim=1) - log_det) / dim
            return self.y_weight * fit + latent

        self.history = _train(self.net, loss, xt, yt, self.cfg)
        return self

    @torch.no_grad()
    def sample(self, target: float, n: int, seed: int = 0) -> np.ndarray:
        if self.net is None:
            raise RuntimeError("ForwardINN.sample called before fit")
        gen = torch.Generator().manual_seed(seed)
        z = torch.randn(n, self.net.dim - 1, generator=gen)
        y = torch.full((n, 1), float(self._ys.to(np.array([[target]]))[0, 0]))
        x = self.net.inverse(torch.cat([y, z], dim=1))[:, : self._dx]
        return self._xs.back(x.double().numpy())


def in_bounds(x: np.ndarray, bounds: np.ndarray, tol: float = 1e-9) -> np.ndarray:
    """Row mask of designs inside the box ``bounds`` (shape ``(d, 2)``)."""
    return np.all((x >= bounds[:, 0] - tol) & (x <= bounds[:, 1] + tol), axis=1)


def downselect(x: np.ndarray, bounds: np.ndarray, predict: Callable[[np.ndarray], np.ndarray], target: float,
               tolerance: float) -> np.ndarray:
    """Mask of samples inside the box whose surrogate prediction is within ``tolerance`` of ``target``."""
    keep = in_bounds(x, bounds)
    if keep.any():
        pred = predict(x[keep])
        idx = np.flatnonzero(keep)
        keep[idx[np.abs(pred - target) > tolerance]] = False
    return keep


def localise(x: np.ndarray, surrogate: TorchRegressor, target: float, bounds: np.ndarray, *, steps: int = 100,
             lr: float = 0.01, spread_weight: float = 0.0) -> np.ndarray:
    """Adam on ``(f(x) − target)²`` for every row at once, projected into ``bounds`` after each step.

    Steps are taken in box-normalised coordinates (``u = (x − low) / (high − low)``) so one
    learning rate suits parameters of any scale (Å and degrees here).

    With ``spread_weight > 0`` and an ensemble surrogate (one with ``members_forward``),
    the objective adds ``spread_weight · Var_members(x)``: the mean alone can be put on
    target in places where the members disagree, i.e. where the data do not determine
    the function and an independent check will likely disagree too.  Penalising the
    variance moves designs along the target level set toward where it is well determined.
    Measured on MoS2 (``benchmarks/RESULTS-inverse.md``) it drives the spread to ~0 but
    does not lower the independent validator's error — members fitted on the same rows
    can be made to agree without being right — so it is off by default.
    """
    members = getattr(surrogate, "members_forward", None)
    use_spread = spread_weight > 0 and callable(members)
    if len(x) == 0:
        return x.copy()
    low = torch.as_tensor(bounds[:, 0], dtype=torch.float32)
    span = torch.as_tensor(bounds[:, 1] - bounds[:, 0], dtype=torch.float32)
    u = ((torch.as_tensor(x, dtype=torch.float32) - low) / span).clamp(0.0, 1.0).requires_grad_(True)
    opt = torch.optim.Adam([u], lr=lr)
    for _ in range(steps):
        if use_spread:
            each = members(u * span + low)  # type: ignore[misc]
            loss = torch.sum((each.mean(0) - target) ** 2 + spread_weight * each.var(0))
        else:
            loss = torch.sum((surrogate(u * span + low) - target) ** 2)
        opt.zero_grad()
        loss.backward()
        opt.step()
        with torch.no_grad():
            u.clamp_(0.0, 1.0)
    with torch.no_grad():
        out = (u * span + low).double().numpy()
    return np.clip(out, bounds[:, 0], bounds[:, 1])
