"""Design spaces: what a campaign may make (a shared type: generators and surrogates read it too).

Four kinds, chosen by ``type``: a parametric space (continuous, integer and
categorical parameters, simplex groups, linear inequality constraints), a
composition space over allowed elements, a crystal space (prototypes and
substitutions; its generator lives in ``generators``) and a microstructure space
(two-phase images, for the latent-space inverse generator).
"""

from __future__ import annotations

import math
from collections import Counter
from typing import Annotated, Literal

import numpy as np
from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

STRICT = ConfigDict(extra="forbid")


class ContinuousParameter(BaseModel):
    """A real-valued parameter in ``[low, high]``, optionally on a grid of ``step``."""

    model_config = STRICT
    name: str = Field(description="the parameter's name, as the lab and the results call it")
    type: Literal["continuous"] = Field(default="continuous", description="a real number in bounds")
    bounds: tuple[float, float] = Field(description="lowest and highest value")
    step: float | None = Field(default=None, gt=0, description="grid spacing, if the lab can only make a grid")
    units: str | None = Field(default=None, description="units of the value, shown in tables")

    @field_validator("bounds")
    @classmethod
    def _ordered(cls, v: tuple[float, float]) -> tuple[float, float]:
        low, high = v
        if not (math.isfinite(low) and math.isfinite(high)):
            raise ValueError("bounds must be finite numbers")
        if low >= high:
            raise ValueError(f"lower bound {low} is not below upper bound {high}")
        return v


class IntegerParameter(BaseModel):
    """An integer parameter in ``[low, high]`` inclusive."""

    model_config = STRICT
    name: str = Field(description="the parameter's name, as the lab and the results call it")
    type: Literal["integer"] = Field(description="a whole number in bounds")
    bounds: tuple[int, int] = Field(description="lowest and highest value")
    units: str | None = Field(default=None, description="units of the value, shown in tables")

    @field_validator("bounds")
    @classmethod
    def _ordered(cls, v: tuple[int, int]) -> tuple[int, int]:
        if v[0] >= v[1]:
            raise ValueError(f"lower bound {v[0]} is not below upper bound {v[1]}")
        return v


class CategoricalParameter(BaseModel):
    """A choice among named options, optionally described by numeric descriptors.

    With descriptors (``{option: {descriptor: value}}``) a surrogate can
    generalise between options instead of treating them as unrelated one-hot bits.
    """

    model_config = STRICT
    name: str = Field(description="the parameter's name, as the lab and the results call it")
    type: Literal["categorical"] = Field(description="one of a list of options")
    options: list[str] = Field(description="the choices")
    descriptors: dict[str, dict[str, float]] | None = Field(
        default=None,
        description="optional numbers describing each option (option -> name -> value), used as model features",
    )

    @field_validator("options")
    @classmethod
    def _non_empty_unique(cls, v: list[str]) -> list[str]:
        if not v:
            raise ValueError("a categorical parameter needs at least one option")
        dupes = sorted(o for o, n in Counter(v).items() if n > 1)  # not v.count per option: 10k options take 2 s
        if dupes:
            raise ValueError(f"options are repeated: {dupes}")
        return v

    @model_validator(mode="after")
    def _descriptors_cover_options(self) -> CategoricalParameter:
        if self.descriptors is not None:
            missing = [o for o in self.options if o not in self.descriptors]
            if missing:
                raise ValueError(f"descriptors missing for options {missing}")
            names = {tuple(sorted(d)) for d in self.descriptors.values()}
            if len(names) > 1:
                raise ValueError("every option must have the same descriptor names")
        return self


Parameter = Annotated[
    ContinuousParameter | IntegerParameter | CategoricalParameter, Field(discriminator="type")
]


class SimplexGroup(BaseModel):
    """Fractions that must sum to ``total`` (e.g. a six-metal composition), optionally on a grid."""

    model_config = STRICT
    parameters: list[str] = Field(min_length=2, description="the fractions that sum to total")
    total: float = Field(default=1.0, gt=0, description="what the fractions sum to")
    step: float | None = Field(default=None, gt=0, description="grid step of each fraction; must divide total")
    absence_matters: bool = Field(
        default=True,
        description="on a grid, whether a component at 0 differs in kind from a little of it (an element in a "
                    "catalyst: true, the default) or is just the smallest amount (a blend of solvents: false); "
                    "when true the model also learns from which components are present",
    )

    @model_validator(mode="after")
    def _grid_fits(self) -> SimplexGroup:
        if self.step is not None:
            ratio = self.total / self.step
            if abs(ratio - round(ratio)) > 1e-9:
                raise ValueError(f"step {self.step} does not divide total {self.total}")
        return self


