"""The batched FIRE over the Fréchet cell filter against ASE's own ``FIRE(FrechetCellFilter(atoms))``, step by step.

A force field that depends on the geometry (harmonic springs to a reference cell and reference positions) drives
both: each step the same Cartesian forces and stress go into ASE (through a ``SinglePointCalculator``) and into
the batched optimiser, and the geometries must stay the same; two structures of different sizes share one batch.
"""

from __future__ import annotations

import numpy as np
from ase.optimize import FIRE

from surrogates.mlip.fire import fire_step
from surrogates.mlip.relax import one_blas_thread
from tests.crystal.springs import spring_forces, spring_systems


def test_batched_fire_follows_ases_fire_over_the_frechet_filter():
    with one_blas_thread():  # ASE's filter: scipy's 3x3 logm on a many-threaded BLAS is slow on a busy box
        _compare_with_ase()


def _compare_with_ase() -> None:
    rng = np.random.default_rng(0)
    systems = spring_systems(rng, lambda target, _state, _relax_cell: FIRE(target, logfile=None))
    reversals = 0
    for _ in range(25):
        states, atom_rows, cell_rows, fmax = spring_forces(systems)
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
