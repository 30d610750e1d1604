"""Is a generated structure physically sensible?  Charge, distances, density, size, elements.

Each check returns human-readable problems rather than a bare boolean, so a
rejected candidate can be stored with the reason (a failed proposal is data too).
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

import numpy as np
from pymatgen.analysis.molecule_structure_comparator import CovalentRadius
from pymatgen.core import Structure

from generators.crystal.chemistry import OxidationRules

_COVALENT = CovalentRadius.radius


@dataclass(frozen=True)
class ValidityRules:
    """Thresholds of the validity checks (campaign settings may override them).

    ``min_distance_factor``: two atoms closer than this fraction of the sum of their
    covalent radii overlap (real ionic bonds sit near 0.85-1.1 of it).
    ``density_range``: g/cm^3; outside it a rescaled cell has collapsed or exploded.
    """

    charge_balance: bool = True
    min_distance_factor: float = 0.6
    density_range: tuple[float, float] = (0.5, 25.0)
    max_atoms: int | None = None
    allowed_elements: frozenset[str] | None = None


def _element(site_specie: object) -> str:
    return getattr(site_specie, "element", site_specie).symbol  # type: ignore[union-attr]


def distance_problems(structure: Structure, factor: float) -> list[str]:
    """Pairs of atoms (periodic images included) closer than ``factor`` x sum of covalent radii."""
    symbols = [_element(site.specie) for site in structure]
    radii = np.array([_COVALENT.get(s, 1.5) for s in symbols])
    limits = factor * (radii[:, None] + radii[None, :])
    dist = structure.distance_matrix.copy()
    np.fill_diagonal(dist, np.inf)
    shortest_translation = min(structure.lattice.get_lll_reduced_lattice().abc)
    np.fill_diagonal(dist, shortest_translation)  # an atom and its own periodic image
    problems = []
    for i, j in zip(*np.nonzero(dist < limits), strict=True):
        if i <= j:
            problems.append(
                f"sites {i} ({symbols[i]}) and {j} ({symbols[j]}) are {dist[i, j]:.2f} Å apart, "
                f"below {limits[i, j]:.2f} Å ({factor:g} x covalent radii)"
            )
    return problems


def check_structure(structure: Structure, rules: ValidityRules, oxidation: OxidationRules) -> list[str]:
    """Everything wrong with ``structure`` under ``rules``; empty means valid."""
    problems: list[str] = []
    composition = structure.composition.element_composition
    if rules.max_atoms is not None and len(structure) > rules.max_atoms:
        problems.append(f"{len(structure)} atoms exceed max_atoms {rules.max_atoms}")
    if rules.allowed_elements is not None:
        foreign = sorted({el.symbol for el in composition} - rules.allowed_elements)
        if foreign:
            problems.append(f"elements {foreign} are not allowed in this space")
    if rules.charge_balance and oxidation.balance(composition.get_el_amt_dict()) is None:
        problems.append(f"{composition.reduced_formula} cannot be charge-balanced with the allowed oxidation states")
    density = float(structure.density)
    low, high = rules.density_range
    if not (low <= density <= high):
        problems.append(f"density {density:.2f} g/cm3 is outside [{low}, {high}]")
    problems.extend(distance_problems(structure, rules.min_distance_factor))
    return problems


def partition_valid(
    structures: Iterable[Structure], rules: ValidityRules, oxidation: OxidationRules
) -> tuple[list[int], dict[int, list[str]]]:
    """Indices of valid structures, and the problems of each invalid one (nothing is silently dropped)."""
    valid: list[int] = []
    invalid: dict[int, list[str]] = {}
    for i, s in enumerate(structures):
        problems = check_structure(s, rules, oxidation)
        if problems:
            invalid[i] = problems
        else:
            valid.append(i)
    return valid, invalid
