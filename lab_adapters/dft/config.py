"""A campaign's ``adapters.<name>`` entry for the DFT queue: ``type: local`` or ``type: slurm``.

The settings are :class:`lab_adapters.dft.settings.DFTSettings` (work directory, recipe, resources,
fidelities, retries, SSH) written beside ``type``; the older ``{type, settings: {...}}`` shape is
flattened by the campaign format before validation.
"""

from __future__ import annotations

from typing import Literal

from pydantic import Field

from lab_adapters.dft.settings import DFTSettings


class LocalDFTAdapter(DFTSettings):
    """DFT calculations in a pool of local processes (the embedded default)."""

    type: Literal["local"] = Field(default="local", description="run calculations as local processes")


class SlurmDFTAdapter(DFTSettings):
    """DFT calculations submitted to SLURM, here or through ``ssh_host`` on a login node."""

    type: Literal["slurm"] = Field(default="slurm", description="submit calculations with sbatch")


def dft_settings(config: LocalDFTAdapter | SlurmDFTAdapter) -> DFTSettings:
    """The plain :class:`DFTSettings` of an adapter entry (what ``make_dft_adapter`` takes)."""
    return DFTSettings.model_validate(config.model_dump(exclude={"type"}))
