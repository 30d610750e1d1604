"""The substitution generator: prototypes, seeds, charge balance, determinism, steering."""

from __future__ import annotations

from collections import Counter

import pytest
from pymatgen.core import Structure

from generators.base import GenerationContext, Generator
from generators.crystal import (
    PROTOTYPES,
    OxidationRules,
    SubstitutionGenerator,
    ValidityRules,
    check_structure,
    named_prototype,
    substitution_generator,
)
from matloop.space import CrystalSpace
from matloop.types import CandidateKind

PEROVSKITE = CrystalSpace(
    type="crystal",
    prototypes=["perovskite"],
    sites={"A": ["Ca", "Sr", "Ba", "La", "K", "Na"], "B": ["Ti", "Zr", "Hf", "Nb", "Ta", "Al", "Ga", "Sc"]},
    elements=["O", "N", "F"],
)
SETTINGS = {"site_sets": {"X": ["O3", "O2N", "ON2", "O2F"]}}


def test_every_named_prototype_builds_with_its_space_group():
    expected = {"perovskite": 221, "rocksalt": 225, "zincblende": 216, "wurtzite": 186, "spinel": 227,
                "cesium_chloride": 221}
    from generators.crystal.dedup import space_group_number

    for name in PROTOTYPES:
        t = named_prototype(name)
        s = t.decorate({lb: [t.reference_species[lb].element.symbol] * t.multiplicity(lb) for lb in t.labels})
        assert space_group_number(s) == expected[name], name


def test_proposals_are_charge_balanced_valid_structures():
    gen = SubstitutionGenerator.from_settings(SETTINGS)
    assert isinstance(gen, Generator)
    cands = gen.propose(PEROVSKITE, GenerationContext(seed=3), 40)
    assert len(cands) == 40
    assert len({c.fingerprint for c in cands}) == 40
    rules = OxidationRules()
    for c in cands:
        assert c.kind is CandidateKind.STRUCTURE and c.origin == "substitution:perovskite"
        s = Structure.from_dict(c.structure)
        assert c.structure["formula"] == s.composition.reduced_formula
        assert c.fingerprint.startswith(f"structure:{s.composition.reduced_formula}:")
        assert check_structure(s, ValidityRules(), rules) == [], c.label()
    assert gen.stats.proposed == 40 and gen.stats.drawn >= 40


def test_same_seed_same_batch_other_seed_other_batch():
    a = substitution_generator(**SETTINGS).propose(PEROVSKITE, GenerationContext(seed=1), 15)
    b = substitution_generator(**SETTINGS).propose(PEROVSKITE, GenerationContext(seed=1), 15)
    c = substitution_generator(**SETTINGS).propose(PEROVSKITE, GenerationContext(seed=2), 15)
    assert [x.fingerprint for x in a] == [x.fingerprint for x in b]
    assert [x.fingerprint for x in a] != [x.fingerprint for x in c]


def test_known_fingerprints_are_not_proposed_again():
    first = substitution_generator(**SETTINGS).propose(PEROVSKITE, GenerationContext(seed=1), 15)
    known = {c.fingerprint for c in first}
    gen = substitution_generator(**SETTINGS)
    again = gen.propose(PEROVSKITE, GenerationContext(seed=1, known_fingerprints=known), 15)
    assert len(again) == 15 and not known & {c.fingerprint for c in again}
    assert gen.stats.already_known > 0


def test_substitution_probabilities_favour_chemically_similar_ions():
    space = CrystalSpace(type="crystal", prototypes=["perovskite"], sites={"A": ["Sr", "Ba", "Ca"], "B": ["Ti", "Zr"],
                                                                          "X": ["O"]})
    space_wide = space.model_copy(update={"sites": {"A": ["Sr", "Ba", "Ca", "Ti", "Zr"], "B": ["Ti", "Zr", "Sr",
                                                                                             "Ba", "Ca"],
                                                    "X": ["O"]}})
    cands = substitution_generator().propose(space_wide, GenerationContext(seed=0), 6)
    assert len(cands) == 6  # 3 x 2 "right way round" + a few inverted ones exist; the likely ones come first
    a_sites = Counter(Structure.from_dict(c.structure)[0].specie.symbol for c in cands)
    assert a_sites["Sr"] + a_sites["Ba"] + a_sites["Ca"] >= 5
    assert len(substitution_generator().propose(space, GenerationContext(seed=0), 50)) == 6  # all that exist


