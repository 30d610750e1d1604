"""Batched CHGNet relaxation against CHGNet's own one-structure relaxation (real CHGNet, no stand-ins)."""

from __future__ import annotations

import numpy as np
import pytest
from pymatgen.core import Lattice, Structure

from surrogates.mlip import BatchedCHGNetRelaxer, CHGNetRelaxer, MLIPScreen, MLIPSettings, relax_all
from surrogates.mlip.batched import OPTIMIZERS, calls, energies_forces_stresses
from tests.crystal.conftest import make_perovskite

#: eV/atom: both follow ASE's FIRE over a FrechetCellFilter on the same potential; the batched forces differ from
#: CHGNet's calculator by float32 rounding only (one backward pass instead of two), so the relaxed energies agree
#: far inside this
ENERGY_TOLERANCE = 2e-3


def rattled(structure: Structure, scale: float, seed: int) -> Structure:
    rng = np.random.default_rng(seed)
    coords = structure.cart_coords + scale * rng.standard_normal((len(structure), 3))
    return Structure(structure.lattice, structure.species, coords, coords_are_cartesian=True)


#: eV/atom: BFGS and FIRE both stop at fmax 0.1 eV/Å, a little apart on the same flat minimum (measured on 16
#: strained and rattled ABO3 cells: at most 5.6 meV/atom, mean 0.7; benchmarks/RESULTS-mlip.md)
BFGS_TOLERANCE = 6e-3


@pytest.fixture(scope="module")
def batched() -> BatchedCHGNetRelaxer:
    """FIRE: the same optimiser and filter as CHGNet's StructOptimizer, so the paths match step for step."""
    return BatchedCHGNetRelaxer(fmax=0.1, steps=80, optimizer="fire")


def _test_structures() -> list[Structure]:
    rocksalt = Structure(Lattice.cubic(5.9), ["Na"] * 4 + ["Cl"] * 4,
                         [[0, 0, 0], [0.5, 0.5, 0], [0.5, 0, 0.5], [0, 0.5, 0.5],
                          [0.5, 0.5, 0.5], [0, 0, 0.5], [0, 0.5, 0], [0.5, 0, 0]]).get_primitive_structure()
    return [rocksalt, rattled(make_perovskite("Sr", "Ti", "O", 3.95), 0.05, 3)]


def test_one_backward_pass_gives_chgnets_own_forces_and_stress(batched):
    structures = [rattled(make_perovskite("Sr", "Ti", "O", 3.95), 0.05, 1), rattled(make_perovskite("Ba", "Zr"), 0.05, 2)]
    model = batched.model
    reference = model.predict_graph([model.graph_converter(s) for s in structures], task="efs", batch_size=2)
    mine = energies_forces_stresses(model, [model.graph_converter(s) for s in structures])
    for ref, (e, forces, stress) in zip(reference, mine, strict=True):
        assert e == pytest.approx(float(ref["e"]), abs=1e-6)
        assert np.abs(forces - ref["f"]).max() < 1e-3
        assert np.abs(stress - ref["s"] / 160.21766208).max() < 1e-5  # GPa -> eV/Å³
        assert np.abs(ref["f"]).max() > 0.05  # rattled: the comparison is not between zeros


def test_calls_cover_the_batch_in_order_within_the_limit():
    angles = [500, 2700, 2700, 40000, 10, 10, 16370]
    groups = calls(angles, 16384)
    assert [(g.start, g.stop) for g in groups] == [(0, 3), (3, 4), (4, 6), (6, 7)]  # a graph over the limit alone
    assert calls(angles, None) == [slice(0, 7)] and calls([], 100) == [slice(0, 0)]


def test_a_batch_split_into_several_model_calls_gives_the_same_numbers(batched):
    """The CPU's calls of bounded size (CPU_ANGLES_PER_CALL) change no bit of any structure's result."""
    structures = [rattled(make_perovskite("Sr", "Ti", "O", 3.95), 0.05, 1), rattled(make_perovskite("Ba", "Zr"), 0.05, 2),
                  *_test_structures()]
    model = batched.model
    graphs = [model.graph_converter(s) for s in structures]
    angles = [len(g.bond_graph) for g in graphs]
    limit = angles[0] + angles[1]
    assert len(calls(angles, limit)) in range(2, len(graphs))  # several calls, one of them of two graphs
    whole = energies_forces_stresses(model, graphs)
    split = energies_forces_stresses(model, graphs, max_angles=limit)
    for (e, f, s), (e2, f2, s2) in zip(whole, split, strict=True):
        assert e == e2 and np.array_equal(f, f2) and np.array_equal(s, s2)
    assert len({e for e, _, _ in split}) == len(graphs)  # four different structures, not one repeated


