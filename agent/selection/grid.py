"""Points of a parametric space as numbers and back: unit scaling, grid snapping, validation."""

from __future__ import annotations

import math

import numpy as np
import torch
from torch import Tensor

from matloop.space import CategoricalParameter, ContinuousParameter, IntegerParameter, ParametricSpace


class UnitScaler:
    """Numeric parameters scaled to [0, 1] by their bounds, categoricals one-hot (the simplest featurizer).

    Used for space-filling distances.
    """

    def __init__(self, space: ParametricSpace) -> None:
        self.space = space

    def transform(self, points: list[dict]) -> Tensor:
        rows = []
        for point in points:
            row: list[float] = []
            for p in self.space.parameters:
                v = point[p.name]
                if isinstance(p, CategoricalParameter):
                    row.extend(1.0 if v == o else 0.0 for o in p.options)
                else:
                    low, high = p.bounds
                    row.append((float(v) - low) / (high - low))  # type: ignore[arg-type]
            rows.append(row)
        return torch.tensor(rows, dtype=torch.double)


def _largest_remainder(values: np.ndarray, units: int) -> np.ndarray:
    """Integers summing to ``units``, closest to ``values`` (which sum to about ``units``)."""
    values = np.clip(values, 0, None)
    if values.sum() > 0:
        values = values * units / values.sum()
    base = np.floor(values + 1e-9).astype(int)
    short = units - int(base.sum())
    if short > 0:
        order = np.argsort(-(values - base), kind="stable")
        base[order[:short]] += 1
    elif short < 0:
        order = np.argsort(values - base, kind="stable")
        for i in order:
            if short == 0:
                break
            if base[i] > 0:
                base[i] -= 1
                short += 1
    return base


def snap(space: ParametricSpace, point: dict) -> dict:
    """The nearest point on the space's grids: integers rounded, stepped parameters and simplex groups on grid.

    Simplex groups on a grid are rounded by largest remainder, so they still sum to their total exactly.
    """
    out = dict(point)
    for p in space.parameters:
        if isinstance(p, IntegerParameter):
            out[p.name] = int(min(max(round(float(out[p.name])), p.bounds[0]), p.bounds[1]))
        elif isinstance(p, ContinuousParameter):
            v = min(max(float(out[p.name]), p.bounds[0]), p.bounds[1])
            if p.step is not None:
                k = round((v - p.bounds[0]) / p.step)
                v = min(p.bounds[0] + k * p.step, p.bounds[1])
            out[p.name] = v
    for group in space.simplex:
        values = np.array([float(out[n]) for n in group.parameters])
        if group.step is not None:
            units = int(round(group.total / group.step))
            snapped = _largest_remainder(values / group.step, units) * group.step
            snapped = np.round(snapped, 12)
        else:
            values = np.clip(values, 0, None)
            snapped = values * group.total / values.sum() if values.sum() > 0 else values
        for n, v in zip(group.parameters, snapped, strict=True):
            out[n] = float(v)
    return out


def point_key(space: ParametricSpace, point: dict) -> tuple:
    """Hashable identity of a point (numbers rounded to 1e-9) for de-duplication."""
    return tuple(
        point[p.name] if isinstance(p, CategoricalParameter) else round(float(point[p.name]), 9)
        for p in space.parameters
    )


def maximin_subset(X: Tensor, n: int, seed: int, fixed: Tensor | None = None) -> list[int]:
    """Greedy farthest-point selection of ``n`` rows of ``X`` (a space-filling subset), starting at random.

    ``fixed`` rows (e.g. already measured points) count as chosen, so the subset also keeps away from them.
    """
    n = min(n, len(X))
    gen = torch.Generator().manual_seed(seed)
    dist = torch.full((len(X),), math.inf, dtype=X.dtype)
    if fixed is not None and len(fixed):
        for s in range(0, len(fixed), 1024):
            dist = torch.minimum(dist, torch.cdist(X, fixed[s : s + 1024]).min(dim=1).values)
    chosen: list[int] = []
    if not torch.isfinite(dist).any():
        first = int(torch.randint(len(X), (1,), generator=gen))
    else:
        first = int(torch.argmax(dist))
    for _ in range(n):
        j = first if not chosen else int(torch.argmax(dist))
        if chosen and dist[j] <= 0:
            break
        chosen.append(j)
        dist = torch.minimum(dist, torch.cdist(X, X[j : j + 1]).squeeze(-1))
        dist[j] = -1.0
    return chosen