def test_steering_moves_proposals_toward_the_surrogate():
    def likes_barium(cands):
        return [1.0 if "Ba" in c.structure["formula"] else 0.0 for c in cands]

    plain = substitution_generator(**SETTINGS).propose(PEROVSKITE, GenerationContext(seed=5), 12)
    steered = substitution_generator(**SETTINGS, steer_weight=5.0).propose(
        PEROVSKITE, GenerationContext(seed=5, surrogate=likes_barium), 12
    )
    count = lambda cs: sum("Ba" in c.structure["formula"] for c in cs)  # noqa: E731
    assert count(steered) > count(plain)
    assert count(steered) >= 8


def test_seed_cif_substitution(tmp_path):
    from tests.crystal.test_io import GOOD

    path = tmp_path / "srtio3.cif"
    path.write_text(GOOD)
    space = CrystalSpace(type="crystal", seed_cifs=[str(path)], sites={"Sr": ["Sr", "Ba", "Ca"], "Ti": ["Ti", "Zr"]},
                         elements=["O"])
    cands = substitution_generator().propose(space, GenerationContext(seed=0), 10)
    formulas = {c.structure["formula"] for c in cands}
    assert formulas == {"SrTiO3", "BaTiO3", "CaTiO3", "SrZrO3", "BaZrO3", "CaZrO3"}
    assert all(c.origin == f"substitution:{path}" for c in cands)


def test_site_set_that_does_not_fit_the_sublattice_is_refused():
    gen = substitution_generator(site_sets={"X": ["O2"]})
    with pytest.raises(ValueError, match="site_sets\\['X'\\] entry 'O2' has 2 atoms"):
        gen.propose(PEROVSKITE, GenerationContext(), 3)


def test_unknown_setting_is_refused():
    with pytest.raises(ValueError, match="temprature"):
        substitution_generator(temprature=2)


def test_wrong_space_is_refused():
    from matloop.space import CompositionSpace

    with pytest.raises(TypeError, match="crystal space"):
        substitution_generator().propose(CompositionSpace(type="composition", elements=["Fe", "Ni"]),
                                         GenerationContext(), 2)


@pytest.mark.parametrize(("name", "fill"), [
    ("perovskite", {"A": ["Cs"], "B": ["Pb"], "X": ["I"] * 3}),
    ("spinel", {"A": ["Mg"] * 2, "B": ["Al"] * 4, "X": ["O"] * 8}),
    ("wurtzite", {"A": ["Zn"] * 2, "X": ["O"] * 2}),
])
def test_template_volumes_agree_with_pymatgen_dls(name, fill):
    from pymatgen.analysis.structure_prediction.volume_predictor import DLSVolumePredictor

    from generators.crystal.volume import TemplateVolumes

    template = named_prototype(name)
    structure = template.decorate(fill)
    expected = DLSVolumePredictor(min_scaling=None, max_scaling=None).predict(structure)
    assert TemplateVolumes(template).predict([str(s) for s in structure.species]) == pytest.approx(expected, rel=1e-6)


def test_large_ions_get_large_cells():
    space = CrystalSpace(type="crystal", prototypes=["perovskite"], sites={"A": ["Cs"], "B": ["Pb"], "X": ["I"]})
    (cand,) = substitution_generator().propose(space, GenerationContext(), 1)
    s = Structure.from_dict(cand.structure)
    assert 6.0 < s.lattice.a < 7.0  # CsPbI3 is about 6.3 Å, not the 3.9 Å SrTiO3 prototype
    assert check_structure(s, ValidityRules(), OxidationRules()) == []
