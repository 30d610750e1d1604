"""Continuous mode: optimise the acquisition over the parametric space itself (no pool).

The optimiser works in the space's own numeric coordinates, where bounds, simplex groups (equalities) and
linear constraints are exactly the space's (BoTorch ``optimize_acqf`` with ``equality_constraints`` and
``inequality_constraints``). The model sees features; the featurizer of a numeric space is affine (scaling to
[0, 1]), so it is recovered by probing it and applied inside the acquisition, keeping gradients exact.
Optimised points are snapped to the grids, validated against the space and de-duplicated against measured,
pending and already chosen points; the best valid restart is kept for each slot of the batch.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from botorch.acquisition import AcquisitionFunction
from botorch.optim import optimize_acqf
from torch import Tensor

from agent.selection.acquisition import FeasibilityWeighted, build_acquisition, is_log_acquisition, resolve_acquisition
from agent.selection.feasibility import FeasibilityModel
from agent.selection.grid import UnitScaler, snap
from agent.selection.initial import botorch_linear_constraints, initial_design
from agent.selection.objectives import ObjectiveMap
from agent.selection.picks import Pick, as_dicts, explain
from agent.spec.objectives import Objective, OutcomeConstraint
from matloop.space import CategoricalParameter, ParametricSpace


def _keys(X: Tensor) -> list[tuple[float, ...]]:
    return [tuple(row) for row in torch.round(X.double(), decimals=9).tolist()]


def affine_featurizer(space: ParametricSpace, featurizer) -> tuple[Tensor, Tensor]:
    """``(A, b)`` with ``featurizer.transform([x]) == A @ x + b`` over the numeric parameters (checked)."""
    names = space.numeric_names
    center = {n: sum(space.parameter(n).bounds) / 2 for n in names}  # type: ignore[union-attr]
    probes = [center] + [{**center, n: center[n] + 0.25 * (space.parameter(n).bounds[1] - space.parameter(n).bounds[0])}  # type: ignore[union-attr]
                         for n in names]
    F = featurizer.transform(probes).double()
    b0 = F[0]
    A = torch.stack([(F[i + 1] - b0) / (probes[i + 1][n] - center[n]) for i, n in enumerate(names)], dim=-1)
    x0 = torch.tensor([center[n] for n in names], dtype=torch.double)
    b = b0 - A @ x0
    check = {n: space.parameter(n).bounds[0] for n in names}  # type: ignore[union-attr]
    expect = A @ torch.tensor([check[n] for n in names], dtype=torch.double) + b
    if not torch.allclose(featurizer.transform([check]).double()[0], expect, atol=1e-6):
        raise ValueError("continuous mode needs a featurizer that is affine in the numeric parameters")
    return A, b


class AffineInput(AcquisitionFunction):
    """``acq(A x + b)``: evaluate a feature-space acquisition at points given in parameter coordinates."""

    def __init__(self, base: AcquisitionFunction, A: Tensor, b: Tensor) -> None:
        super().__init__(model=base.model)
        self.base, self.A, self.b = base, A, b

    def forward(self, X: Tensor) -> Tensor:
        return self.base(X @ self.A.T + self.b)

    def set_X_pending(self, X_pending: Tensor | None = None) -> None:
        self.base.set_X_pending(X_pending)


def _grid_neighbours(space: ParametricSpace, points: list[dict]) -> list[dict]:
    """Points one grid step away (a unit moved between two simplex members; stepped/integer parameters +-1 step).

    Snapping the continuous optimum can land on a measured point; its grid neighbours are the next best guesses.
    """
    out: list[dict] = []
    in_simplex = {n for g in space.simplex for n in g.parameters}
    for point in points:
        for group in space.simplex:
            if group.step is None:
                continue
            for a in group.parameters:
                for b in group.parameters:
                    if a != b:
                        out.append({**point, a: point[a] + group.step, b: point[b] - group.step})
        for p in space.parameters:
            step = 1 if p.type == "integer" else getattr(p, "step", None)
            if step is None or p.name in in_simplex:
                continue
            out += [{**point, p.name: point[p.name] + step}, {**point, p.name: point[p.name] - step}]
    return [snap(space, p) for p in out]


def _best_valid(space: ParametricSpace, featurizer, acq: AcquisitionFunction, points: list[dict], taken: set):
    """The valid, not yet taken point with the highest acquisition value, as (value, point, features, key)."""
    best = None
    seen: set = set()
    for point in points:
        if space.violations(point):
            continue
        feats = featurizer.transform([point]).double()
        key = _keys(feats)[0]
        if key in taken or key in seen:
            continue
        seen.add(key)
        with torch.no_grad():
            value = float(acq(feats.unsqueeze(0)))
        if best is None or value > best[0]:
            best = (value, point, feats, key)
    return best


def optimize_continuous(
    space: ParametricSpace,
    featurizer,
    model,
    *,
    objectives: Sequence[Objective],
    constraints: Sequence[OutcomeConstraint] | None = None,
    properties: Sequence[str],
    q: int,
    X_observed: Tensor,
    Y_observed: Tensor,
    X_pending: Tensor | None = None,
    acquisition: str = "auto",
    seed: int = 0,
    feasibility_model: FeasibilityModel | None = None,
    num_restarts: int = 8,
    raw_samples: int = 256,
) -> list[Pick]:
    """Up to ``q`` new valid points of ``space`` by greedy sequential optimisation of the acquisition.

    ``featurizer`` (``transform(list[dict]) -> Tensor``, e.g. the surrogates' ``ParametricFeaturizer``; None
    for plain unit scaling) maps points to the model's features; ``X_observed`` / ``X_pending`` are features.
    Categorical parameters are not supported here (use a pool and :func:`select_batch`).
    """
    if any(isinstance(p, CategoricalParameter) for p in space.parameters):
        raise ValueError("continuous mode supports numeric parameters only; use select_batch over a pool for "
                         "spaces with categorical parameters")
    if q < 1:
        raise ValueError(f"q must be at least 1, got {q}")
    omap = ObjectiveMap.build(objectives, constraints, properties)
    name = resolve_acquisition(acquisition, omap)
    if name == "thompson":
        raise ValueError("thompson sampling is available in pool mode only (select_batch)")
    featurizer = featurizer or UnitScaler(space)
    A, b = affine_featurizer(space, featurizer)
    names = space.numeric_names
    bounds = torch.tensor([space.parameter(n).bounds for n in names], dtype=torch.double).T  # type: ignore[union-attr]
    ineq, eq = botorch_linear_constraints(space)
    pending = None if X_pending is None or len(X_pending) == 0 else X_pending.double()
    taken = set(_keys(X_observed))
    if pending is not None:
        taken |= set(_keys(pending))

    picks: list[Pick] = []
    for rank in range(q):
        base = build_acquisition(
            name, model, omap, X_observed=X_observed.double(), Y_observed=Y_observed.double(),
            X_pending=pending, seed=seed, mc_samples=128,
        )
        if feasibility_model is not None:
            base = FeasibilityWeighted(base, feasibility_model, log=is_log_acquisition(name))
        acq = AffineInput(base, A, b)
        torch.manual_seed(seed + rank)
        candidates, _ = optimize_acqf(
            acq, bounds=bounds, q=1, num_restarts=num_restarts, raw_samples=raw_samples,
            inequality_constraints=ineq, equality_constraints=eq, return_best_only=False,
        )
        snapped = [snap(space, {n: float(v) for n, v in zip(names, x.tolist(), strict=True)})
                   for x in candidates.reshape(-1, len(names))]
        best = _best_valid(space, featurizer, base, snapped + _grid_neighbours(space, snapped), taken)
        if best is None:  # the optimum sits on measured points: fall back to a space-filling set of candidates
            try:
                fallback = initial_design(space, 64, seed=seed + rank)
            except ValueError:
                fallback = []
            best = _best_valid(space, featurizer, base, fallback, taken)
        if best is None:
            break  # no valid untaken point could be found: the batch ends here (fewer picks)
        value, point, feats, key = best
        taken.add(key)
        pending = feats if pending is None else torch.cat([pending, feats])
        with torch.no_grad():
            post = model.posterior(feats)
            m, s = post.mean[0], post.variance[0].clamp_min(0).sqrt()
        picks.append(Pick(
            index=-1, point=point, acquisition_value=value, mean=as_dicts(properties, m),
            std=as_dicts(properties, s), rank=rank, reason=f"{name}: " + explain(omap, m, s, m[None], s[None]),
            features=feats[0].tolist(),
        ))
    return picks
