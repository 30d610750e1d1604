"""MLIPs for real: a MACE committee trained in the test, MACE and CHGNet relaxations, hull screening."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest
from pymatgen.core import Structure

from surrogates.mlip import (
    CommitteeSettings,
    MACECommittee,
    MACERelaxer,
    MLIPScreen,
    MLIPSettings,
    RelaxResult,
    trial_structures,
)
from tests.crystal.conftest import DATA, make_perovskite


@pytest.fixture(scope="module")
def perov5_sample() -> tuple[list[Structure], np.ndarray]:
    frame = pd.read_csv(DATA / "perov5_sample.csv")
    return [Structure.from_str(c, fmt="cif") for c in frame["cif"]], frame["heat_all"].to_numpy()


@pytest.fixture(scope="module")
def committee(perov5_sample) -> MACECommittee:
    structures, energies = perov5_sample
    return MACECommittee(CommitteeSettings(n_models=3, epochs=40, seed=0)).fit(structures[:36], energies[:36])


@pytest.mark.slow
def test_committee_learns_and_its_spread_is_an_uncertainty(committee, perov5_sample):
    structures, energies = perov5_sample
    train_mean, train_std = committee.predict(structures[:36])
    test_mean, test_std = committee.predict(structures[36:])
    baseline = np.sqrt(np.mean((energies[36:] - energies[:36].mean()) ** 2))
    assert np.sqrt(np.mean((train_mean - energies[:36]) ** 2)) < 0.5 * energies[:36].std()
    assert np.sqrt(np.mean((test_mean - energies[36:]) ** 2)) < baseline  # it generalises a little
    assert np.all(train_std > 0) and np.all(np.isfinite(test_std))
    assert test_std.mean() > train_std.mean()  # members disagree more off the training data
    assert committee.predict_members(structures[36:]).shape == (3, 12)


def test_committee_refuses_unseen_elements_and_bad_data(committee):
    with pytest.raises(ValueError, match=r"elements \['Cu'\]"):
        committee.predict([make_perovskite("Cu", "Ti", "O")])
    with pytest.raises(ValueError, match="finite"):
        MACECommittee().fit([make_perovskite(), make_perovskite("Ba")], [0.1, float("nan")])
    with pytest.raises(RuntimeError, match="not been fitted"):
        MACECommittee().predict([make_perovskite()])


@pytest.mark.slow
def test_a_configured_mace_model_file_relaxes(committee, tmp_path):
    path = committee.save(tmp_path)[0]
    relaxer = MACERelaxer(path, fmax=0.2, steps=30)
    assert relaxer.name.startswith("mace-")
    result = relaxer.relax(make_perovskite("Sr", "Ti", "O", lattice=4.0))
    assert result.ok and math.isfinite(result.energy_per_atom) and result.steps >= 0
    with pytest.raises(FileNotFoundError, match="nowhere.model"):
        MACERelaxer(tmp_path / "nowhere.model")


@pytest.mark.slow
def test_chgnet_screen_on_a_consistent_hull(tmp_path):
    """SrTiO3 is stable; the same atoms with A and B swapped sit far above the hull of the same potential."""
    screen = MLIPScreen(MLIPSettings(cache_dir=str(tmp_path), fmax=0.2, steps=60))
    good = make_perovskite("Sr", "Ti", "O", lattice=4.1)
    swapped = make_perovskite("Ti", "Sr", "O", lattice=4.1)
    results = screen.screen([good, swapped])
    assert results[0].relax.ok and results[0].stable, results[0].reason
    assert results[0].stability.formation_energy_per_atom < -2.0  # SrTiO3: about -3.5 eV/atom
    assert results[0].stability.e_above_hull == 0.0
    assert not results[1].stable and "e_above_hull" in results[1].reason
    assert results[1].stability.e_above_hull > 0.5
    # elemental references were computed with the same potential and cached for next time
    cached = screen.references.path.read_text()
    assert all(f'"{el}"' in cached for el in ("Sr", "Ti", "O"))
    assert screen.references.path.name == f"elements-{screen.relaxer.name}.json"
    # a later batch sees the earlier compounds on its hull: the swapped cell alone is still above SrTiO3
    later = screen.screen([swapped])
    assert later[0].stability.e_above_hull == pytest.approx(results[1].stability.e_above_hull, abs=1e-3)


def test_relax_failure_is_a_result_not_a_crash():
    r = RelaxResult(None, None, False, 0, "boom")
    assert not r.ok and r.error == "boom"


def test_trial_structures_cover_molecules_and_solids():
    assert list(trial_structures("O")) == ["dimer"]
    assert set(trial_structures("Ti")) == {"fcc", "bcc", "hcp", "diamond"}
    dimer = trial_structures("N")["dimer"]
    assert 1.0 < dimer.get_distance(0, 1) < 1.6
