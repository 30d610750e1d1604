"""The first batch, before any model is worth trusting: a space-filling design that respects the constraints."""

from __future__ import annotations

import torch
from botorch.utils.sampling import get_polytope_samples
from torch.quasirandom import SobolEngine

from agent.selection.grid import UnitScaler, maximin_subset, point_key, snap
from matloop.space import CategoricalParameter, ParametricSpace

#: Candidates drawn per requested point, from which the space-filling subset is chosen.
OVERSAMPLE = 32


def botorch_linear_constraints(space: ParametricSpace, names: list[str] | None = None):
    """The space's simplex and linear constraints as BoTorch ``(indices, coefficients, rhs)`` tuples.

    Indices refer to ``names`` (default: the space's numeric parameters, in order); BoTorch reads an
    inequality as ``sum(coef * x[idx]) >= rhs``.
    """
    a_ub, b_ub, a_eq, b_eq, _ = space.constraint_matrices()
    numeric = space.numeric_names
    position = [list(names or numeric).index(n) for n in numeric]

    def tuples(a, b, sign):
        out = []
        for row, rhs in zip(a, b, strict=True):
            idx = [position[i] for i in range(len(row)) if row[i] != 0]
            coef = [sign * row[i] for i in range(len(row)) if row[i] != 0]
            out.append((torch.tensor(idx, dtype=torch.long), torch.tensor(coef, dtype=torch.double), sign * float(rhs)))
        return out

    return tuples(a_ub, b_ub, -1.0) or None, tuples(a_eq, b_eq, 1.0) or None


def _numeric_samples(space: ParametricSpace, n: int, seed: int) -> torch.Tensor:
    numeric = space.numeric_names
    bounds = torch.tensor([space.parameter(p).bounds for p in numeric], dtype=torch.double).T  # type: ignore[union-attr]
    if not (space.simplex or space.linear_constraints):
        u = SobolEngine(len(numeric), scramble=True, seed=seed).draw(n, dtype=torch.double)
        return bounds[0] + u * (bounds[1] - bounds[0])
    ineq, eq = botorch_linear_constraints(space)
    return get_polytope_samples(
        n, bounds, inequality_constraints=ineq, equality_constraints=eq, seed=seed, n_burnin=2000, n_thinning=8
    )


def initial_design(space: ParametricSpace, n: int, seed: int, pool: list[dict] | None = None) -> list[dict]:
    """``n`` distinct, valid, space-filling points of ``space`` (or of ``pool``, when the pool is given).

    Without a pool: scrambled Sobol points over the box when there are no simplex/linear constraints, else
    uniform samples of the constrained polytope (hit-and-run); categoricals from extra Sobol dimensions;
    every point snapped to the grids and validated; then the farthest-point subset of ``n``. With a pool:
    the farthest-point subset of the pool itself (unit-scaled parameters). Raises when fewer than ``n``
    distinct valid points exist.
    """
    if n < 1:
        raise ValueError(f"initial_design needs n >= 1, got {n}")
    scaler = UnitScaler(space)
    if pool is not None:
        bad = [(i, v) for i, p in enumerate(pool) if (v := space.violations(p))]
        if bad:
            raise ValueError(f"pool point {bad[0][0]} is not in the space: {bad[0][1]}")
        keys, unique = set(), []
        for p in pool:
            k = point_key(space, p)
            if k not in keys:
                keys.add(k)
                unique.append(p)
        if len(unique) < n:
            raise ValueError(f"the pool has {len(unique)} distinct points, fewer than the {n} asked for")
        idx = maximin_subset(scaler.transform(unique), n, seed)
        return [dict(unique[i]) for i in idx]

    m = max(OVERSAMPLE * n, 256)
    numeric = space.numeric_names
    X = _numeric_samples(space, m, seed)
    categoricals = [p for p in space.parameters if isinstance(p, CategoricalParameter)]
    U = SobolEngine(max(len(categoricals), 1), scramble=True, seed=seed + 1).draw(m, dtype=torch.double)
    keys, candidates = set(), []
    for i in range(m):
        point: dict = {name: float(X[i, j]) for j, name in enumerate(numeric)}
        for j, c in enumerate(categoricals):
            point[c.name] = c.options[min(int(U[i, j] * len(c.options)), len(c.options) - 1)]
        point = snap(space, {p: point[p] for p in space.names})
        k = point_key(space, point)
        if k in keys or space.violations(point):
            continue
        keys.add(k)
        candidates.append(point)
    if len(candidates) < n:
        raise ValueError(
            f"only {len(candidates)} distinct valid points found for an initial design of {n}; "
            "the space (with its grids and constraints) may be too small: use a pool"
        )
    idx = maximin_subset(scaler.transform(candidates), n, seed)
    return [candidates[i] for i in idx]
