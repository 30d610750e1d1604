"""A campaign's ``adapters.<name>`` entry for the in-process MLIP instrument: ``type: mlip``.

Only settings live here (reading a campaign file must not load torch); the instrument itself is
:class:`lab_adapters.mlip.instrument.MLIPInstrument`.
"""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator


class MLIPAdapter(BaseModel):
    """Relax each candidate with an ML interatomic potential in this process and report its energies."""

    model_config = ConfigDict(extra="forbid")
    type: Literal["mlip"] = Field(default="mlip", description="the in-process MLIP instrument")
    potential: Literal["chgnet", "mace"] = Field(
        default="chgnet", description="chgnet (its weights ship with it) or mace (a model file: model_path)"
    )
    model_path: str | None = Field(default=None, description="mace: the model file")
    trust_model_file: bool = Field(
        default=False, description="mace: load a model saved whole (a pickle that can run code): trusted files only"
    )
    fmax: float = Field(default=0.1, gt=0, description="force convergence, eV/Å")
    steps: int = Field(default=200, ge=1, le=100_000, description="optimiser steps at most")
    relax_cell: bool = Field(default=True, description="relax the cell with the positions")
    optimizer: Literal["bfgs-elastic", "bfgs", "fire"] = Field(
        default="bfgs-elastic",
        description="chgnet: the batched optimiser (as the screen's mlip settings; bfgs-elastic is the fastest "
        "measured, plain bfgs can go past a saddle a symmetric cell starts on: surrogates/mlip/screen.py)",
    )
    batch_size: int = Field(
        default=32, ge=1, le=4096, description="chgnet: jobs relaxed together in one batched optimiser (1: one at a time)"
    )
    threads: int | None = Field(default=1, ge=1, description="torch threads")
    work_dir: str | None = Field(
        default=None, description="where each job's request and result are kept; default: <data dir>/mlip"
    )
    cache_dir: str | None = Field(default=None, description="elemental reference energies; default: the user cache")

    @model_validator(mode="after")
    def _mace_needs_a_file(self) -> MLIPAdapter:
        if self.potential == "mace" and not self.model_path:
            raise ValueError("potential 'mace' needs 'model_path' (a MACE model file)")
        if self.potential == "chgnet" and self.model_path:
            raise ValueError("'model_path' is for potential 'mace'; chgnet's weights ship with it")
        return self
