"""Duplicate detection across supercells, permuted sites, batches and polymorphs."""

from __future__ import annotations

from pymatgen.core import Lattice, Structure

from generators.crystal import StructureRegistry, coarse_key, deduplicate


def test_fingerprint_is_formula_and_space_group(perovskite):
    assert coarse_key(perovskite()) == "structure:SrTiO3:221"
    assert coarse_key(perovskite(x="O") * (2, 2, 1)) == "structure:SrTiO3:221"


def test_supercell_and_permuted_sites_are_duplicates(perovskite):
    base = perovskite()
    supercell = base * (2, 1, 1)
    permuted = Structure(base.lattice, list(reversed(base.species)), list(reversed(base.frac_coords)))
    strained = perovskite(lattice=4.2)  # a rescaled copy is the same crystal
    outcome = deduplicate([base, supercell, permuted, strained, perovskite(a="Ba")], StructureRegistry())
    assert outcome.unique == [0, 4]
    assert outcome.duplicate_of == {1: "structure:SrTiO3:221", 2: "structure:SrTiO3:221", 3: "structure:SrTiO3:221"}


def test_swapped_sites_are_a_different_crystal(perovskite):
    outcome = deduplicate([perovskite("Sr", "Ti"), perovskite("Ti", "Sr")], StructureRegistry())
    assert outcome.unique == [0, 1]  # same formula and space group, different crystal
    assert outcome.fingerprints == ["structure:SrTiO3:221", "structure:SrTiO3:221#2"]


def test_duplicates_against_what_the_campaign_has_seen(perovskite):
    seen = {"structure:SrTiO3:221": perovskite().as_dict()}
    registry = StructureRegistry.from_known(seen, seen)
    outcome = deduplicate([perovskite() * (1, 1, 2), perovskite("Ti", "Sr"), perovskite(a="Ca")], registry)
    assert outcome.duplicate_of == {0: "structure:SrTiO3:221"}
    assert outcome.unique == [1, 2]


def test_a_fingerprint_without_its_structure_blocks_its_group(perovskite):
    registry = StructureRegistry.from_known({"structure:SrTiO3:221"})
    outcome = deduplicate([perovskite("Ti", "Sr")], registry)
    assert outcome.unique == []


def test_polymorphs_are_kept():
    rocksalt = Structure(Lattice.cubic(5.64), ["Na"] * 4 + ["Cl"] * 4,
                         [[0, 0, 0], [0.5, 0.5, 0], [0.5, 0, 0.5], [0, 0.5, 0.5],
                          [0.5, 0.5, 0.5], [0, 0, 0.5], [0, 0.5, 0], [0.5, 0, 0]])
    cscl = Structure(Lattice.cubic(3.3), ["Na", "Cl"], [[0, 0, 0], [0.5, 0.5, 0.5]])
    outcome = deduplicate([rocksalt, cscl, rocksalt.get_primitive_structure()], StructureRegistry())
    assert outcome.unique == [0, 1]
    assert outcome.duplicate_of == {2: coarse_key(rocksalt)}
