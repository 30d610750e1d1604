"""Campaign files: valid ones load and round-trip; invalid ones name the field and line."""

from __future__ import annotations

import textwrap

import pytest

from agent.spec import CampaignFileError, dump_campaign, load_campaign, parse_campaign
from cli.campaign_files import template_names, template_text

BASE = """\
name: t1
space:
  type: parametric
  parameters:
    - {name: x, type: continuous, bounds: [0.0, 1.0]}
    - {name: n, type: integer, bounds: [1, 5]}
    - {name: c, type: categorical, options: [a, b]}
objectives:
  - {property: y, goal: maximize}
budget: {max_experiments: 20}
batch_size: 4
adapters: {lab: {type: simlab}}
measurements:
  - {properties: [y], adapter: lab}
"""


def problems(text: str) -> list:
    with pytest.raises(CampaignFileError) as info:
        parse_campaign(textwrap.dedent(text), source="c.yaml")
    return info.value.problems


def one_problem(text: str):
    found = problems(text)
    assert len(found) == 1, found
    return found[0]


@pytest.mark.parametrize("name", template_names())
def test_every_template_is_valid_and_round_trips(name: str) -> None:
    campaign = parse_campaign(template_text(name), source=name)
    again = parse_campaign(dump_campaign(campaign))
    assert again == campaign
    assert again.spec_hash() == campaign.spec_hash()


def test_base_round_trips_through_yaml() -> None:
    campaign = parse_campaign(BASE)
    assert parse_campaign(dump_campaign(campaign)) == campaign


def test_unknown_key_is_named_with_its_line() -> None:
    p = one_problem(BASE.replace("batch_size: 4", "batch_size: 4\nbatchsize: 3"))
    assert p.path == "batchsize"
    assert "unknown key" in p.message
    assert p.line == 12


def test_unknown_nested_key() -> None:
    p = one_problem(BASE.replace("{property: y, goal: maximize}", "{property: y, goal: maximize, weight: 2}"))
    assert p.path == "objectives[0].weight"
    assert p.line == 9


def test_inverted_bounds() -> None:
    p = one_problem(BASE.replace("bounds: [0.0, 1.0]", "bounds: [1.0, 0.0]"))
    assert p.path == "space.parameters[0].bounds"
    assert "not below" in p.message
    assert p.line == 5


def test_empty_categorical() -> None:
    p = one_problem(BASE.replace("options: [a, b]", "options: []"))
    assert p.path == "space.parameters[2].options"
    assert "at least one option" in p.message
    assert p.line == 7


def test_infeasible_simplex() -> None:
    text = BASE.replace(
        "    - {name: c, type: categorical, options: [a, b]}\n",
        "    - {name: z, type: continuous, bounds: [0.7, 1.0]}\n  simplex:\n    - {parameters: [x, z], total: 0.5}\n",
    )
    p = one_problem(text)
    assert p.path == "space"
    assert "feasible set is empty" in p.message


def test_infeasible_linear_constraints() -> None:
    text = BASE.replace(
        "    - {name: c, type: categorical, options: [a, b]}\n",
        "  linear_constraints:\n    - {coefficients: {x: 1.0, n: 1.0}, op: '>=', rhs: 7}\n",
    )
    assert "feasible set is empty" in one_problem(text).message


def test_feasible_linear_constraint_accepted() -> None:
    text = BASE.replace(
        "    - {name: c, type: categorical, options: [a, b]}\n",
        "  linear_constraints:\n    - {coefficients: {x: 1.0, n: 1.0}, op: '<=', rhs: 3}\n",
    )
    assert parse_campaign(text).parametric is not None


def test_target_outside_physical_range() -> None:
    text = BASE.replace("y, goal: maximize", "band_gap, goal: target, target: -0.5, tolerance: 0.1").replace(
        "properties: [y]", "properties: [band_gap]"
    )
    p = one_problem(text)
    assert p.path == "objectives[0]"
    assert "physical range" in p.message


def test_target_needs_tolerance() -> None:
    text = BASE.replace("y, goal: maximize", "y, goal: target, target: 1.0")
    assert "tolerance" in one_problem(text).message


def test_batch_larger_than_budget() -> None:
    p = one_problem(BASE.replace("batch_size: 4", "batch_size: 40"))
    assert "batch_size 40 is larger than budget.max_experiments 20" in p.message


def test_unmeasured_objective() -> None:
    p = one_problem(BASE.replace("properties: [y]", "properties: [q]"))
    assert "no measurement produces ['y']" in p.message


