"""Ground truths of the simulated lab: domains, known values, emulators, and the bundled data."""

from __future__ import annotations

import filecmp
import re
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from lab_adapters.simlab.scenarios import UnknownScenario, get_scenario, scenario_names
from lab_adapters.simlab.scenarios.analytic import branin, hartmann6
from matloop.data import bundled_path, dataset_path

RNG = np.random.default_rng(0)


def test_registry_names_every_built_in_scenario_and_refuses_unknown_ones() -> None:
    assert {"oer_plate_3496", "oer_plate_3851", "oer_plate_3860", "oer_plate_4098"} <= set(scenario_names())
    assert {"hybrid_perovskites", "mos2_bandgap", "branin", "hartmann6"} <= set(scenario_names())
    with pytest.raises(UnknownScenario, match="unknown scenario 'nope'.*branin"):
        get_scenario("nope")


@pytest.mark.parametrize("plate", ["3496", "3851", "3860", "4098"])
def test_oer_on_grid_answers_the_measured_value_and_off_grid_the_emulator(plate: str) -> None:
    frame = pd.read_csv(bundled_path(f"oer_plates/oer_plate_{plate}.csv"))
    scenario = get_scenario(f"oer_plate_{plate}")
    row = frame.iloc[7]
    inputs = {name: float(row[name]) for name in frame.columns if name != "overpotential"}
    outcome = scenario.evaluate(inputs, RNG, noise_scale=0.0)
    assert outcome.raw["source"] == "plate"
    assert outcome.values["overpotential"].value == pytest.approx(row["overpotential"])
    assert outcome.values["overpotential"].units == "V"
    # Halfway between two measured compositions: off-grid, answered by the emulator within the plate's range.
    other = frame.iloc[8]
    halfway = {name: (inputs[name] + float(other[name])) / 2 for name in inputs}
    emulated = scenario.evaluate(halfway, RNG, noise_scale=0.0)
    assert emulated.raw["source"] == "emulator"
    assert frame["overpotential"].min() <= emulated.values["overpotential"].value <= frame["overpotential"].max()
    # The emulator's cross-validated error is published, and is small against the plate's spread.
    error = scenario.info()["off_grid_emulator"]
    assert 0 < error["cv_rmse"] < frame["overpotential"].std()


def test_oer_noise_is_heteroscedastic_and_reported_as_std() -> None:
    scenario = get_scenario("oer_plate_3496")
    inputs = {"ni_load": 0.1, "fe_load": 0.2, "co_load": 0.6, "mn_load": 0.1, "ce_load": 0.0, "la_load": 0.0}
    readings = [scenario.evaluate(inputs, np.random.default_rng(i)).values["overpotential"] for i in range(400)]
    values = np.array([r.value for r in readings])
    assert readings[0].std == pytest.approx(0.004 + 0.02 * 0.396193, rel=1e-3)
    assert np.std(values) == pytest.approx(readings[0].std, rel=0.2)
    assert scenario.noise.std(0.7) > scenario.noise.std(0.35)


@pytest.mark.parametrize(
    ("inputs", "message"),
    [
        ({"ni_load": 0.5, "fe_load": 0.5, "co_load": 0.5, "mn_load": 0, "ce_load": 0, "la_load": 0}, "sum to 1.5"),
        ({"ni_load": 1.0, "fe_load": 0, "co_load": 0, "mn_load": 0, "ce_load": 0}, "missing input.*la_load"),
        (
            {"ni_load": 1.2, "fe_load": -0.2, "co_load": 0, "mn_load": 0, "ce_load": 0, "la_load": 0},
            "'ni_load'=1.2 is outside",
        ),
        ({"ni_load": "a", "fe_load": 0, "co_load": 0, "mn_load": 0, "ce_load": 0, "la_load": 1}, "not a finite number"),
        (
            {"ni_load": 1, "fe_load": 0, "co_load": 0, "mn_load": 0, "ce_load": 0, "la_load": 0, "pt": 0},
            "unknown input.*pt",
        ),
    ],
)
def test_oer_domain_errors_name_the_input(inputs: dict, message: str) -> None:
    error = get_scenario("oer_plate_3496").domain_error(inputs)
    assert error is not None
    assert re.search(message, error), error


def test_hybrid_perovskites_answers_the_table_and_names_allowed_options() -> None:
    scenario = get_scenario("hybrid_perovskites")
    outcome = scenario.evaluate({"organic": "ethylammonium", "cation": "Ge", "anion": "F"}, RNG, noise_scale=0.0)
    assert outcome.values["hse_gap"].value == pytest.approx(5.3704)
    error = scenario.domain_error({"organic": "ethylammonium", "cation": "Cu", "anion": "F"})
    assert error is not None and "'cation'='Cu'" in error and "Pb" in error


def test_analytic_functions_reach_their_published_optima() -> None:
    assert branin(np.pi, 2.275) == pytest.approx(0.397887, abs=1e-6)
    assert hartmann6(np.array([0.20169, 0.150011, 0.476874, 0.275332, 0.311652, 0.6573])) == pytest.approx(
        -3.32237, abs=1e-5
    )
    assert get_scenario("branin").domain_error({"x1": 11.0, "x2": 0.0}) == (
        "input 'x1'=11 is outside the scenario's domain [-5, 10]"
    )


def test_mos2_emulator_fits_the_dft_data(shared_data: Path) -> None:
    scenario = get_scenario("mos2_bandgap")
    x = pd.read_csv(shared_data / "mos2_bandgap" / "data_x.csv", header=None).to_numpy()
    y = pd.read_csv(shared_data / "mos2_bandgap" / "data_y.csv", header=None).to_numpy().ravel()
    names = ["a", "b", "c", "alpha", "beta", "gamma", "e_field"]
    gapped = int(np.argmax(y))
    outcome = scenario.evaluate(dict(zip(names, x[gapped].tolist(), strict=True)), RNG, noise_scale=0.0)
    assert outcome.values["band_gap"].value == pytest.approx(
        y[gapped], abs=1e-6
    )  # a training point is its own neighbour
    info = scenario.info()
    assert 0 < info["emulator"]["cv_mae"] < np.std(y)
    assert "outside the scenario's domain" in scenario.domain_error({**dict.fromkeys(names, 0.0)})


def test_bundled_copies_are_the_shared_files(shared_data: Path) -> None:
    for relative in [f"oer_plates/oer_plate_{p}.csv" for p in ("3496", "3851", "3860", "4098")] + [
        "oer_plates/LICENSE",
        "hybrid_perovskites/hse_gaps.csv",
        "hybrid_perovskites/LICENSE",
    ]:
        assert filecmp.cmp(bundled_path(relative), shared_data / relative, shallow=False), relative
    assert dataset_path("mos2_bandgap/data_y.csv") == shared_data / "mos2_bandgap" / "data_y.csv"
