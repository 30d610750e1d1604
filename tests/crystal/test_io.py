"""Malformed CIFs and unknown elements: errors that name the file and the site."""

from __future__ import annotations

import pytest

from generators.crystal import CrystalInputError, load_cif, structure_from_cif_text
from matloop.space import CrystalSpace

GOOD = """data_SrTiO3
_cell_length_a 3.905
_cell_length_b 3.905
_cell_length_c 3.905
_cell_angle_alpha 90
_cell_angle_beta 90
_cell_angle_gamma 90
_symmetry_space_group_name_H-M 'P 1'
loop_
 _symmetry_equiv_pos_as_xyz
 'x, y, z'
loop_
 _atom_site_type_symbol
 _atom_site_label
 _atom_site_fract_x
 _atom_site_fract_y
 _atom_site_fract_z
 _atom_site_occupancy
 Sr Sr1 0.0 0.0 0.0 1
 Ti Ti1 0.5 0.5 0.5 1
 O O1 0.5 0.5 0.0 1
 O O2 0.5 0.0 0.5 1
 O O3 0.0 0.5 0.5 1
"""


def test_good_cif_loads(tmp_path):
    path = tmp_path / "srtio3.cif"
    path.write_text(GOOD)
    s = load_cif(path)
    assert s.composition.reduced_formula == "SrTiO3" and len(s) == 5


def test_unknown_element_names_file_and_site(tmp_path):
    path = tmp_path / "bad_element.cif"
    path.write_text(GOOD.replace(" Ti Ti1 ", " Xq Xq1 "))
    with pytest.raises(CrystalInputError) as err:
        load_cif(path)
    message = str(err.value)
    assert str(path) in message and "site 2" in message and "'Xq1'" in message and "'Xq'" in message


def test_malformed_cif_names_file(tmp_path):
    path = tmp_path / "broken.cif"
    path.write_text("data_x\n_cell_length_a 3.9\nloop_\n _atom_site_label\n")
    with pytest.raises(CrystalInputError, match="broken.cif"):
        load_cif(path)


def test_cif_without_cell_names_file(tmp_path):
    path = tmp_path / "nocell.cif"
    path.write_text("\n".join(line for line in GOOD.splitlines() if not line.startswith("_cell_length")))
    with pytest.raises(CrystalInputError, match="nocell.cif"):
        load_cif(path)


def test_missing_file_is_named(tmp_path):
    with pytest.raises(CrystalInputError, match="absent.cif"):
        load_cif(tmp_path / "absent.cif")


def test_source_label_is_used_for_text():
    with pytest.raises(CrystalInputError, match="row 7 of refs.csv"):
        structure_from_cif_text("not a cif at all", source="row 7 of refs.csv")


def test_unknown_element_in_space_is_refused():
    with pytest.raises(ValueError, match="Xq"):
        CrystalSpace(type="crystal", prototypes=["rocksalt"], elements=["Na", "Xq"])


def test_seed_cif_with_unknown_element_fails_generation_clearly(tmp_path):
    from generators.base import GenerationContext
    from generators.crystal import SubstitutionGenerator

    path = tmp_path / "seed.cif"
    path.write_text(GOOD.replace(" O O3 ", " Qq O3 "))
    space = CrystalSpace(type="crystal", seed_cifs=[str(path)], elements=["Sr", "Ba", "Ti", "O"])
    with pytest.raises(CrystalInputError, match=r"seed.cif: site 5 \(label 'O3'\)"):
        SubstitutionGenerator().propose(space, GenerationContext(), 3)


def test_disordered_seed_is_refused_naming_the_site(tmp_path):
    from generators.base import GenerationContext
    from generators.crystal import SubstitutionGenerator

    path = tmp_path / "disordered.cif"
    path.write_text(GOOD.replace(" Ti Ti1 0.5 0.5 0.5 1", " Ti Ti1 0.5 0.5 0.5 0.5"))
    space = CrystalSpace(type="crystal", seed_cifs=[str(path)], elements=["Sr", "Ti", "O"])
    with pytest.raises(ValueError, match="disordered.cif: site 2 is partially occupied"):
        SubstitutionGenerator().propose(space, GenerationContext(), 2)