def test_outcome_constraint_strings_parse_and_bad_ones_are_named() -> None:
    ok = parse_campaign(BASE + "constraints: ['y < 3']\n")
    assert str(ok.constraints[0]) == "y < 3"
    bad = problems(BASE + "constraints: ['y is small']\n")
    assert "cannot read outcome constraint" in str(bad[0])


def test_several_problems_are_all_reported() -> None:
    text = BASE.replace("bounds: [0.0, 1.0]", "bounds: [1.0, 0.0]").replace("options: [a, b]", "options: []")
    assert len(problems(text)) == 2


def test_yaml_syntax_error_has_a_line() -> None:
    p = one_problem("name: x\nspace: [unclosed\n")
    assert "not valid YAML" in p.message
    assert p.line is not None


def test_unknown_elements_in_composition_space() -> None:
    text = BASE.replace(
        """  type: parametric
  parameters:
    - {name: x, type: continuous, bounds: [0.0, 1.0]}
    - {name: n, type: integer, bounds: [1, 5]}
    - {name: c, type: categorical, options: [a, b]}""",
        "  type: composition\n  elements: [Fe, Xx]",
    )
    p = one_problem(text)
    assert "Xx" in p.message and p.path == "space.elements"


def test_missing_file_is_a_clear_error(tmp_path) -> None:
    with pytest.raises(CampaignFileError, match="cannot read file"):
        load_campaign(tmp_path / "nope.yaml")


def test_parametric_violations() -> None:
    space = parse_campaign(template_text("oer")).parametric
    assert space is not None
    good = {"ni_load": 0.5, "fe_load": 0.5, "co_load": 0.0, "mn_load": 0.0, "ce_load": 0.0, "la_load": 0.0}
    assert space.violations(good) == []
    bad = dict(good, ni_load=0.7)
    assert any("simplex[0] sums to 1.2" in v for v in space.violations(bad))
    assert space.violations({"ni_load": 1.0}) and "missing parameters" in space.violations({"ni_load": 1.0})[0]


@pytest.mark.parametrize(
    ("acquisition", "expected"),
    [
        ("ts", "unknown acquisition 'ts'"),
        ("qlognehvi", "'qlognehvi' needs several objectives"),
        ("band", "'band' needs a target objective"),
    ],
)
def test_acquisition_that_cannot_serve_the_objectives_is_refused_with_the_file(acquisition: str, expected: str) -> None:
    p = one_problem(BASE + f"acquisition: {{type: {acquisition}}}\n")
    assert expected in p.message


@pytest.mark.parametrize("acquisition", ["auto", "qlogei", "QLogNEI", "ucb", "thompson"])
def test_single_objective_acquisitions_are_accepted(acquisition: str) -> None:
    """Names are read case-insensitively and stored lower-case (the typed config's ``type`` is a fixed choice)."""
    assert parse_campaign(BASE + f"acquisition: {{type: {acquisition}}}\n").acquisition.type == acquisition.lower()


@pytest.mark.parametrize(
    ("acquisition", "path", "expected"),
    [
        ("{type: auto, settings: {exploit_shar: 0.25}}", "acquisition.settings.exploit_shar", "unknown key"),
        ("{type: auto, exploit_shar: 0.25}", "acquisition.exploit_shar", "unknown key"),
        ("{type: qlogei, settings: {exploit_share: 1.5}}", "acquisition.settings.exploit_share", "less than 1"),
        ("{type: qlogei, exploit_share: -0.1}", "acquisition.exploit_share", "greater than or equal to 0"),
        ("{type: qlogei, settings: {exploit_share: lots}}", "acquisition.settings.exploit_share", "valid number"),
        ("{type: thompson, settings: {exploit_share: 0.25}}", "acquisition", "not acquisition 'thompson'"),
    ],
)
def test_acquisition_settings_are_checked_with_the_file(acquisition: str, path: str, expected: str) -> None:
    """Old ``{type, settings}`` and the flat typed shape are checked alike, each problem at its field and line."""
    p = one_problem(BASE + f"acquisition: {acquisition}\n")
    assert expected in p.message and p.path == path and p.line == BASE.count("\n") + 1


def test_an_exploit_share_is_accepted_for_one_objective() -> None:
    campaign = parse_campaign(BASE + "acquisition: {type: auto, settings: {exploit_share: 0.25}}\n")
    assert campaign.acquisition.exploit_share == 0.25
    assert parse_campaign(BASE + "acquisition: {type: ucb, exploit_share: 0.5}\n").acquisition.exploit_share == 0.5