class LinearConstraint(BaseModel):
    """``sum(coefficients[p] * p) <op> rhs`` over continuous/integer parameters."""

    model_config = STRICT
    coefficients: dict[str, float] = Field(min_length=1, description="parameter -> coefficient of the linear form")
    op: Literal["<=", ">="] = Field(default="<=", description="the form must be <= or >= rhs")
    rhs: float = Field(description="the right-hand side")


class ParametricSpace(BaseModel):
    """A box of named parameters, with simplex groups and linear constraints."""

    model_config = STRICT
    type: Literal["parametric"] = Field(default="parametric", description="named parameters in a box")
    parameters: list[Parameter] = Field(min_length=1, description="the parameters")
    simplex: list[SimplexGroup] = Field(
        default_factory=list, description="groups of fractions that sum to a total (compositions)"
    )
    linear_constraints: list[LinearConstraint] = Field(
        default_factory=list, description="linear inequalities every candidate must meet"
    )

    @property
    def names(self) -> list[str]:
        return [p.name for p in self.parameters]

    def parameter(self, name: str) -> ContinuousParameter | IntegerParameter | CategoricalParameter:
        for p in self.parameters:
            if p.name == name:
                return p
        raise KeyError(name)

    @property
    def numeric_names(self) -> list[str]:
        return [p.name for p in self.parameters if p.type != "categorical"]

    @model_validator(mode="after")
    def _consistent(self) -> ParametricSpace:
        names = self.names
        dupes = sorted({n for n in names if names.count(n) > 1})
        if dupes:
            raise ValueError(f"parameter names are repeated: {dupes}")
        numeric = set(self.numeric_names)
        for i, group in enumerate(self.simplex):
            bad = [p for p in group.parameters if p not in numeric]
            if bad:
                raise ValueError(f"simplex[{i}] names unknown or non-numeric parameters {bad}")
        for i, con in enumerate(self.linear_constraints):
            bad = [p for p in con.coefficients if p not in numeric]
            if bad:
                raise ValueError(f"linear_constraints[{i}] names unknown or non-numeric parameters {bad}")
        if (self.simplex or self.linear_constraints) and not self.is_feasible():
            raise ValueError(
                "no point satisfies the bounds, simplex groups and linear constraints together "
                "(the feasible set is empty)"
            )
        return self

    def constraint_matrices(self) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray, list[tuple[float, float]]]:
        """``A_ub x <= b_ub``, ``A_eq x == b_eq`` and bounds over the numeric parameters."""
        names = self.numeric_names
        index = {n: i for i, n in enumerate(names)}
        a_ub, b_ub, a_eq, b_eq = [], [], [], []
        for con in self.linear_constraints:
            row = np.zeros(len(names))
            for p, c in con.coefficients.items():
                row[index[p]] = c
            sign = 1.0 if con.op == "<=" else -1.0
            a_ub.append(sign * row)
            b_ub.append(sign * con.rhs)
        for group in self.simplex:
            row = np.zeros(len(names))
            for p in group.parameters:
                row[index[p]] = 1.0
            a_eq.append(row)
            b_eq.append(group.total)
        bounds = [tuple(map(float, self.parameter(n).bounds)) for n in names]  # type: ignore[union-attr]
        shape = (0, len(names))
        return (
            np.array(a_ub).reshape(-1, len(names)) if a_ub else np.zeros(shape),
            np.array(b_ub),
            np.array(a_eq).reshape(-1, len(names)) if a_eq else np.zeros(shape),
            np.array(b_eq),
            bounds,  # type: ignore[return-value]
        )

    def is_feasible(self) -> bool:
        """Whether bounds, simplex groups and linear constraints admit any point (an LP)."""
        from scipy.optimize import linprog

        a_ub, b_ub, a_eq, b_eq, bounds = self.constraint_matrices()
        n = len(bounds)
        res = linprog(
            np.zeros(n),
            A_ub=a_ub if len(b_ub) else None,
            b_ub=b_ub if len(b_ub) else None,
            A_eq=a_eq if len(b_eq) else None,
            b_eq=b_eq if len(b_eq) else None,
            bounds=bounds,
            method="highs",
        )
        return bool(res.status == 0)

    def violations(self, point: dict[str, object], tol: float = 1e-6) -> list[str]:
        """What is wrong with ``point`` in this space (empty when it is valid)."""
        problems: list[str] = []
        missing = [n for n in self.names if n not in point]
        extra = [n for n in point if n not in self.names]
        if missing:
            problems.append(f"missing parameters {missing}")
        if extra:
            problems.append(f"unknown parameters {extra}")
        if problems:
            return problems
        for p in self.parameters:
            v = point[p.name]
            if isinstance(p, CategoricalParameter):
                if v not in p.options:
                    problems.append(f"{p.name}={v!r} is not one of {p.options}")
                continue
            if not isinstance(v, (int, float)) or isinstance(v, bool) or not math.isfinite(float(v)):
                problems.append(f"{p.name}={v!r} is not a finite number")
                continue
            low, high = p.bounds
            if not (low - tol <= float(v) <= high + tol):
                problems.append(f"{p.name}={v} is outside [{low}, {high}]")
            if isinstance(p, IntegerParameter) and float(v) != int(v):
                problems.append(f"{p.name}={v} is not an integer")
        if problems:
            return problems
        for i, group in enumerate(self.simplex):
            total = sum(float(point[n]) for n in group.parameters)  # type: ignore[arg-type]
            if abs(total - group.total) > max(tol, 1e-6 * group.total):
                problems.append(f"simplex[{i}] sums to {total:.6g}, not {group.total}")
        for i, con in enumerate(self.linear_constraints):
            lhs = sum(c * float(point[p]) for p, c in con.coefficients.items())  # type: ignore[arg-type]
            ok = lhs <= con.rhs + tol if con.op == "<=" else lhs >= con.rhs - tol
            if not ok:
                problems.append(f"linear_constraints[{i}]: {lhs:.6g} {con.op} {con.rhs} fails")
        return problems


