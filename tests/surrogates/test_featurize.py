"""Featurizers: shapes, scaling, encodings, and clear errors on bad input."""

from __future__ import annotations

import pytest
import torch
from pymatgen.core import Lattice, Structure

from matloop.space import (
    CategoricalParameter,
    CompositionSpace,
    ContinuousParameter,
    CrystalSpace,
    IntegerParameter,
    ParametricSpace,
)
from surrogates.featurize import (
    CompositionFeaturizer,
    ParametricFeaturizer,
    StructureFeaturizer,
    element_properties,
    featurizer_for,
)


def mixed_space(descriptors: bool = True) -> ParametricSpace:
    return ParametricSpace(
        parameters=[
            ContinuousParameter(name="temp", bounds=(300.0, 500.0)),
            IntegerParameter(name="cycles", type="integer", bounds=(1, 11)),
            CategoricalParameter(
                name="halide",
                type="categorical",
                options=["Cl", "Br", "I"],
                descriptors={"Cl": {"en": 3.16, "r": 1.0}, "Br": {"en": 2.96, "r": 1.2}, "I": {"en": 2.66, "r": 1.4}}
                if descriptors
                else None,
            ),
            CategoricalParameter(name="solvent", type="categorical", options=["dmf", "dmso"]),
        ]
    )


def test_parametric_scales_numbers_to_unit_cube_and_encodes_categoricals() -> None:
    f = ParametricFeaturizer(mixed_space())
    X = f.transform(
        [
            {"temp": 300.0, "cycles": 1, "halide": "Cl", "solvent": "dmf"},
            {"temp": 500.0, "cycles": 11, "halide": "I", "solvent": "dmso"},
            {"temp": 400.0, "cycles": 6, "halide": "Br", "solvent": "dmf"},
        ]
    )
    assert X.dtype == torch.double and X.shape == (3, f.dim)
    # auto: descriptors for halide (2 columns, min-max scaled over options), one-hot for solvent
    assert f.feature_names == ["temp", "cycles", "halide:en", "halide:r", "solvent=dmf", "solvent=dmso"]
    assert X[:, :2].tolist() == [[0.0, 0.0], [1.0, 1.0], [0.5, 0.5]]
    assert X[:, 2].tolist() == pytest.approx([1.0, 0.0, 0.6])  # en: Cl highest, I lowest
    assert X[:, 4:].tolist() == [[1.0, 0.0], [0.0, 1.0], [1.0, 0.0]]
    assert f.categorical_dims == [4, 5]


def test_parametric_onehot_mode_and_descriptor_mode_errors() -> None:
    f = ParametricFeaturizer(mixed_space(), categorical="onehot")
    assert f.dim == 2 + 3 + 2
    with pytest.raises(ValueError, match="'solvent' has no descriptors"):
        ParametricFeaturizer(mixed_space(), categorical="descriptors")
    with pytest.raises(ValueError, match="categorical="):
        ParametricFeaturizer(mixed_space(), categorical="bits")


@pytest.mark.parametrize(
    ("point", "message"),
    [
        ({"temp": 300.0, "cycles": 1, "halide": "F", "solvent": "dmf"}, r"point 1, parameter 'halide'.*'F'"),
        ({"temp": "hot", "cycles": 1, "halide": "I", "solvent": "dmf"}, r"point 1, parameter 'temp'"),
        ({"temp": float("nan"), "cycles": 1, "halide": "I", "solvent": "dmf"}, r"point 1, parameter 'temp'"),
        ({"cycles": 1, "halide": "I", "solvent": "dmf"}, r"point 1 has no value for parameter 'temp'"),
    ],
)
def test_parametric_bad_points_name_the_row_and_parameter(point: dict, message: str) -> None:
    f = ParametricFeaturizer(mixed_space())
    good = {"temp": 300.0, "cycles": 1, "halide": "Cl", "solvent": "dmf"}
    with pytest.raises(ValueError, match=message):
        f.transform([good, point])


def test_composition_statistics_from_pymatgen_element_data() -> None:
    f = CompositionFeaturizer()
    X = f.transform([{"Na": 1, "Cl": 1}, {"Fe": 2, "O": 3}, {"Cu": 1.0}])
    assert X.shape == (3, f.dim) == (3, 33)
    names = f.feature_names
    en_na, en_cl = element_properties("Na")[2], element_properties("Cl")[2]
    assert X[0, names.index("mean_electronegativity")] == pytest.approx((en_na + en_cl) / 2)
    assert X[0, names.index("std_electronegativity")] == pytest.approx(abs(en_cl - en_na) / 2)
    assert X[0, names.index("max_row")] == 3 and X[1, names.index("min_Z")] == 8
    assert X[2, names.index("std_Z")] == 0 and X[2, names.index("n_elements")] == 1
    assert X[1, names.index("mean_Z")] == pytest.approx((2 * 26 + 3 * 8) / 5)
    assert element_properties("O")[-1] == 6 and element_properties("Fe")[-1] == 8  # valence electrons
    assert torch.isfinite(f.transform([{"He": 1, "Ne": 1}])).all()  # no Pauling EN: still finite


