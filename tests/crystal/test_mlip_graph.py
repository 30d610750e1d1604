"""The relaxer's crystal graphs are CHGNet's own, tensor for tensor (real CHGNet converter, no stand-ins)."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from pymatgen.core import Lattice, Structure

from surrogates.mlip.graph import crystal_graph
from tests.crystal.conftest import make_perovskite

FIELDS = ("atomic_number", "atom_frac_coord", "lattice", "atom_graph", "neighbor_image", "directed2undirected",
          "undirected2directed", "bond_graph")


@pytest.fixture(scope="module")
def converter():
    from chgnet.model import CHGNet

    converter = CHGNet.load(verbose=False).graph_converter
    converter.set_isolated_atom_response("ignore")
    assert converter.algorithm == "fast"  # the converter crystal_graph mirrors (the relaxer's, CHGNet's default)
    return converter


def _structures() -> list[Structure]:
    rng = np.random.default_rng(0)
    supercell = make_perovskite("Ba", "Zr", "O", 4.2)
    supercell.make_supercell([2, 2, 1])  # 20 atoms, as the throughput benchmark's
    strained = Lattice(supercell.lattice.matrix @ (np.eye(3) + 0.03 * rng.standard_normal((3, 3))))
    rattled = Structure(strained, supercell.species,
                        strained.get_cartesian_coords(supercell.frac_coords) + 0.05 * rng.standard_normal((20, 3)),
                        coords_are_cartesian=True)
    triclinic = Structure(Lattice.from_parameters(3.1, 4.0, 5.2, 70, 100, 115), ["Li", "Fe", "P", "O"],
                          [[0, 0, 0], [0.3, 0.4, 0.2], [0.6, 0.1, 0.7], [0.2, 0.8, 0.5]])
    no_angles = Structure(Lattice.cubic(6.0), ["Na", "Cl"], [[0, 0, 0], [0.5, 0.5, 0.5]])  # no bond under 3 Å
    isolated = Structure(Lattice.cubic(9.0), ["Na"], [[0, 0, 0]])  # no neighbour within the cutoff at all
    own_images = Structure(Lattice.cubic(2.9), ["Po"], [[0, 0, 0]])  # every bond joins the atom to itself
    crowded = Structure(Lattice.cubic(5.0), ["Si"] * 6 + ["O"] * 6, rng.uniform(0, 1, (12, 3)))  # short, uneven bonds
    return [make_perovskite("Sr", "Ti", "O", 3.9), rattled, triclinic, no_angles, isolated, own_images, crowded]


@pytest.mark.parametrize("index", range(7))
def test_crystal_graph_is_chgnets_own(converter, index):
    structure = _structures()[index]
    theirs, ours = converter(structure), crystal_graph(converter, structure)
    for name in FIELDS:
        a, b = getattr(theirs, name), getattr(ours, name)
        assert a.dtype == b.dtype and a.shape == b.shape and torch.equal(a, b), name
        assert a.requires_grad == b.requires_grad, name
    assert (ours.composition, ours.atom_graph_cutoff, ours.bond_graph_cutoff) == (
        theirs.composition, theirs.atom_graph_cutoff, theirs.bond_graph_cutoff)
    if index in (0, 1, 5, 6):
        assert len(ours.bond_graph) > 20  # the angles are there to compare, not two empty lists


def test_an_isolated_atom_is_an_error_when_the_converter_says_so(converter):
    converter.set_isolated_atom_response("error")
    try:
        with pytest.raises(ValueError, match="isolated atom"):
            crystal_graph(converter, _structures()[4])
    finally:
        converter.set_isolated_atom_response("ignore")
