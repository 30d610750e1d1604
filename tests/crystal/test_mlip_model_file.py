"""MLIP model files from a campaign are untrusted: weights load with weights_only=True, pickles only when trusted."""

from __future__ import annotations

import pickle
from pathlib import Path

import pytest
import torch

from surrogates.mlip import MACERelaxer, MLIPSettings
from surrogates.mlip.model_file import (
    WEIGHTS_FORMAT,
    ModelFileError,
    build_mace,
    load_mace_model,
    save_mace_weights,
)
from tests.crystal.conftest import make_perovskite

TINY = {
    "r_max": 4.0, "num_bessel": 4, "num_polynomial_cutoff": 5, "max_ell": 1,
    "interaction": "RealAgnosticResidualInteractionBlock", "num_interactions": 1,
    "hidden_irreps": "4x0e", "MLP_irreps": "4x0e", "atomic_energies": [-1.0, -2.0, -3.0],
    "avg_num_neighbors": 8.0, "atomic_numbers": [8, 22, 38], "correlation": 2, "gate": "silu",
}


class _RunsCode:
    """What a hostile model file holds: unpickling it calls a function of the file's choosing."""

    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self):
        return (Path.touch, (self.marker,))


@pytest.fixture(scope="module")
def tiny() -> torch.nn.Module:
    torch.manual_seed(0)
    return build_mace(TINY).eval()


def _same_parameters(a: torch.nn.Module, b: torch.nn.Module) -> bool:
    sa, sb = a.state_dict(), b.state_dict()
    return sa.keys() == sb.keys() and all(torch.equal(sa[k], sb[k]) for k in sa)


def test_a_weights_file_loads_with_weights_only_and_relaxes(tiny, tmp_path: Path) -> None:
    path = save_mace_weights(tiny, TINY, tmp_path / "tiny.model")
    assert torch.load(path, weights_only=True)["format"] == WEIGHTS_FORMAT  # no pickled objects in it
    assert _same_parameters(load_mace_model(path), tiny)
    relaxer = MACERelaxer(path, fmax=0.5, steps=2)  # no trust setting needed
    result = relaxer.relax(make_perovskite("Sr", "Ti", "O", lattice=4.0))
    assert result.error is None and result.energy_per_atom is not None


def test_a_model_saved_whole_is_refused_without_trust_and_loads_with_it(tiny, tmp_path: Path) -> None:
    path = tmp_path / "whole.model"
    torch.save(tiny, path)
    with pytest.raises(ModelFileError, match=r"is a pickled Python object .* set `trust_model_file: true` in the MLIP"):
        load_mace_model(path)
    with pytest.raises(ModelFileError, match="trust_model_file: true"):
        MACERelaxer(path)
    assert _same_parameters(load_mace_model(path, trust_model_file=True), tiny)
    settings = MLIPSettings.model_validate({"model_path": str(path), "trust_model_file": True})
    assert settings.trust_model_file and not MLIPSettings().trust_model_file


def test_a_hostile_pickle_runs_nothing_without_trust(tmp_path: Path) -> None:
    marker = tmp_path / "ran"
    path = tmp_path / "hostile.model"
    torch.save({"model": _RunsCode(marker)}, path, pickle_module=pickle)
    with pytest.raises(ModelFileError, match="trust_model_file"):
        load_mace_model(path)
    assert not marker.exists()
    with pytest.raises(ModelFileError, match="holds neither a model"):  # trusted, it does run: hence the setting
        load_mace_model(path, trust_model_file=True)
    assert marker.exists()


@pytest.mark.parametrize(
    ("content", "message"),
    [
        (b"not a torch file at all", "cannot be read"),
        ({"layer.weight": torch.zeros(2)}, "a bare state_dict cannot be used"),
        ({"format": WEIGHTS_FORMAT, "config": {**TINY, "gate": "os.system"}, "state_dict": {}}, "not one matloop builds"),
        ({"format": WEIGHTS_FORMAT, "config": {"r_max": 4.0}, "state_dict": {}}, "does not fit its own configuration"),
        ({"format": WEIGHTS_FORMAT, "config": TINY, "state_dict": {"x": torch.zeros(1)}}, "does not fit its own"),
    ],
)
def test_an_unusable_model_file_is_one_sentence(tmp_path: Path, content, message: str) -> None:
    path = tmp_path / "bad.model"
    if isinstance(content, bytes):
        path.write_bytes(content)
    else:
        torch.save(content, path)
    with pytest.raises(ModelFileError, match=message) as caught:
        load_mace_model(path, trust_model_file=True)
    assert "\n" not in str(caught.value) and str(path) in str(caught.value)