@pytest.mark.slow
def test_batched_relaxation_matches_one_at_a_time(batched):
    structures = _test_structures()
    serial = CHGNetRelaxer(fmax=0.1, steps=80)
    one_by_one = [serial.relax(s) for s in structures]
    together = batched.relax_many(structures)
    for a, b in zip(one_by_one, together, strict=True):
        assert a.ok and b.ok and b.converged
        assert b.energy_per_atom == pytest.approx(a.energy_per_atom, abs=ENERGY_TOLERANCE)
        assert b.structure.volume == pytest.approx(a.structure.volume, rel=1e-2)
        assert b.steps > 0
    assert batched.name == serial.name  # one potential: they share the elemental-reference cache


@pytest.mark.slow
def test_bfgs_reaches_fires_minima_in_fewer_steps(batched):
    """The default optimiser: the same fmax and, within the tolerance, the same minima as FIRE, in fewer steps."""
    structures = _test_structures() + [rattled(make_perovskite("Ba", "Zr", "O", 4.3), 0.08, 4)]
    fire = batched.relax_many(structures)
    bfgs = BatchedCHGNetRelaxer(fmax=0.1, steps=80).relax_many(structures)
    for a, b in zip(fire, bfgs, strict=True):
        assert a.ok and b.ok and a.converged and b.converged
        assert b.energy_per_atom == pytest.approx(a.energy_per_atom, abs=BFGS_TOLERANCE)
        assert b.structure.volume == pytest.approx(a.structure.volume, rel=2e-2)
    assert sum(b.steps for b in bfgs) < sum(a.steps for a in fire)


def test_each_structure_leaves_the_batch_on_its_own(batched):
    """A relaxed cell stops at step 0, a rattled one keeps going, a broken one fails alone."""
    relaxed = batched.relax(make_perovskite("Sr", "Ti", "O", 3.9))
    assert relaxed.ok
    broken = Structure(Lattice.cubic(3.0), ["Na", "Cl"], [[0, 0, 0], [0, 0, 0]], validate_proximity=False)
    results = relax_all(batched, [relaxed.structure, rattled(relaxed.structure, 0.05, 5), broken])
    assert results[0].ok and results[0].converged and results[0].steps == 0
    assert results[1].ok and results[1].converged and results[1].steps > 0
    assert results[1].energy_per_atom == pytest.approx(results[0].energy_per_atom, abs=0.02)
    assert not results[2].ok and "non-finite" in results[2].error
    capped = BatchedCHGNetRelaxer(fmax=1e-4, steps=2, batch_size=2).relax_many([rattled(relaxed.structure, 0.1, 6)] * 3)
    assert all(r.ok and not r.converged and r.steps == 2 for r in capped)  # three runs through a batch of two


@pytest.mark.parametrize("optimizer", ["bfgs-elastic", "fire"])
def test_a_structures_relaxation_does_not_depend_on_its_batch_neighbours(batched, optimizer):
    """Alone, or joining a batch of two as a neighbour converges (in-flight), a structure takes the same path."""
    relaxer = batched if optimizer == "fire" else BatchedCHGNetRelaxer(fmax=0.1, steps=80, batch_size=2)
    relaxer.batch_size = 2
    mine = rattled(make_perovskite("Sr", "Ti", "O", 3.95), 0.06, 11)
    neighbours = [rattled(make_perovskite("Ba", "Zr", "O", 4.3), 0.08, 12),
                  rattled(make_perovskite("K", "Nb", "O", 4.0), 0.02, 13)]
    try:
        alone = relaxer.relax(mine)
        together = relaxer.relax_many([neighbours[0], neighbours[1], mine])
    finally:
        relaxer.batch_size = 32
    assert together[1].steps != together[0].steps  # the neighbours leave the batch at different steps
    joined = together[2]
    assert alone.ok and joined.ok and alone.steps > 5
    assert (joined.steps, joined.energy_per_atom) == (alone.steps, alone.energy_per_atom)
    assert np.array_equal(joined.structure.lattice.matrix, alone.structure.lattice.matrix)
    assert np.array_equal(joined.structure.cart_coords, alone.structure.cart_coords)


def test_the_screen_relaxes_its_pool_in_batches(tmp_path):
    screen = MLIPScreen(MLIPSettings(cache_dir=str(tmp_path), fmax=0.2, steps=40))
    assert isinstance(screen.relaxer, BatchedCHGNetRelaxer)
    assert screen.relaxer._step_all is OPTIMIZERS["bfgs-elastic"]  # the default (surrogates/mlip/bfgs.py)
    assert MLIPScreen(MLIPSettings(optimizer="bfgs", cache_dir=str(tmp_path))).relaxer._step_all is OPTIMIZERS["bfgs"]
    assert MLIPScreen(MLIPSettings(optimizer="fire", cache_dir=str(tmp_path))).relaxer._step_all is OPTIMIZERS["fire"]
    assert isinstance(MLIPScreen(MLIPSettings(batch_size=1, cache_dir=str(tmp_path))).relaxer, CHGNetRelaxer)
