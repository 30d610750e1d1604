"""The perovskite template and the simulated lab's perov5 scenario (backed by the shared perov5 data)."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from pymatgen.core import Structure

from agent.spec import load_campaign
from generators.base import GenerationContext
from generators.crystal import substitution_generator
from lab_adapters.simlab.scenarios.base import Scenario
from matloop.data import DatasetNotFound, dataset_path
from tests.crystal.conftest import REPO_TEMPLATES, make_perovskite

try:
    PEROV5 = dataset_path("perov5/perov5_val.csv")
except DatasetNotFound as exc:  # the shared data folder is not beside this checkout
    pytest.skip(f"perov5 data absent: {exc}", allow_module_level=True)


@pytest.fixture(scope="module")
def scenario():
    from lab_adapters.simlab.scenarios.perov5 import Perov5

    return Perov5()


@pytest.fixture(scope="module")
def campaign():
    return load_campaign(REPO_TEMPLATES / "perovskite.yaml")


def test_scenario_speaks_the_protocol(scenario):
    assert isinstance(scenario, Scenario)
    assert set(scenario.properties) == {"heat_of_formation", "heat_of_formation_ref", "dir_gap", "ind_gap"}
    assert scenario.info()["crystals"] == 3787


def test_known_crystal_returns_its_dft_values(scenario):
    frame = pd.read_csv(PEROV5, nrows=5)
    row = frame.iloc[3]
    structure = Structure.from_str(row["cif"], fmt="cif")
    inputs = {"structure": structure.as_dict()}
    assert scenario.domain_error(inputs) is None
    out = scenario.evaluate(inputs, np.random.default_rng(0))
    assert out.ok
    assert out.values["heat_of_formation"].value == pytest.approx(row["heat_all"])
    assert out.values["ind_gap"].value == pytest.approx(row["ind_gap"])
    assert out.values["dir_gap"].units == "eV" and out.raw["material_id"] == row["material_id"]


def test_ideal_prototype_matches_the_relaxed_crystal_but_not_its_site_swap(scenario):
    # the first row of the data is CuCdN3: Cu on the A (corner) site, Cd on the B (body centre) site
    ideal = make_perovskite("Cu", "Cd", "N", lattice=4.0)
    assert scenario.domain_error({"structure": ideal.as_dict()}) is None
    assert scenario.evaluate({"structure": ideal.as_dict()}, np.random.default_rng(0)).raw["formula"] == "CuCdN3"
    swapped = make_perovskite("Cd", "Cu", "N", lattice=4.0)
    assert "none matches it" in scenario.domain_error({"structure": swapped.as_dict()})


def test_out_of_domain_and_malformed_inputs_fail_with_reasons(scenario):
    err = scenario.domain_error({"structure": make_perovskite("Cs", "Pb", "I").as_dict()})
    assert "CsPbI3 is outside the perov5 domain: no crystal of that formula" in err
    assert "pymatgen Structure dict" in scenario.domain_error({"a": 1})
    assert "not a readable pymatgen Structure" in scenario.domain_error({"structure": {"lattice": "x"}})
    failed = scenario.evaluate({"structure": make_perovskite("Cs", "Pb", "I").as_dict()}, np.random.default_rng(0))
    assert not failed.ok and "outside the perov5 domain" in failed.error


def test_template_loads_and_measures_its_objectives_with_perov5(campaign):
    m = campaign.measurement_for("ind_gap")
    assert campaign.adapters[m.adapter].type == "simlab" and m.options == {"scenario": "perov5"}
    assert campaign.measurement_for("heat_of_formation") is m


def test_template_proposals_fall_in_the_scenario_domain(campaign, scenario):
    settings = campaign.generator.substitution().model_dump()
    cands = substitution_generator(**settings).propose(campaign.space, GenerationContext(seed=0), 20)
    assert len(cands) == 20
    in_domain = [scenario.domain_error({"structure": c.structure}) is None for c in cands]
    assert all(in_domain)