def test_composition_bad_input_names_the_row() -> None:
    f = CompositionFeaturizer()
    with pytest.raises(ValueError, match="composition 1: unknown element symbol 'Xx'"):
        f.transform([{"Na": 1}, {"Xx": 1}])
    with pytest.raises(ValueError, match="composition 0: amounts must be"):
        f.transform([{"Na": -1.0, "Cl": 1.0}])


def rocksalt() -> Structure:
    return Structure.from_spacegroup("Fm-3m", Lattice.cubic(5.64), ["Na", "Cl"], [[0, 0, 0], [0.5, 0.5, 0.5]])


def test_structure_features_density_spacegroup_coordination() -> None:
    f = StructureFeaturizer()
    s = rocksalt()
    X = f.transform([s.as_dict(), s])  # dicts (as stored in a Candidate) and Structures both work
    assert X.shape == (2, f.dim) and torch.equal(X[0], X[1])
    names = f.feature_names
    assert X[0, names.index("spacegroup_number")] == 225
    assert X[0, names.index("mean_coordination")] == 6
    assert X[0, names.index("volume_per_atom")] == pytest.approx(5.64**3 / 8)
    assert X[0, names.index("density")] == pytest.approx(s.density)
    assert X[0, names.index("mean_nn_distance")] == pytest.approx(5.64 / 2)


def test_structure_embedder_is_appended_and_checked() -> None:
    f = StructureFeaturizer(embedder=lambda s: [float(len(s)), 1.0], embedding_dim=2)
    X = f.transform([rocksalt()])
    assert f.feature_names[-2:] == ["embedding_0", "embedding_1"] and X[0, -2:].tolist() == [8.0, 1.0]
    bad = StructureFeaturizer(embedder=lambda s: [1.0], embedding_dim=2)
    with pytest.raises(ValueError, match="structure 0: embedder gave 1 numbers, expected 2"):
        bad.transform([rocksalt()])
    with pytest.raises(ValueError, match="structure 0 is not a pymatgen Structure dict"):
        f.transform([{"lattice": "nonsense"}])


def test_featurizer_for_picks_by_space_type() -> None:
    assert isinstance(featurizer_for(mixed_space()), ParametricFeaturizer)
    assert isinstance(featurizer_for(CompositionSpace(type="composition", elements=["Ni", "Fe"])), CompositionFeaturizer)
    crystal = CrystalSpace(type="crystal", prototypes=["perovskite"], sites={"A": ["Ba"]})
    assert isinstance(featurizer_for(crystal), StructureFeaturizer)


def test_descriptors_that_do_not_tell_options_apart_fall_back_to_one_hot() -> None:
    same = {"en": 1.0}
    space = ParametricSpace(
        parameters=[
            CategoricalParameter(name="x", type="categorical", options=["a", "b", "c"],
                                 descriptors={"a": same, "b": same, "c": {"en": 2.0}})
        ]
    )
    f = ParametricFeaturizer(space)
    assert f.feature_names == ["x=a", "x=b", "x=c"] and f.notes == ["x: options ['a', 'b'] have identical descriptors; one-hot used instead"]
    with pytest.raises(ValueError, match=r"'x': options \['a', 'b'\] have identical descriptors"):
        ParametricFeaturizer(space, categorical="descriptors")


def test_featurizers_accept_candidates() -> None:
    from matloop.types import Candidate, CandidateKind

    point = {"temp": 400.0, "cycles": 6, "halide": "Br", "solvent": "dmf"}
    f = ParametricFeaturizer(mixed_space())
    assert torch.equal(f.transform([Candidate.point(point)]), f.transform([point]))
    comp = Candidate(kind=CandidateKind.COMPOSITION, composition={"Ni": 0.5, "Fe": 0.5})
    assert torch.equal(CompositionFeaturizer().transform([comp]), CompositionFeaturizer().transform([{"Ni": 1, "Fe": 1}]))
    crystal = Candidate(kind=CandidateKind.STRUCTURE, structure=rocksalt().as_dict())
    assert StructureFeaturizer().transform([crystal]).shape == (1, StructureFeaturizer().dim)
    with pytest.raises(ValueError, match="candidate 0 is a composition candidate and has no params"):
        f.transform([comp])