class CompositionSpace(BaseModel):
    """Compositions over allowed elements: fractions summing to 1, at most ``max_elements`` present."""

    model_config = STRICT
    type: Literal["composition"] = Field(description="compositions over a set of elements")
    elements: list[str] = Field(min_length=2, description="the elements that may appear")
    max_elements: int | None = Field(default=None, ge=1, description="at most this many elements per composition")
    step: float | None = Field(default=None, gt=0, le=0.5, description="grid step of the fractions")

    @field_validator("elements")
    @classmethod
    def _known_elements(cls, v: list[str]) -> list[str]:
        from pymatgen.core.periodic_table import Element

        unknown = [e for e in v if not Element.is_valid_symbol(e)]
        if unknown:
            raise ValueError(f"unknown element symbols {unknown}")
        return v


class CrystalSpace(BaseModel):
    """Crystal structures from prototypes and substitutions (the crystal generator fills this in).

    Prototypes are named (``perovskite``, ``rocksalt``, ``zincblende``, ``wurtzite``,
    ``spinel``, ``cesium_chloride``) or given as CIF files.
    """

    model_config = STRICT
    type: Literal["crystal"] = Field(description="crystal structures from prototypes with substituted sites")
    elements: list[str] = Field(default_factory=list, description="allowed elements")
    chemical_systems: list[str] = Field(default_factory=list, description="e.g. 'Ba-Ti-O'")
    prototypes: list[str] = Field(default_factory=list, description="named prototypes")
    seed_cifs: list[str] = Field(default_factory=list, description="paths to CIF files")
    sites: dict[str, list[str]] = Field(
        default_factory=dict, description="prototype site label -> allowed elements (e.g. A: [Ba, Sr])"
    )
    site_sets: dict[str, list[str]] = Field(
        default_factory=dict,
        description="sublattice label -> allowed compositions of the whole sublattice (e.g. X: [O3, O2N, ON2])",
    )
    max_atoms: int = Field(default=20, ge=1, le=500, description="at most this many atoms per cell")
    oxidation_states: dict[str, list[int]] | None = Field(
        default=None, description="element -> allowed oxidation states (default: pymatgen's common ones)"
    )
    charge_balance: bool = Field(default=True, description="keep only charge-balanced compositions")

    @field_validator("elements")
    @classmethod
    def _known_elements(cls, v: list[str]) -> list[str]:
        from pymatgen.core.periodic_table import Element

        unknown = [e for e in v if not Element.is_valid_symbol(e)]
        if unknown:
            raise ValueError(f"unknown element symbols {unknown}")
        return v

    @field_validator("sites")
    @classmethod
    def _known_site_elements(cls, v: dict[str, list[str]]) -> dict[str, list[str]]:
        from pymatgen.core.periodic_table import Element

        for label, elements in v.items():
            if not elements:
                raise ValueError(f"sites[{label!r}] is empty; list the elements allowed on it")
            unknown = [e for e in elements if not Element.is_valid_symbol(e)]
            if unknown:
                raise ValueError(f"sites[{label!r}] names unknown element symbols {unknown}")
        return v

    @field_validator("site_sets")
    @classmethod
    def _readable_site_sets(cls, v: dict[str, list[str]]) -> dict[str, list[str]]:
        """Each entry is a formula with whole atom counts; whether it divides the sublattice is the generator's check.

        (The sublattice sizes belong to the prototypes in ``generators``, which this shared type may not import.)
        """
        for label, formulas in v.items():
            if not formulas:
                raise ValueError(f"site_sets[{label!r}] is empty; list the compositions allowed on it")
            repeated = sorted({f for f in formulas if formulas.count(f) > 1})
            if repeated:
                raise ValueError(f"site_sets[{label!r}] repeats {repeated}")
            for text in formulas:
                counts = _formula_counts(text)
                if isinstance(counts, str):
                    raise ValueError(f"site_sets[{label!r}] entry {text!r}: {counts}")
        return v

    @model_validator(mode="after")
    def _something_to_build(self) -> CrystalSpace:
        if not (self.prototypes or self.seed_cifs):
            raise ValueError("a crystal space needs prototypes or seed_cifs")
        for label, formulas in self.site_sets.items():
            allowed = self.sites.get(label)
            if allowed is None:
                continue
            outside = sorted({e for f in formulas for e in _formula_counts(f) if e not in allowed})  # type: ignore[union-attr]
            if outside:
                raise ValueError(f"site_sets[{label!r}] uses {outside}, which sites[{label!r}] does not allow")
        return self


