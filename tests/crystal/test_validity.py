"""Validity checks on hand-made good and bad structures."""

from __future__ import annotations

from pymatgen.core import Lattice, Structure

from generators.crystal import OxidationRules, ValidityRules, check_structure, partition_valid


def test_srtio3_is_valid(perovskite):
    assert check_structure(perovskite(), ValidityRules(), OxidationRules()) == []


def test_charge_imbalance_is_named():
    rules = OxidationRules({"Na": [1], "O": [-2]})
    rocksalt_nao = Structure(Lattice.cubic(4.6), ["Na", "O"], [[0, 0, 0], [0.5, 0.5, 0.5]])
    problems = check_structure(rocksalt_nao, ValidityRules(), rules)
    assert any("Na2O2 cannot be charge-balanced" in p for p in problems)
    # the same structure passes when the campaign does not ask for charge balance
    assert not any("charge" in p for p in check_structure(rocksalt_nao, ValidityRules(charge_balance=False), rules))


def test_oxidation_overrides_decide_balance():
    assert OxidationRules({"La": [3], "Ti": [4]}).balance({"La": 1, "Ti": 1, "O": 3}) is None
    assert OxidationRules({"La": [3], "Ti": [3, 4]}).balance({"La": 1, "Ti": 1, "O": 3}) == {"La": 3, "Ti": 3, "O": -2}


def test_anion_sign_rule_rejects_cation_on_anion_site():
    rules = OxidationRules()
    assert rules.balance({"Sr": 1, "Ti": 1, "O": 3}, anions=frozenset({"O"})) is not None
    # Ti on the anion sublattice would need a negative titanium
    assert rules.balance({"Sr": 1, "O": 1, "Ti": 3}, anions=frozenset({"Ti"})) is None


def test_compressed_cell_fails_distance_and_density(perovskite):
    problems = check_structure(perovskite(lattice=2.2), ValidityRules(), OxidationRules())
    assert any("Å apart" in p and "Ti" in p and "O" in p for p in problems)
    assert any("density" in p for p in problems)


def test_two_atoms_on_top_of_each_other(perovskite):
    s = perovskite()
    s.append("O", [0.05, 0.0, 0.0])
    problems = check_structure(s, ValidityRules(charge_balance=False), OxidationRules())
    assert any("sites 0 (Sr) and 5 (O)" in p for p in problems)


def test_self_image_too_close():
    s = Structure(Lattice.tetragonal(0.8, 5.0), ["Cu"], [[0, 0, 0]])
    problems = check_structure(s, ValidityRules(charge_balance=False, density_range=(0, 1e6)), OxidationRules())
    assert problems and "sites 0 (Cu) and 0 (Cu)" in problems[0]


def test_exploded_cell_has_insane_density(perovskite):
    problems = check_structure(perovskite(lattice=12.0), ValidityRules(), OxidationRules())
    assert any("density" in p and "outside" in p for p in problems)


def test_size_and_element_limits(perovskite):
    s = perovskite() * (2, 1, 1)
    problems = check_structure(s, ValidityRules(max_atoms=5, allowed_elements=frozenset({"Sr", "O"})), OxidationRules())
    assert any("10 atoms exceed max_atoms 5" in p for p in problems)
    assert any("['Ti']" in p for p in problems)


def test_partition_keeps_every_reason(perovskite):
    valid, invalid = partition_valid([perovskite(), perovskite(lattice=2.0)], ValidityRules(), OxidationRules())
    assert valid == [0]
    assert list(invalid) == [1] and invalid[1]
