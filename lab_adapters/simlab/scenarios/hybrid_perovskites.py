"""Hybrid organic–inorganic perovskites (Olympus): organic cation × metal × halide → HSE band gap (eV).

All 192 combinations were computed, so every in-domain request answers the
tabulated gap plus noise; an option outside the table fails naming the allowed ones.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import numpy as np
import pandas as pd

from lab_adapters.simlab.scenarios.base import NoiseModel, Outcome, PropertySpec, Step, check_named_inputs
from matloop.data import dataset_path

INPUTS = ("organic", "cation", "anion")


class HybridPerovskites:
    name = "hybrid_perovskites"
    description = "hybrid organic–inorganic perovskites: organic/cation/anion → HSE band gap"
    properties = {"hse_gap": PropertySpec("eV", "HSE06 band gap")}
    steps = (
        Step("solution synthesis and annealing", "synthesis_robot", 6.0),
        Step("optical characterisation", "characterisation_station", 1.0),
    )
    noise = NoiseModel(base=0.03, relative=0.01)

    def __init__(self) -> None:
        frame = pd.read_csv(dataset_path("hybrid_perovskites/hse_gaps.csv"))
        self._gaps = {(r.organic, r.cation, r.anion): float(r.hse_gap) for r in frame.itertuples()}
        self._options = {name: sorted(frame[name].unique().tolist()) for name in INPUTS}

    def domain_error(self, inputs: Mapping[str, Any]) -> str | None:
        error = check_named_inputs(inputs, INPUTS)
        if error:
            return error
        for name in INPUTS:
            if inputs[name] not in self._options[name]:
                return f"input {name!r}={inputs[name]!r} is not one of {self._options[name]}"
        return None

    def evaluate(self, inputs: Mapping[str, Any], rng: np.random.Generator, noise_scale: float = 1.0) -> Outcome:
        truth = self._gaps[(inputs["organic"], inputs["cation"], inputs["anion"])]
        reading = self.noise.measure(truth, rng, noise_scale)
        reading.value = max(reading.value, 0.0)
        reading.units = "eV"
        return Outcome(values={"hse_gap": reading}, raw={"source": "table"})

    def info(self) -> dict[str, Any]:
        return {
            "inputs": {name: {"type": "categorical", "options": opts} for name, opts in self._options.items()},
            "min_gap": min(self._gaps.values()),
            "noise": {"base": self.noise.base, "relative": self.noise.relative},
        }