def _formula_counts(text: str) -> dict[str, float] | str:
    """Element -> count of a formula such as ``O2N``, or a sentence saying why it is not one."""
    from pymatgen.core import Composition
    from pymatgen.core.periodic_table import Element

    try:
        counts = Composition(text).get_el_amt_dict()
    except Exception:  # noqa: BLE001 - pymatgen raises several kinds for unreadable formulas
        return "not a readable formula"
    if not counts:
        return "not a readable formula"
    unknown = [e for e in counts if not Element.is_valid_symbol(e)]
    if unknown:
        return f"unknown element symbols {unknown}"
    fractional = [e for e, n in counts.items() if abs(n - round(n)) > 1e-9 or n <= 0]
    if fractional:
        return f"atom counts of {fractional} are not whole numbers"
    return counts


class MicrostructureSpace(BaseModel):
    """Square two-phase images (0/1 pixels) of ``size`` pixels a side.

    ``volume_fraction`` and ``length_scale`` bound the thresholded Gaussian-random-field
    images the initial design and cold-start pools draw (the inverse generators then
    propose images of any morphology); they do not constrain proposed images.
    """

    model_config = STRICT
    type: Literal["microstructure"] = Field(description="two-phase microstructures")
    size: int = Field(default=64, ge=8, le=256, description="pixels per side")
    volume_fraction: tuple[float, float] = Field(
        default=(0.1, 0.9), description="lowest and highest volume fraction of the second phase"
    )
    length_scale: tuple[float, float] = Field(default=(2.0, 8.0), description="feature size range of the pool, px")

    @field_validator("volume_fraction")
    @classmethod
    def _fraction_range(cls, v: tuple[float, float]) -> tuple[float, float]:
        if not 0.0 < v[0] < v[1] < 1.0:
            raise ValueError(f"volume_fraction {list(v)} must satisfy 0 < low < high < 1")
        return v

    @field_validator("length_scale")
    @classmethod
    def _scale_range(cls, v: tuple[float, float]) -> tuple[float, float]:
        if not 0.0 < v[0] <= v[1]:
            raise ValueError(f"length_scale {list(v)} must satisfy 0 < low <= high")
        return v


DesignSpace = Annotated[
    ParametricSpace | CompositionSpace | CrystalSpace | MicrostructureSpace, Field(discriminator="type")
]
