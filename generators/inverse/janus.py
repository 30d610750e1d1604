"""Janus: latent-space inverse design of microstructures with a predictive head.

After "Janus" (arXiv 2512.15746).  A convolutional encoder ``E`` maps a two-phase image to
a latent ``z``, a decoder ``D`` maps it back, and a head ``h`` predicts the property from
``z``.  Training minimises four terms:

* reconstruction ``BCE(D(E(x)), x)``;
* property ``(h(E(x)) − y)²``;
* cycle ``‖E(D(z)) − z‖²`` — decoding then encoding a latent returns it, so a latent
  found by optimisation decodes to an image the encoder reads back the same way;
* deep cycle ``BCE(D(E(D(E(x)))), x)`` — a second trip through the loop still
  reconstructs, which keeps decoded images inside the encoder's domain.

Inverse design is gradient descent on ``z`` toward the target through the head, starting
from the encodings of the measured images nearest the target, then decoding and
thresholding to two phases.

**Head.**  The paper uses a separable sum of low-order B-spline terms,
``h(z) = Σ_i s_i(z_i)``.  We use a small SiLU MLP instead: a separable sum cannot
represent interactions between latent coordinates (effective conductivity depends on
volume fraction *and* connectivity jointly), and compactly supported splines have zero
gradient outside their knot span, so descent stalls as soon as ``z`` leaves it.  A SiLU
MLP is smooth everywhere with non-vanishing gradients, and the latent penalty below
keeps ``z`` in a bounded region where the head was trained.  To make the descent target
what will actually be *made*, the objective is evaluated on the re-encoded decoded image
``h(E(D(z)))`` (the cycle path), not only on ``h(z)``.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Protocol

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn


@dataclass(frozen=True)
class JanusTraining:
    """Training settings; the defaults are what the benchmark uses (1200 64×64 images: minutes on one core)."""

    latent_channels: int = 2
    width: int = 16
    epochs: int = 20
    batch_size: int = 32
    lr: float = 3e-3
    w_property: float = 1.0
    w_cycle: float = 1.0
    w_deep_cycle: float = 0.5
    w_latent: float = 1e-3  # keeps the latent cloud compact so inversion stays where the head was trained
    seed: int = 0


class JanusModel(nn.Module):
    """Encoder, decoder and property head for ``size × size`` images (size divisible by 4).

    The latent is spatial — ``latent_channels`` maps at a quarter of the image resolution,
    flattened to a vector of ``latent_channels · (size/4)²`` — because a 64×64 random
    two-phase image holds a hundred or more independent features: a 32-number bottleneck
    reconstructs only its volume fraction (we measured ~25 % pixel error that way), while
    a 16×16×2 latent reconstructs it and still leaves a 512-dimensional space that
    gradient descent handles easily.
    """

    def __init__(self, size: int = 64, latent_channels: int = 2, width: int = 16) -> None:
        super().__init__()
        if size % 4:
            raise ValueError(f"image size must be divisible by 4, got {size}")
        self.size = size
        self._latent_shape = (latent_channels, size // 4, size // 4)
        self.latent_dim = latent_channels * (size // 4) ** 2
        w = width
        self.encoder = nn.Sequential(
            nn.Conv2d(1, w, 3, 1, 1), nn.SiLU(),
            nn.Conv2d(w, w, 4, 2, 1), nn.SiLU(),
            nn.Conv2d(w, 2 * w, 4, 2, 1), nn.SiLU(),
            nn.Conv2d(2 * w, latent_channels, 3, 1, 1),
            nn.Flatten(),
        )
        self.decoder = nn.Sequential(
            nn.Conv2d(latent_channels, 2 * w, 3, 1, 1), nn.SiLU(),
            nn.ConvTranspose2d(2 * w, w, 4, 2, 1), nn.SiLU(),
            nn.ConvTranspose2d(w, w, 4, 2, 1), nn.SiLU(),
            nn.Conv2d(w, 1, 3, 1, 1),
        )
        self.head = nn.Sequential(
            nn.Linear(self.latent_dim, 128), nn.SiLU(), nn.Linear(128, 64), nn.SiLU(), nn.Linear(64, 1)
        )
        self.register_buffer("y_mean", torch.zeros(()))
        self.register_buffer("y_std", torch.ones(()))

    def encode(self, images: torch.Tensor) -> torch.Tensor:
        """Images ``(n, size, size)`` in [0, 1] → latents ``(n, latent_dim)``."""
        return self.encoder(images.unsqueeze(1) * 2.0 - 1.0)

    def decode_logits(self, z: torch.Tensor) -> torch.Tensor:
        return self.decoder(z.view(-1, *self._latent_shape)).squeeze(1)

    def decode(self, z: torch.Tensor) -> torch.Tensor:
        """Latents → soft images in [0, 1] (threshold at 0.5 for two phases)."""
        return torch.sigmoid(self.decode_logits(z))

    def predict_latent(self, z: torch.Tensor) -> torch.Tensor:
        """Head prediction in property units."""
        return self.head(z).squeeze(-1) * self.y_std + self.y_mean

    @torch.no_grad()
    def predict_images(self, images: np.ndarray) -> np.ndarray:
        return self.predict_latent(self.encode(torch.as_tensor(images, dtype=torch.float32))).numpy()

    @torch.no_grad()
    def reconstruct(self, images: np.ndarray) -> np.ndarray:
        """Two-phase reconstructions ``D(E(x)) > 0.5``."""
        z = self.encode(torch.as_tensor(images, dtype=torch.float32))
        return (self.decode(z) > 0.5).double().numpy()


def _check_images(images: np.ndarray, values: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    images = np.asarray(images, dtype=np.float32)
    values = np.asarray(values, dtype=np.float32).reshape(-1)
    if images.ndim != 3 or images.shape[1] != images.shape[2]:
        raise ValueError(f"images must be (n, size, size), got shape {images.shape}")
    if len(images) != len(values):
        raise ValueError(f"{len(images)} images but {len(values)} property values")
    if len(images) < 8:
        raise ValueError(f"Janus needs at least 8 measured microstructures, got {len(images)}")
    if not (np.all(np.isfinite(images)) and np.all(np.isfinite(values))):
        raise ValueError("images or property values contain non-finite numbers")
    return images, values


def train_janus(images: np.ndarray, values: np.ndarray, cfg: JanusTraining | None = None) -> tuple[JanusModel, list[dict[str, float]]]:
    """Fit encoder, decoder and head jointly on the four Janus losses; returns the model and per-epoch losses."""
    cfg = cfg or JanusTraining()
    images, values = _check_images(images, values)
    torch.manual_seed(cfg.seed)
    model = JanusModel(images.shape[1], cfg.latent_channels, cfg.width)
    x_all = torch.as_tensor(images)
    y_all = torch.as_tensor(values)
    model.y_mean.copy_(y_all.mean())
    model.y_std.copy_(y_all.std().clamp_min(1e-8))
    y_std_all = (y_all - model.y_mean) / model.y_std
    opt = torch.optim.Adam(model.parameters(), lr=cfg.lr)
    steps = max(1, int(np.ceil(len(x_all) / cfg.batch_size)))
    sched = torch.optim.lr_scheduler.OneCycleLR(opt, max_lr=cfg.lr, total_steps=cfg.epochs * steps)
    gen = torch.Generator().manual_seed(cfg.seed)
    history: list[dict[str, float]] = []
    model.train()
    for _ in range(cfg.epochs):
        order = torch.randperm(len(x_all), generator=gen)
        sums = {"recon": 0.0, "property": 0.0, "cycle": 0.0, "deep_cycle": 0.0}
        for k in range(steps):
            b = order[k * cfg.batch_size : (k + 1) * cfg.batch_size]
            x, y = x_all[b], y_std_all[b]
            z = model.encode(x)
            logits = model.decode_logits(z)
            recon = F.binary_cross_entropy_with_logits(logits, x)
            prop = F.mse_loss(model.head(z).squeeze(-1), y)
            x_hat = torch.sigmoid(logits)
            z_cycle = model.encode(x_hat)
            cycle = F.mse_loss(z_cycle, z.detach())  # E(D(z)) ≈ z
            deep = F.binary_cross_entropy_with_logits(model.decode_logits(z_cycle), x)  # D(E(D(E(x)))) ≈ x
            latent = z.pow(2).mean()
            loss = recon + cfg.w_property * prop + cfg.w_cycle * cycle + cfg.w_deep_cycle * deep + cfg.w_latent * latent
            opt.zero_grad()
            loss.backward()
            opt.step()
            sched.step()
            for key, val in (("recon", recon), ("property", prop), ("cycle", cycle), ("deep_cycle", deep)):
                sums[key] += float(val.detach()) * len(b)
        history.append({k: v / len(x_all) for k, v in sums.items()})
    model.eval()
    return model, history


@dataclass(frozen=True)
class Inversion:
    """Settings of the latent descent."""

    steps: int = 100
    lr: float = 0.02
    n_starts: int = 8  # latents started from the measured images nearest the target
    w_anchor: float = 0.05  # trust region: ‖z − z₀‖² keeps the design near a realistic start
    min_start_gap: float = 0.0  # start only from images whose value is ≥ this relative distance from the target


def _straight_through_threshold(soft: torch.Tensor) -> torch.Tensor:
    """Hard 0/1 forward, identity gradient backward: lets the descent see the *thresholded* image."""
    return soft + ((soft > 0.5).float() - soft).detach()


def invert(model: JanusModel, target: float, start_latents: torch.Tensor, cfg: Inversion | None = None) -> tuple[np.ndarray, np.ndarray]:
    """Descend from each start latent toward ``target``; returns (soft decoded images, head prediction).

    The objective is the head on the cycle path ``h(E(threshold(D(z))))`` — the model's
    estimate for the two-phase image that will actually be made — plus a trust-region
    pull toward the start.  Without that pull (we tried) the 512-dimensional descent finds
    adversarial latents: the head reports the target while the decoded image is far off
    the data manifold and the physics disagrees by 50 % or more.
    """
    cfg = cfg or Inversion()
    scale = model.y_std
    z0 = start_latents.detach().clone()
    z = z0.clone().requires_grad_(True)
    opt = torch.optim.Adam([z], lr=cfg.lr)
    for p in model.parameters():
        p.requires_grad_(False)
    try:
        for _ in range(cfg.steps):
            made = _straight_through_threshold(model.decode(z))
            miss = (model.predict_latent(model.encode(made)) - target) / scale
            loss = torch.sum(miss**2) + cfg.w_anchor * torch.sum((z - z0) ** 2) / z.shape[1]
            opt.zero_grad()
            loss.backward()
            opt.step()
    finally:
        for p in model.parameters():
            p.requires_grad_(True)
    with torch.no_grad():
        soft = model.decode(z)
        predicted = model.predict_latent(model.encode((soft > 0.5).float()))
    return soft.double().numpy(), predicted.double().numpy()


def _nested_images(soft: np.ndarray, counts: np.ndarray, order: np.ndarray) -> np.ndarray:
    """For each soft image, the binary image of its ``counts[i]`` most phase-1-like pixels."""
    n, size = len(soft), soft[0].size
    ranks = np.empty_like(order)
    np.put_along_axis(ranks, order, np.arange(size)[None, :].repeat(n, 0), axis=1)
    return (ranks < counts[:, None]).astype(np.float64).reshape(soft.shape)


def calibrate_fractions(soft: np.ndarray, score: Callable[[np.ndarray], np.ndarray], target: float,
                        iters: int = 12) -> tuple[np.ndarray, np.ndarray]:
    """Two-phase images from soft images ``(n, s, s)`` whose ``score`` is closest to ``target``, all at once.

    Bisection on the phase-1 pixel count of each image.  Taking the ``m`` most
    phase-1-like pixels gives nested images, and adding conductive pixels never lowers the
    effective conductivity, so the physics is monotone in ``m``; a learned ``score`` is
    nearly so, and the best image *seen* is returned, so a small wiggle costs nothing.
    ``score`` maps a batch ``(n, s, s)`` to ``(n,)``: one model call per step for all
    candidates.  Returns the images and their scores.
    """
    soft = np.asarray(soft, dtype=np.float64)
    flat = soft.reshape(len(soft), -1)
    order = np.argsort(-flat, axis=1, kind="stable")
    lo = np.ones(len(soft), dtype=int)
    hi = np.full(len(soft), flat.shape[1] - 1)
    best = _nested_images(soft, (flat > 0.5).sum(1), order)
    best_score = np.asarray(score(best), dtype=np.float64)
    for _ in range(iters):
        active = lo <= hi
        if not active.any():
            break
        mid = (lo + hi) // 2
        candidates = _nested_images(soft, mid, order)
        values = np.asarray(score(candidates), dtype=np.float64)
        better = active & (np.abs(values - target) < np.abs(best_score - target))
        best[better], best_score[better] = candidates[better], values[better]
        below = values < target
        lo = np.where(active & below, mid + 1, lo)
        hi = np.where(active & ~below, mid - 1, hi)
    return best, best_score


def calibrate_fraction(soft: np.ndarray, score: Callable[[np.ndarray], float], target: float, iters: int = 12) -> np.ndarray:
    """One soft image version of :func:`calibrate_fractions` with a per-image ``score`` (e.g. one physics solve)."""
    images, _ = calibrate_fractions(np.asarray(soft)[None], lambda b: np.array([score(im) for im in b]), target, iters)
    return images[0]


class ScoreModel(Protocol):
    """A forward model on binary images with its own uncertainty, e.g. :class:`~generators.inverse.image_regressor.ImageEnsemble`."""

    def predict_with_spread(self, images: np.ndarray) -> tuple[np.ndarray, np.ndarray]: ...


def candidates(model: JanusModel, target: float, images: np.ndarray, values: np.ndarray, n: int = 1,
               cfg: Inversion | None = None) -> tuple[np.ndarray, np.ndarray]:
    """Soft decoded candidates for ``target`` and the head's estimate of each when thresholded at 0.5.

    Starts from the ``n_starts`` (at least ``n``) measured images whose values are nearest
    the target (but at least ``min_start_gap`` away, to prove the descent itself moves the
    property) and descends; every start is one candidate.
    """
    cfg = cfg or Inversion()
    values = np.asarray(values, dtype=np.float64).reshape(-1)
    k = min(len(values), max(cfg.n_starts, n))
    gap = np.abs(values - target)
    eligible = np.flatnonzero(gap >= cfg.min_start_gap * abs(target))
    if len(eligible) == 0:
        raise ValueError(f"no measured image lies {cfg.min_start_gap:.0%} or more from target {target}")
    nearest = eligible[np.argsort(gap[eligible])[: min(k, len(eligible))]]
    with torch.no_grad():
        z0 = model.encode(torch.as_tensor(np.asarray(images)[nearest], dtype=torch.float32))
    return invert(model, target, z0, cfg)


def select_designs(model: JanusModel, soft: np.ndarray, head_predicted: np.ndarray, target: float, n: int = 1,
                   calibrate: bool = False, score_model: ScoreModel | None = None, spread_weight: float = 1.0
                   ) -> tuple[np.ndarray, np.ndarray]:
    """Threshold soft candidates to two phases and keep the ``n`` best; see :func:`design` for the modes."""
    if score_model is not None:
        designs, _ = calibrate_fractions(soft, lambda b: score_model.predict_with_spread(b)[0], target)
        predicted, spread = score_model.predict_with_spread(designs)
        order = np.argsort(np.abs(predicted - target) + spread_weight * spread)[:n]
        return designs[order], predicted[order]
    if calibrate:
        designs, predicted = calibrate_fractions(soft, model.predict_images, target)
    else:
        designs, predicted = (soft > 0.5).astype(np.float64), head_predicted
    order = np.argsort(np.abs(predicted - target))[:n]
    return designs[order], predicted[order]


def design(model: JanusModel, target: float, images: np.ndarray, values: np.ndarray, n: int = 1,
           cfg: Inversion | None = None, calibrate: bool = False, score_model: ScoreModel | None = None,
           spread_weight: float = 1.0) -> tuple[np.ndarray, np.ndarray]:
    """``n`` two-phase designs for ``target``, best first by the model's own estimate.

    :func:`candidates` gives one soft decoded image per start; then, per candidate:

    * default: threshold at 0.5 and rank by the head, ``|h(E(x)) − target|``;
    * ``calibrate``: threshold at the phase-1 pixel count where the head meets the target
      (measured no better than 0.5, so off by default);
    * ``score_model``: threshold where ``score_model`` (a forward model trained on binary
      images, with member spread) meets the target, and rank by
      ``|mean − target| + spread_weight · spread`` — the design the model is both on
      target for and most sure about.  Returns the score model's mean as the prediction.

    No physics solve is made here in any mode.
    """
    soft, head_predicted = candidates(model, target, images, values, n, cfg)
    return select_designs(model, soft, head_predicted, target, n, calibrate, score_model, spread_weight)
