"""The simulated lab's ``microstructure`` scenario: protocol, domain checks, physics-backed readings."""

import numpy as np
import pytest

from lab_adapters.simlab.physics import layered_microstructure, parallel_bound
from lab_adapters.simlab.scenarios.base import Scenario
from lab_adapters.simlab.scenarios.microstructure import Microstructure


@pytest.fixture
def scenario():
    return Microstructure()


def test_satisfies_the_scenario_protocol(scenario):
    assert isinstance(scenario, Scenario)
    assert "thermal_conductivity" in scenario.properties
    assert scenario.info()["phase_conductivities"] == {"k0": 1.0, "k1": 10.0}


def test_image_experiment_measures_the_solver_value(scenario):
    image = layered_microstructure(16, 4, "parallel").tolist()
    assert scenario.domain_error({"image": image}) is None
    out = scenario.evaluate({"image": image}, np.random.default_rng(0), noise_scale=0.0)
    assert out.ok
    assert out.values["thermal_conductivity"].value == pytest.approx(parallel_bound(0.25))
    noisy = scenario.evaluate({"image": image}, np.random.default_rng(0))
    assert noisy.values["thermal_conductivity"].std == pytest.approx(0.005 * parallel_bound(0.25))


def test_generation_parameters_are_reproducible(scenario):
    inputs = {"volume_fraction": 0.5, "length_scale": 4.0, "seed": 3}
    assert scenario.domain_error(inputs) is None
    a = scenario.evaluate(inputs, np.random.default_rng(0), noise_scale=0.0)
    b = scenario.evaluate(inputs, np.random.default_rng(1), noise_scale=0.0)
    assert a.values["thermal_conductivity"].value == b.values["thermal_conductivity"].value
    assert a.raw["wiener_bounds"][0] < a.raw["exact"] < a.raw["wiener_bounds"][1]
    assert scenario.domain_error({"volume_fraction": 0.5, "length_scale": 4.0}) is None  # seed is optional


@pytest.mark.parametrize(
    ("inputs", "message"),
    [
        ({"image": [[0.0, 0.5]] * 2}, "square, 8 to 256"),
        ({"image": [[0.0, 1.0]] * 8}, "got shape (8, 2)"),
        ({"image": np.full((8, 8), 0.5).tolist()}, "only 0 and 1"),
        ({"image": [[0] * 8] * 8, "seed": 1}, "only 'image'"),
        ({"volume_fraction": 1.5, "length_scale": 4.0}, "'volume_fraction'=1.5 is outside"),
        ({"volume_fraction": 0.5}, "missing input"),
        ({"volume_fraction": 0.5, "length_scale": 4.0, "seed": 1.5}, "not an integer"),
    ],
)
def test_domain_errors_name_the_input(scenario, inputs, message):
    error = scenario.domain_error(inputs)
    assert error is not None and message in error
