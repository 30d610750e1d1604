"""What a campaign wants: objectives and outcome constraints."""

from __future__ import annotations

import math
import re
from typing import Annotated, Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator

STRICT = ConfigDict(extra="forbid")

#: Physical ranges of properties whose names we recognise; a target outside them
#: is refused at validation, before any experiment is spent on it.
PHYSICAL_RANGES: dict[str, tuple[float, float]] = {
    "band_gap": (0.0, 20.0),
    "hse_gap": (0.0, 20.0),
    "dir_gap": (0.0, 20.0),
    "ind_gap": (0.0, 20.0),
    "overpotential": (0.0, 5.0),
    "conductivity": (0.0, math.inf),
    "thermal_conductivity": (0.0, math.inf),
    "density": (0.0, 30.0),
    "yield": (0.0, 1.0),
    "volume_fraction": (0.0, 1.0),
    "energy_above_hull": (0.0, math.inf),
}


def physical_range(prop: str) -> tuple[float, float] | None:
    """The physical range of ``prop`` if we know it (by name or by a known suffix)."""
    if prop in PHYSICAL_RANGES:
        return PHYSICAL_RANGES[prop]
    for known, rng in PHYSICAL_RANGES.items():
        if prop.endswith("_" + known):
            return rng
    return None


class Objective(BaseModel):
    """Maximize, minimize, or land within ``target ± tolerance``."""

    model_config = STRICT
    # Annotated, not "= Field(...)": a class attribute named ``property`` would hide the builtin decorator below.
    property: Annotated[str, Field(description="the measured property this objective is about")]
    goal: Literal["maximize", "minimize", "target"] = Field(description="maximize, minimize, or bring to target")
    target: float | None = Field(default=None, description="for goal=target: the value wanted")
    tolerance: float | None = Field(default=None, gt=0, description="for goal=target: how close counts as on target")
    units: str | None = Field(
        default=None, description="the units the property is wanted in; a lab's value in compatible units is converted"
    )
    reference: float | None = Field(
        default=None, description="reference (worst acceptable) value for hypervolume with several objectives"
    )

    @model_validator(mode="after")
    def _target_consistent(self) -> Objective:
        if self.goal == "target":
            if self.target is None or self.tolerance is None:
                raise ValueError("a target objective needs both 'target' and 'tolerance'")
            rng = physical_range(self.property)
            if rng is not None and not (rng[0] <= self.target <= rng[1]):
                raise ValueError(
                    f"target {self.target} for {self.property!r} is outside its physical range "
                    f"[{rng[0]}, {rng[1]}]"
                )
        elif self.target is not None or self.tolerance is not None:
            raise ValueError(f"'target'/'tolerance' only apply to goal 'target', not {self.goal!r}")
        return self

    def satisfied_by(self, value: float) -> bool:
        """For target objectives: whether ``value`` lies in the band."""
        assert self.target is not None and self.tolerance is not None
        return abs(value - self.target) <= self.tolerance


_CONSTRAINT_RE = re.compile(r"^\s*([A-Za-z_][A-Za-z0-9_]*)\s*(<=|>=|<|>)\s*([-+0-9.eE]+)\s*$")


class OutcomeConstraint(BaseModel):
    """``property op bound`` on a measured outcome, e.g. ``heat_of_formation < 0``."""

    model_config = STRICT
    property: Annotated[str, Field(description="the measured property the bound is on")]
    op: Literal["<", "<=", ">", ">="] = Field(description="how the property compares with the bound")
    bound: float = Field(description="the bound, in the property's units")

    @classmethod
    def parse(cls, text: str) -> OutcomeConstraint:
        m = _CONSTRAINT_RE.match(text)
        if not m:
            raise ValueError(f"cannot read outcome constraint {text!r}; write it like 'heat_of_formation < 0'")
        return cls(property=m.group(1), op=m.group(2), bound=float(m.group(3)))  # type: ignore[arg-type]

    @property
    def upper(self) -> bool:
        return self.op in ("<", "<=")

    def satisfied_by(self, value: float) -> bool:
        return value < self.bound if self.op == "<" else value <= self.bound if self.op == "<=" else (
            value > self.bound if self.op == ">" else value >= self.bound
        )

    def __str__(self) -> str:
        return f"{self.property} {self.op} {self.bound:g}"
