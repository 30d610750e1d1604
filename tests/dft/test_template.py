"""The dft-binaries campaign template: it validates, and its own adapter settings run a real GPAW job."""

from __future__ import annotations

from pathlib import Path

import pytest

from agent.spec import load_campaign
from lab_adapters.dft import make_dft_adapter
from lab_adapters.dft.config import dft_settings
from matloop.space import CrystalSpace
from matloop.types import JobStatus

from .dft_helpers import REPO, job_for, nacl, wait_terminal

TEMPLATE = REPO / "agent" / "templates" / "dft-binaries.yaml"


def test_template_validates_with_a_crystal_space_and_dft_settings() -> None:
    campaign = load_campaign(TEMPLATE)
    assert isinstance(campaign.space, CrystalSpace)
    assert set(campaign.space.prototypes) == {"rocksalt", "zincblende", "cesium_chloride"}
    assert campaign.space.max_atoms == 8 and campaign.batch_size == 2
    adapter = campaign.adapters["dft"]
    assert adapter.type == "local"
    settings = dft_settings(adapter)
    assert settings.recipe.code == "gpaw"
    measurement = campaign.measurement_for("formation_energy")
    assert set(measurement.properties) == {"formation_energy", "band_gap"}


@pytest.mark.gpaw
@pytest.mark.slow
def test_template_settings_compute_a_binary_for_real(gpaw: None, tmp_path: Path) -> None:
    campaign = load_campaign(TEMPLATE)
    settings = dft_settings(campaign.adapters["dft"]).model_copy(update={"work_dir": str(tmp_path)})
    adapter = make_dft_adapter("dft", campaign.adapters["dft"].type, settings)
    measurement = campaign.measurement_for("formation_energy")
    job = job_for(nacl(), measurement.properties, campaign=campaign.name, fidelity=measurement.fidelity)
    key = adapter.submit(job)
    assert wait_terminal(adapter, [key], timeout=120)[key] is JobStatus.SUCCEEDED
    result = adapter.fetch(key)
    assert -2.6 < result.properties["formation_energy"].value < -1.4
    assert result.properties["band_gap"].value > 3.0
    assert result.raw["settings"]["ecut"] == 250
