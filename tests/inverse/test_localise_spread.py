"""Localisation with an ensemble-variance penalty moves designs to where the members agree, inside the box."""

import numpy as np
import torch

from generators.inverse import in_bounds, localise


class _TwoMembers(torch.nn.Module):
    """Both members say ``x0 + x1``, but the second adds ``x1²``: they agree only near ``x1 = 0``."""

    def members_forward(self, x: torch.Tensor) -> torch.Tensor:
        base = x[:, 0] + x[:, 1]
        return torch.stack([base, base + x[:, 1] ** 2])

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.members_forward(x).mean(0)


def test_spread_penalty_lowers_member_disagreement_and_keeps_target():
    bounds = np.array([[0.0, 1.0], [0.0, 1.0]])
    x = np.random.default_rng(0).uniform(0.3, 0.7, size=(40, 2))
    ens = _TwoMembers()
    kwargs = dict(target=0.8, bounds=bounds, steps=400, lr=0.02)
    plain = localise(x, ens, **kwargs)
    penalised = localise(x, ens, spread_weight=10.0, **kwargs)

    def spread(a):
        with torch.no_grad():
            return ens.members_forward(torch.as_tensor(a, dtype=torch.float32)).std(0).numpy()

    def miss(a):
        with torch.no_grad():
            return np.abs(ens(torch.as_tensor(a, dtype=torch.float32)).numpy() - 0.8)

    assert in_bounds(plain, bounds).all() and in_bounds(penalised, bounds).all()
    assert spread(penalised).mean() < 0.3 * spread(plain).mean()
    assert miss(penalised).mean() < 0.02
