"""Crystal and microstructure spaces in campaign files: site_sets and image spaces, errors naming the field."""

from __future__ import annotations

import textwrap

import pytest

from agent.spec import CampaignFileError, MicrostructureSpace, parse_campaign
from cli.campaign_files import template_text

CRYSTAL = """\
name: c1
space:
  type: crystal
  prototypes: [perovskite]
  sites:
    A: [Ba, Sr]
    B: [Ti, Zr]
    X: [O, N]
  site_sets:
    X: [O3, O2N]
objectives:
  - {property: y, goal: maximize}
budget: {max_experiments: 4}
adapters: {lab: {type: simlab}}
measurements:
  - {properties: [y], adapter: lab}
"""


def problem(text: str):
    with pytest.raises(CampaignFileError) as info:
        parse_campaign(textwrap.dedent(text), source="c.yaml")
    assert len(info.value.problems) == 1, info.value.problems
    return info.value.problems[0]


def test_site_sets_are_part_of_the_crystal_space() -> None:
    campaign = parse_campaign(CRYSTAL)
    assert campaign.space.site_sets == {"X": ["O3", "O2N"]}  # type: ignore[union-attr]
    perovskite = parse_campaign(template_text("perovskite"))
    assert perovskite.space.site_sets["X"] == ["O3", "O2N", "ON2", "N3", "O2F", "OFN", "O2S"]  # type: ignore[union-attr]
    assert perovskite.generator.site_sets == {}  # the space, not the generator, says them


@pytest.mark.parametrize(
    ("entry", "message"),
    [
        ("[O3, Qx2N]", "site_sets['X'] entry 'Qx2N'"),
        ("[O3, O1.5N]", "atom counts of ['O'] are not whole numbers"),
        ("[]", "site_sets['X'] is empty"),
        ("[O3, O3]", "site_sets['X'] repeats ['O3']"),
        ("[O3, O2F]", "site_sets['X'] uses ['F'], which sites['X'] does not allow"),
    ],
)
def test_bad_site_sets_name_the_field(entry: str, message: str) -> None:
    p = problem(CRYSTAL.replace("X: [O3, O2N]", f"X: {entry}"))
    assert p.path.startswith("space") and "site_sets" in (p.path + p.message)
    assert message in p.message


def test_unknown_element_on_a_site_names_the_site() -> None:
    p = problem(CRYSTAL.replace("B: [Ti, Zr]", "B: [Ti, Zq]"))
    assert "sites['B'] names unknown element symbols ['Zq']" in p.message


def test_microstructure_space() -> None:
    space = MicrostructureSpace(type="microstructure", size=32)
    assert space.volume_fraction == (0.1, 0.9)
    with pytest.raises(ValueError, match="volume_fraction"):
        MicrostructureSpace(type="microstructure", volume_fraction=(0.5, 1.2))
