"""Turn a campaign's objectives and outcome constraints into BoTorch MC objectives and constraint callables.

Every selection path works on posterior samples ``Z`` of shape ``... x q x m`` whose last dimension follows
``properties`` (the model's output columns: objectives first, then constraint-only properties). Keeping that
translation in one place means the sample-table greedy, BoTorch's acquisition objects (hypervolume) and the
equivalence tests can never disagree about what "better" is.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass

import torch
from botorch.acquisition.multi_objective.objective import GenericMCMultiOutputObjective
from botorch.acquisition.objective import GenericMCObjective
from torch import Tensor

from agent.spec.objectives import Objective, OutcomeConstraint

#: Width of the soft edge of a target band, as a fraction of the tolerance. Small enough that the soft
#: indicator is nearly the true "inside the band" indicator, large enough that posterior samples near the edge
#: still rank smoothly.
BAND_EDGE = 0.05


def _column(properties: Sequence[str], prop: str, what: str) -> int:
    try:
        return list(properties).index(prop)
    except ValueError:
        raise ValueError(
            f"{what} names property {prop!r}, but the model's outputs (properties) are {list(properties)}"
        ) from None


def band_indicator(y: Tensor, target: float, tolerance: float) -> Tensor:
    """Soft indicator that ``y`` lies in ``[target - tolerance, target + tolerance]`` (values in (0, 1))."""
    edge = BAND_EDGE * tolerance
    return torch.sigmoid((tolerance - (y - target).abs()) / edge)


@dataclass(frozen=True)
class ObjectiveMap:
    """Where each objective and constraint lives in the model's outputs, and which way is better."""

    objectives: tuple[Objective, ...]
    constraints: tuple[OutcomeConstraint, ...]
    properties: tuple[str, ...]
    objective_columns: tuple[int, ...]
    constraint_columns: tuple[int, ...]

    @classmethod
    def build(
        cls,
        objectives: Sequence[Objective],
        constraints: Sequence[OutcomeConstraint] | None,
        properties: Sequence[str],
    ) -> ObjectiveMap:
        if not objectives:
            raise ValueError("selection needs at least one objective")
        constraints = tuple(constraints or ())
        return cls(
            objectives=tuple(objectives),
            constraints=constraints,
            properties=tuple(properties),
            objective_columns=tuple(_column(properties, o.property, "objective") for o in objectives),
            constraint_columns=tuple(_column(properties, c.property, "outcome constraint") for c in constraints),
        )

    @property
    def is_multi(self) -> bool:
        return len(self.objectives) > 1

    @property
    def has_target(self) -> bool:
        return any(o.goal == "target" for o in self.objectives)

    def utility(self, y: Tensor, k: int = 0) -> Tensor:
        """Objective ``k`` on a "bigger is better" scale (minimise -> -y, target -> -distance outside the band)."""
        o = self.objectives[k]
        if o.goal == "maximize":
            return y
        if o.goal == "minimize":
            return -y
        assert o.target is not None and o.tolerance is not None
        return -torch.clamp((y - o.target).abs() - o.tolerance, min=0.0)

    def scalar_objective(self) -> GenericMCObjective:
        """Single objective: the utility of its column (a target band gives the soft in-band indicator).

        For a target band the batch value used with :class:`~botorch.acquisition.qSimpleRegret` is
        ``E[max_j 1{y_j in band}]`` = the probability that at least one pick lands in the band.
        """
        o, col = self.objectives[0], self.objective_columns[0]
        if o.goal == "target":
            assert o.target is not None and o.tolerance is not None
            t, tol = o.target, o.tolerance
            return GenericMCObjective(lambda Z, X=None: band_indicator(Z[..., col], t, tol))
        sign = 1.0 if o.goal == "maximize" else -1.0
        return GenericMCObjective(lambda Z, X=None: sign * Z[..., col])

    def multi_objective(self) -> GenericMCMultiOutputObjective:
        """Several objectives, each on its "bigger is better" scale, for hypervolume acquisition."""
        cols = self.objective_columns

        def f(Z: Tensor, X: Tensor | None = None) -> Tensor:
            return torch.stack([self.utility(Z[..., c], k) for k, c in enumerate(cols)], dim=-1)

        return GenericMCMultiOutputObjective(f)

    def constraint_callables(self) -> list[Callable[[Tensor], Tensor]]:
        """BoTorch outcome constraints: each callable is <= 0 where the constraint holds."""
        out: list[Callable[[Tensor], Tensor]] = []
        for c, col in zip(self.constraints, self.constraint_columns, strict=True):
            bound = float(c.bound)
            if c.upper:
                out.append(lambda Z, col=col, bound=bound: Z[..., col] - bound)
            else:
                out.append(lambda Z, col=col, bound=bound: bound - Z[..., col])
        return out

    def reference_point(self, Y_observed: Tensor) -> Tensor:
        """Hypervolume reference point in utility space: ``Objective.reference`` where given, else inferred.

        Inferred as BoTorch's :func:`infer_reference_point` does (the nadir of the observed Pareto front minus
        10% of its range), which is Ax's default too.
        """
        from botorch.utils.multi_objective.hypervolume import infer_reference_point
        from botorch.utils.multi_objective.pareto import is_non_dominated

        utilities = torch.stack(
            [self.utility(Y_observed[:, c], k) for k, c in enumerate(self.objective_columns)], dim=-1
        )
        finite = utilities[torch.isfinite(utilities).all(dim=-1)]
        ref = torch.full((len(self.objectives),), float("nan"), dtype=Y_observed.dtype)
        for k, o in enumerate(self.objectives):
            if o.reference is not None:
                ref[k] = self.utility(torch.tensor(float(o.reference), dtype=Y_observed.dtype), k)
        if torch.isnan(ref).any():
            if len(finite) == 0:
                missing = [o.property for o, r in zip(self.objectives, ref, strict=True) if torch.isnan(r)]
                raise ValueError(
                    f"cannot infer a hypervolume reference point for {missing}: no observation has every objective "
                    "measured; give Objective.reference"
                )
            inferred = infer_reference_point(finite[is_non_dominated(finite)])
            ref = torch.where(torch.isnan(ref), inferred, ref)
        return ref
