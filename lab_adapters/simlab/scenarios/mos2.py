"""Strained monolayer MoS2 under an out-of-plane field (MatDesINNe DFT data) → band gap (eV).

Every answer comes from a kNN emulator fitted to the 10,798 DFT (PBE) points at
first use (well under a second; cached for the life of the lab process).  The
domain is the box the DFT data spans; the emulator's cross-validated error is in
``info()``.  The data are not bundled (too large): they are read from the shared
data folder, and the scenario says so plainly when it is absent.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import numpy as np
import pandas as pd

from lab_adapters.simlab.scenarios.base import NoiseModel, Outcome, PropertySpec, Step, check_numeric_box
from lab_adapters.simlab.scenarios.emulator import KnnEmulator
from matloop.data import dataset_path

INPUTS = ("a", "b", "c", "alpha", "beta", "gamma", "e_field")
UNITS = {"a": "Å", "b": "Å", "c": "Å", "alpha": "deg", "beta": "deg", "gamma": "deg", "e_field": "V/Å"}


class Mos2Bandgap:
    name = "mos2_bandgap"
    description = "strained monolayer MoS2 in an electric field (DFT, MatDesINNe): lattice + field → band gap"
    properties = {"band_gap": PropertySpec("eV", "PBE band gap; 0 for metallic cells")}
    steps = (Step("DFT relaxation and band structure", "dft_cluster", 2.0),)
    noise = NoiseModel(base=0.01, relative=0.0)

    def __init__(self) -> None:
        x = pd.read_csv(dataset_path("mos2_bandgap/data_x.csv"), header=None).to_numpy(dtype=float)
        y = pd.read_csv(dataset_path("mos2_bandgap/data_y.csv"), header=None).to_numpy(dtype=float).ravel()
        if x.shape != (len(y), len(INPUTS)):
            raise ValueError(f"MoS2 data has shape {x.shape} for {len(y)} gaps; expected {len(INPUTS)} columns")
        self._bounds = {name: (float(x[:, i].min()), float(x[:, i].max())) for i, name in enumerate(INPUTS)}
        self._emulator = KnnEmulator(x, y, k=5, standardize=True)
        self._metallic_share = float(np.mean(y == 0))

    def domain_error(self, inputs: Mapping[str, Any]) -> str | None:
        return check_numeric_box(inputs, self._bounds)

    def evaluate(self, inputs: Mapping[str, Any], rng: np.random.Generator, noise_scale: float = 1.0) -> Outcome:
        x = np.array([float(inputs[name]) for name in INPUTS])
        truth = max(float(self._emulator.predict(x)[0]), 0.0)
        reading = self.noise.measure(truth, rng, noise_scale)
        reading.value = max(reading.value, 0.0)  # a gap is never negative
        reading.units = "eV"
        return Outcome(values={"band_gap": reading}, raw={"source": "emulator"})

    def info(self) -> dict[str, Any]:
        return {
            "inputs": {
                name: {"type": "continuous", "bounds": list(bounds), "units": UNITS[name]}
                for name, bounds in self._bounds.items()
            },
            "emulator": self._emulator.describe(),
            "metallic_share_of_data": round(self._metallic_share, 3),
            "noise": {"base": self.noise.base, "relative": self.noise.relative},
        }
