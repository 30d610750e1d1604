"""The batched FIRE over the Fréchet cell filter against ASE's own ``FIRE(FrechetCellFilter(atoms))``, step by step.

A force field that depends on the geometry (harmonic springs to a reference cell and reference positions) drives
both: each step the same Cartesian forces and stress go into ASE (through a ``SinglePointCalculator``) and into
the batched optimiser, and the geometries must stay the same; two structures of different sizes share one batch.
"""

from __future__ import annotations

import numpy as np
import torch
from ase import Atoms
from ase.calculators.singlepoint import SinglePointCalculator
from ase.filters import FrechetCellFilter
from ase.optimize import FIRE
from ase.stress import full_3x3_to_voigt_6_stress

from surrogates.mlip.fire import FireState, filter_forces, fire_step
from surrogates.mlip.relax import one_blas_thread


def springs(cell: np.ndarray, positions: np.ndarray, cell_ref: np.ndarray, pos_ref: np.ndarray):
    """Forces pulling atoms to their reference, and a stress pulling the cell to its reference (eV/Å, eV/Å³)."""
    forces = -2.0 * (positions - pos_ref)
    strain = np.linalg.solve(cell_ref, cell) - np.eye(3)
    stress = 0.5 * (strain + strain.T)
    return forces, stress


def test_batched_fire_follows_ases_fire_over_the_frechet_filter():
    with one_blas_thread():  # ASE's filter: scipy's 3x3 logm on a many-threaded BLAS is slow on a busy box
        _compare_with_ase()


def _compare_with_ase() -> None:
    rng = np.random.default_rng(0)
    systems = []
    for n, relax_cell in ((5, True), (8, True), (3, False)):
        cell_ref = 4.0 * np.eye(3) + 0.2 * rng.standard_normal((3, 3))
        pos_ref = rng.uniform(0, 4, (n, 3))
        cell = cell_ref @ (np.eye(3) + 0.04 * rng.standard_normal((3, 3)))
        pos = pos_ref + 0.15 * rng.standard_normal((n, 3))
        atoms = Atoms("H" * n, positions=pos, cell=cell, pbc=True)
        target = FrechetCellFilter(atoms) if relax_cell else atoms
        state = FireState.start(torch.tensor(cell), torch.tensor(pos), relax_cell)
        systems.append((atoms, target, FIRE(target, logfile=None), state, cell_ref, pos_ref))
    reversals = 0
    for _ in range(25):
        all_forces, all_stress = [], []
        for atoms, _target, _opt, state, cell_ref, pos_ref in systems:
            cell, pos = (t.numpy() for t in state.geometry())
            assert np.abs(cell - atoms.cell[:]).max() < 1e-9
            assert np.abs(pos - atoms.positions).max() < 1e-9
            forces, stress = springs(cell, pos, cell_ref, pos_ref)
            atoms.calc = SinglePointCalculator(atoms, energy=0.0, forces=forces,
                                               stress=full_3x3_to_voigt_6_stress(stress))
            all_forces.append(torch.tensor(forces))
            all_stress.append(torch.tensor(stress))
        states = [s[3] for s in systems]
        atom_rows, cell_rows, fmax = filter_forces(states, torch.cat(all_forces), torch.stack(all_stress))
        for i, (_, target, opt, *_rest) in enumerate(systems):
            ase_forces = target.get_forces()
            assert abs(fmax[i].item() - np.sqrt((ase_forces**2).sum(axis=1)).max()) < 1e-9
            before = opt.dt
            opt.step()
            reversals += opt.dt < before
        fire_step(states, atom_rows, cell_rows)
        for _, _, opt, state, *_rest in systems:
            assert abs(state.dt - opt.dt) < 1e-12 and abs(state.a - opt.a) < 1e-12
    assert reversals > 0  # the comparison went through FIRE's uphill resets, not only its acceleration
    assert all(s[3].x_cell.abs().max() > 0.01 for s in systems[:2])  # the cells did move
    assert systems[2][3].x_cell.abs().max() == 0  # positions only: the cell stays
