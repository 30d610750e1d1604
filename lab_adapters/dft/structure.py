"""Structures for job files: pymatgen dicts in, plain cell/positions/symbols out, and k-point grids.

Job scripts run with whatever Python the cluster has (for GPAW, Debian's, with
ASE but no pymatgen), so structures travel as plain JSON that ASE reads directly.
"""

from __future__ import annotations

import math
from typing import Any

from pymatgen.core import Lattice, Structure


def structure_from_dict(data: dict[str, Any] | None, where: str = "candidate.structure") -> Structure:
    """A pymatgen ``Structure`` from its ``as_dict()``, with an error that says where it was wrong.

    Every adapter that computes a crystal (the DFT queue, the in-process MLIP instrument) reads it here.
    """
    if not data:
        raise ValueError(f"{where} is empty: the job needs a crystal structure (pymatgen Structure.as_dict())")
    try:
        structure = Structure.from_dict(data)
    except Exception as exc:  # pymatgen raises many types for malformed dicts
        raise ValueError(f"{where} is not a pymatgen Structure dict: {exc}") from exc
    if not structure.is_ordered:
        raise ValueError(f"{where} is disordered ({structure.composition}); the job needs an ordered structure")
    if len(structure) == 0:
        raise ValueError(f"{where} has no sites")
    return structure


def plain_atoms(structure: Structure) -> dict[str, Any]:
    """Symbols, cell (Å), Cartesian positions (Å) and periodicity, as ASE's ``Atoms`` takes them."""
    return {
        "symbols": [site.specie.symbol for site in structure],
        "cell": structure.lattice.matrix.tolist(),
        "positions": structure.cart_coords.tolist(),
        "pbc": [True, True, True],
    }


def kpoint_grid(lattice: Lattice | list[list[float]], density: float) -> list[int]:
    """Γ-centred grid with ``n_i = max(1, ceil(2π |b_i| · density))`` (ASE's ``kptdensity`` convention).

    ``b_i`` are the reciprocal vectors without the 2π, so ``density`` is k-points per Å⁻¹.
    The GPAW job script repeats this formula for elemental references; keep them equal.
    """
    lat = lattice if isinstance(lattice, Lattice) else Lattice(lattice)
    recip = lat.reciprocal_lattice_crystallographic.abc
    return [max(1, math.ceil(2 * math.pi * b * density - 1e-9)) for b in recip]