def mixture_space(step: float | None = 0.1, low: float = 0.0, absence_matters: bool = True) -> ParametricSpace:
    """Three metals on a simplex (the third always present when ``low`` > 0), and a temperature."""
    return ParametricSpace.model_validate({
        "parameters": [{"name": "ni", "type": "continuous", "bounds": [0.0, 1.0]},
                       {"name": "temp", "type": "continuous", "bounds": [300.0, 500.0]},
                       {"name": "fe", "type": "continuous", "bounds": [0.0, 1.0]},
                       {"name": "co", "type": "continuous", "bounds": [low, 1.0]}],
        "simplex": [{"parameters": ["ni", "fe", "co"], "total": 1.0, "step": step, "absence_matters": absence_matters}],
    })


def test_a_gridded_mixture_gets_presence_bits_and_one_group_for_its_fractions() -> None:
    f = ParametricFeaturizer(mixture_space())
    assert f.feature_names == ["ni", "temp", "fe", "co", "ni>0", "fe>0", "co>0"]
    assert f.feature_groups == [[0, 2, 3], [1], [4, 5, 6]]  # the mixture's fractions, temp, which metals
    X = f.transform([{"ni": 0.9, "temp": 400.0, "fe": 0.0, "co": 0.1}, {"ni": 0.0, "temp": 300.0, "fe": 0.5, "co": 0.5}])
    assert X.tolist() == [[0.9, 0.5, 0.0, 0.1, 1.0, 0.0, 1.0], [0.0, 0.0, 0.5, 0.5, 0.0, 1.0, 1.0]]
    # a component that is always present tells nothing; off the grid "absent" has no exact value;
    # continuous optimisation needs an affine featurizer, so the bits can be switched off
    assert ParametricFeaturizer(mixture_space(low=0.1)).feature_names[-2:] == ["ni>0", "fe>0"]
    assert ParametricFeaturizer(mixture_space(step=None)).dim == 4
    assert ParametricFeaturizer(mixture_space(), presence=False).feature_groups == [[0], [1], [2], [3]]
    # and a campaign may say that 0 is just the smallest amount (a smooth blend): no bits either
    smooth = ParametricFeaturizer(mixture_space(absence_matters=False))
    assert (smooth.feature_names, smooth.feature_groups) == (["ni", "temp", "fe", "co"], [[0], [1], [2], [3]])


def test_presence_bits_let_the_gp_learn_what_adding_an_element_does() -> None:
    """Any cobalt at all lowers the value by 0.5, and nickel and iron together raise it by 0.4 (a mixed phase,
    whatever their fractions); the rest varies smoothly with the fractions. Over the fractions alone that is a
    ridged landscape a stationary kernel smooths over; with the bits the GP learns it from 40 mixtures."""
    import itertools

    from surrogates import fit_surrogate

    space = ParametricSpace.model_validate({
        "parameters": [{"name": n, "type": "continuous", "bounds": [0.0, 1.0]} for n in ("ni", "fe", "co", "mn")],
        "simplex": [{"parameters": ["ni", "fe", "co", "mn"], "total": 1.0, "step": 0.1}],
    })
    grid = [dict(zip(("ni", "fe", "co", "mn"), (a / 10, b / 10, c / 10, (10 - a - b - c) / 10), strict=True))
            for a, b, c in itertools.product(range(11), repeat=3) if a + b + c <= 10]

    def truth(p: dict) -> float:
        return 0.3 * p["ni"] - 0.2 * p["fe"] ** 2 + 0.1 * p["mn"] - 0.5 * (p["co"] > 0) + 0.4 * (p["ni"] * p["fe"] > 0)

    y = torch.tensor([[truth(p)] for p in grid], dtype=torch.double)
    train = torch.randperm(len(grid), generator=torch.Generator().manual_seed(0))[:40]
    test = torch.ones(len(grid), dtype=torch.bool)
    test[train] = False
    errors = {}
    for presence in (True, False):
        f = ParametricFeaturizer(space, presence=presence)
        X = f.transform(grid)
        model = fit_surrogate(X[train], y[train], kind="gp", seed=0, cv_folds=0,
                              settings={"feature_groups": f.feature_groups}).model
        with torch.no_grad():
            errors[presence] = float((model.posterior(X[test]).mean - y[test]).pow(2).mean().sqrt())
    assert errors[True] < 0.5 * errors[False], errors
