"""The batched BFGS over the Fréchet cell filter against ASE's own ``BFGS(FrechetCellFilter(atoms))``.

Step by step on a force field that depends on the geometry (harmonic springs, as ``test_mlip_fire``), from ASE's
starting Hessian and from the elastic one (given to ASE's BFGS as its ``H0``); then with real CHGNet, the default
optimiser's relaxed energies against ASE's BFGS reference relaxation at the same fmax, and its final forces as
ASE's filter sees them.
"""

from __future__ import annotations

import warnings

import numpy as np
import pytest
from ase.filters import FrechetCellFilter
from ase.optimize import BFGS
from pymatgen.core import Structure
from pymatgen.io.ase import AseAtomsAdaptor

from surrogates.mlip import BatchedCHGNetRelaxer, MLIPSettings
from surrogates.mlip.bfgs import bfgs_step, initial_hessian
from surrogates.mlip.relax import one_blas_thread
from tests.crystal.conftest import make_perovskite
from tests.crystal.springs import spring_forces, spring_systems


@pytest.mark.parametrize("elastic", [False, True], ids=["ase-hessian", "elastic-hessian"])
def test_batched_bfgs_follows_ases_bfgs_over_the_frechet_filter(elastic):
    with one_blas_thread():
        _compare_with_ase(elastic)


def _compare_with_ase(elastic: bool) -> None:
    rng = np.random.default_rng(1)

    def ase_bfgs(target, state, relax_cell):
        opt = BFGS(target, logfile=None)
        hessian = initial_hessian(state, elastic).numpy()
        # positions only: ASE's BFGS has no cell coordinates
        opt.H0 = hessian if relax_cell else hessian[: 3 * state.n, : 3 * state.n]
        return opt

    systems = spring_systems(rng, ase_bfgs)
    assert elastic == (systems[0][2].H0[-1, -1] < 10)  # the elastic cell block is ~V/n², far below ASE's 70
    for _ in range(12):
        states, atom_rows, cell_rows, _ = spring_forces(systems)
        for _, _, opt, *_rest in systems:
            opt.step()
        bfgs_step(states, atom_rows, cell_rows, elastic=elastic)
    assert all(s[3].x_cell.abs().max() > 0.01 for s in systems[:2])  # the cells did move
    assert systems[2][3].x_cell.abs().max() == 0  # positions only: the cell stays


def _chgnet_reference(structure: Structure, model, fmax: float) -> float:
    """ASE's BFGS over the Fréchet filter with CHGNet's calculator: energy per atom at fmax."""
    from chgnet.model.dynamics import CHGNetCalculator

    atoms = AseAtomsAdaptor.get_atoms(structure)
    atoms.calc = CHGNetCalculator(model=model, use_device="cpu")
    assert BFGS(FrechetCellFilter(atoms), logfile=None).run(fmax=fmax, steps=200)
    return float(atoms.get_potential_energy()) / len(atoms)


def test_default_optimizer_reaches_ases_bfgs_minima():
    """Within 1 meV/atom of ASE's BFGS relaxation at the same fmax, and converged by ASE's own filter forces."""
    assert MLIPSettings().optimizer == "bfgs-elastic"
    rng = np.random.default_rng(7)
    structures = []
    for a, b, lattice in (("Sr", "Ti", 3.95), ("Ba", "Zr", 4.3), ("K", "Nb", 4.1)):
        s = make_perovskite(a, b, "O", lattice)
        s = Structure(s.lattice.matrix @ (np.eye(3) + 0.03 * rng.standard_normal((3, 3))), s.species,
                      s.frac_coords)
        structures.append(Structure(s.lattice, s.species, s.cart_coords + 0.05 * rng.standard_normal((5, 3)),
                                    coords_are_cartesian=True))
    relaxer = BatchedCHGNetRelaxer(fmax=0.05, steps=200)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        results = relaxer.relax_many(structures)
        from chgnet.model.dynamics import CHGNetCalculator

        for s, r in zip(structures, results, strict=True):
            assert r.ok and r.converged
            assert r.energy_per_atom == pytest.approx(_chgnet_reference(s, relaxer.model, 0.05), abs=1e-3)
            atoms = AseAtomsAdaptor.get_atoms(r.structure)
            atoms.calc = CHGNetCalculator(model=relaxer.model, use_device="cpu")
            assert np.linalg.norm(FrechetCellFilter(atoms).get_forces(), axis=1).max() < 0.05 * 1.1
            assert float(atoms.get_potential_energy()) / len(atoms) == pytest.approx(r.energy_per_atom, abs=1e-4)
