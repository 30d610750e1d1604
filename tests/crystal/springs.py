"""A geometry-dependent force field (harmonic springs) that drives ASE's optimisers and the batched ones side by side.

Each step the same Cartesian forces and stress go into ASE (through a ``SinglePointCalculator``) and into the
batched optimiser's filter, after checking that both still hold the same geometry; used by the FIRE and BFGS
step-by-step comparisons.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np
import torch
from ase import Atoms
from ase.calculators.singlepoint import SinglePointCalculator
from ase.filters import FrechetCellFilter
from ase.stress import full_3x3_to_voigt_6_stress

from surrogates.mlip.fire import FireState, filter_forces

#: (atoms, relax the cell?) of the structures that share one batch: two cells of different sizes, one fixed cell
SIZES = ((5, True), (8, True), (3, False))


def springs(cell: np.ndarray, positions: np.ndarray, cell_ref: np.ndarray, pos_ref: np.ndarray):
    """Forces pulling atoms to their reference, and a stress pulling the cell to its reference (eV/Å, eV/Å³)."""
    forces = -2.0 * (positions - pos_ref)
    strain = np.linalg.solve(cell_ref, cell) - np.eye(3)
    stress = 0.5 * (strain + strain.T)
    return forces, stress


def spring_systems(rng: np.random.Generator, make_optimizer: Callable[[Any, FireState, bool], Any]) -> list[tuple]:
    """``(atoms, ASE target, ASE optimiser, batched state, cell_ref, pos_ref)`` for each of :data:`SIZES`, each
    displaced from its springs' reference; ``make_optimizer(target, state, relax_cell)`` builds ASE's optimiser."""
    systems = []
    for n, relax_cell in SIZES:
        cell_ref = 4.0 * np.eye(3) + 0.2 * rng.standard_normal((3, 3))
        pos_ref = rng.uniform(0, 4, (n, 3))
        cell = cell_ref @ (np.eye(3) + 0.04 * rng.standard_normal((3, 3)))
        pos = pos_ref + 0.15 * rng.standard_normal((n, 3))
        atoms = Atoms("H" * n, positions=pos, cell=cell, pbc=True)
        target = FrechetCellFilter(atoms) if relax_cell else atoms
        state = FireState.start(torch.tensor(cell), torch.tensor(pos), relax_cell)
        systems.append((atoms, target, make_optimizer(target, state, relax_cell), state, cell_ref, pos_ref))
    return systems


def spring_forces(systems: list[tuple]) -> tuple[list[FireState], Any, Any, Any]:
    """One evaluation of every system: the same geometry in ASE and the batched state (checked), the springs'
    forces and stress handed to both; returns the states and the batched filter's rows and max forces."""
    all_forces, all_stress = [], []
    for atoms, _target, _opt, state, cell_ref, pos_ref in systems:
        cell, pos = (t.numpy() for t in state.geometry())
        assert np.abs(cell - atoms.cell[:]).max() < 1e-9
        assert np.abs(pos - atoms.positions).max() < 1e-9
        forces, stress = springs(cell, pos, cell_ref, pos_ref)
        atoms.calc = SinglePointCalculator(atoms, energy=0.0, forces=forces, stress=full_3x3_to_voigt_6_stress(stress))
        all_forces.append(torch.tensor(forces))
        all_stress.append(torch.tensor(stress))
    states = [s[3] for s in systems]
    atom_rows, cell_rows, fmax = filter_forces(states, torch.cat(all_forces), torch.stack(all_stress))
    return states, atom_rows, cell_rows, fmax
