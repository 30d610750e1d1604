"""Invertible networks from affine coupling blocks (RealNVP/GLOW style), written in plain torch.

One block splits its input ``x = [x1, x2]``, scales and shifts ``x2`` by functions of
``x1`` (and of the condition ``c``, when there is one) and then ``x1`` by functions of
the new ``x2``; a fixed random permutation between blocks mixes the coordinates.  The
log-scales pass through ``clamp * tanh(s / clamp)`` — the soft clamp of Ardizzone et al.
(used by MatDesINNe through FrEIA) — which keeps the Jacobian bounded and training stable.
Both directions are exact, so ``inverse(forward(x)) == x`` to round-off.
"""

from __future__ import annotations

import torch
from torch import nn


def _subnet(n_in: int, n_out: int, hidden: int) -> nn.Sequential:
    net = nn.Sequential(nn.Linear(n_in, hidden), nn.SiLU(), nn.Linear(hidden, hidden), nn.SiLU(), nn.Linear(hidden, n_out))
    # Start every block at the identity: the untrained flow is then exactly the base density.
    nn.init.zeros_(net[-1].weight)
    nn.init.zeros_(net[-1].bias)
    return net


class AffineCoupling(nn.Module):
    """Two-sided affine coupling: ``forward`` returns ``(y, log|det J|)``; ``inverse`` undoes it."""

    def __init__(self, dim: int, cond_dim: int = 0, hidden: int = 128, clamp: float = 2.0) -> None:
        super().__init__()
        if dim < 2:
            raise ValueError(f"an affine coupling needs at least 2 dimensions, got {dim}")
        self.d1 = dim // 2
        self.d2 = dim - self.d1
        self.clamp = clamp
        self.net1 = _subnet(self.d1 + cond_dim, 2 * self.d2, hidden)  # acts on x2 given x1
        self.net2 = _subnet(self.d2 + cond_dim, 2 * self.d1, hidden)  # acts on x1 given new x2

    def _scale_shift(self, net: nn.Module, h: torch.Tensor, c: torch.Tensor | None) -> tuple[torch.Tensor, torch.Tensor]:
        out = net(h if c is None else torch.cat([h, c], dim=1))
        s, t = out.chunk(2, dim=1)
        return self.clamp * torch.tanh(s / self.clamp), t

    def forward(self, x: torch.Tensor, c: torch.Tensor | None = None) -> tuple[torch.Tensor, torch.Tensor]:
        x1, x2 = x[:, : self.d1], x[:, self.d1 :]
        s1, t1 = self._scale_shift(self.net1, x1, c)
        y2 = x2 * torch.exp(s1) + t1
        s2, t2 = self._scale_shift(self.net2, y2, c)
        y1 = x1 * torch.exp(s2) + t2
        return torch.cat([y1, y2], dim=1), s1.sum(dim=1) + s2.sum(dim=1)

    def inverse(self, y: torch.Tensor, c: torch.Tensor | None = None) -> torch.Tensor:
        y1, y2 = y[:, : self.d1], y[:, self.d1 :]
        s2, t2 = self._scale_shift(self.net2, y2, c)
        x1 = (y1 - t2) * torch.exp(-s2)
        s1, t1 = self._scale_shift(self.net1, x1, c)
        x2 = (y2 - t1) * torch.exp(-s1)
        return torch.cat([x1, x2], dim=1)


class InvertibleNetwork(nn.Module):
    """A stack of coupling blocks with fixed permutations; conditional when ``cond_dim > 0``."""

    def __init__(self, dim: int, n_blocks: int = 6, cond_dim: int = 0, hidden: int = 128, seed: int = 0) -> None:
        super().__init__()
        self.dim = dim
        self.cond_dim = cond_dim
        self.blocks = nn.ModuleList(AffineCoupling(dim, cond_dim, hidden) for _ in range(n_blocks))
        gen = torch.Generator().manual_seed(seed)
        perms = [torch.randperm(dim, generator=gen) for _ in range(n_blocks)]
        self.register_buffer("perms", torch.stack(perms))
        self.register_buffer("inv_perms", torch.stack([torch.argsort(p) for p in perms]))

    def forward(self, x: torch.Tensor, c: torch.Tensor | None = None) -> tuple[torch.Tensor, torch.Tensor]:
        log_det = torch.zeros(x.shape[0], dtype=x.dtype, device=x.device)
        for block, perm in zip(self.blocks, self.perms, strict=True):
            x, ld = block(x[:, perm], c)
            log_det = log_det + ld
        return x, log_det

    def inverse(self, z: torch.Tensor, c: torch.Tensor | None = None) -> torch.Tensor:
        for block, inv_perm in zip(reversed(self.blocks), reversed(self.inv_perms), strict=True):
            z = block.inverse(z, c)[:, inv_perm]
        return z
