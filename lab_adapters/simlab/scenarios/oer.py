"""OER catalyst plates (Rohr et al., Chem. Sci. 2020): six metal loads → overpotential (V).

Each plate has its own six metals (3496: Ni Fe Co Mn Ce La; 3851: Ni Fe Co Ta Mn Cu;
3860: Sn Fe Co Ta Mn Cu; 4098: Sn Sb Co Ca Ni Mn); the input names are the plate's
column names (``ni_load`` ...), read from the data.

A composition that was measured on the plate answers the measured value plus
instrument noise; any other composition in the simplex (including grid points the
plate lacks) answers a kNN emulator fitted to the plate, whose cross-validated
error is published in ``info()``.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import numpy as np
import pandas as pd

from lab_adapters.simlab.scenarios.base import NoiseModel, Outcome, PropertySpec, Step, check_numeric_box
from lab_adapters.simlab.scenarios.emulator import KnnEmulator
from matloop.data import dataset_path

PLATES = ("3496", "3851", "3860", "4098")
#: Loads must sum to 1 within this tolerance (a robot dispenses to about 0.1 at.%).
SUM_TOLERANCE = 1e-3
#: Compositions closer than this (max-norm) to a plate row count as that row.
ON_GRID_TOLERANCE = 1e-6


class OerPlate:
    """One plate as a scenario."""

    properties = {"overpotential": PropertySpec("V", "OER overpotential at 10 mA/cm² (minimise)")}
    steps = (
        Step("ink-jet printing and calcination", "synthesis_robot", 4.0),
        Step("electrochemical screening", "electrochem_station", 1.0),
    )
    noise = NoiseModel(base=0.004, relative=0.02)

    def __init__(self, plate: str) -> None:
        if plate not in PLATES:
            raise ValueError(f"unknown OER plate {plate!r}; choose from {list(PLATES)}")
        self.name = f"oer_plate_{plate}"
        self.description = f"OER plate {plate} (Rohr et al. 2020): six metal oxide loads → overpotential"
        self.plate = plate
        frame = pd.read_csv(dataset_path(f"oer_plates/oer_plate_{plate}.csv"))
        self.loads = tuple(c for c in frame.columns if c != "overpotential")
        self._x = frame[list(self.loads)].to_numpy(dtype=float)
        self._y = frame["overpotential"].to_numpy(dtype=float)
        self._emulator = KnnEmulator(self._x, self._y, k=5, standardize=False)

    def domain_error(self, inputs: Mapping[str, Any]) -> str | None:
        error = check_numeric_box(inputs, {name: (0.0, 1.0) for name in self.loads})
        if error:
            return error
        total = sum(float(inputs[name]) for name in self.loads)
        if abs(total - 1.0) > SUM_TOLERANCE:
            return f"metal loads sum to {total:.6g}; they must sum to 1 (±{SUM_TOLERANCE:g})"
        return None

    def evaluate(self, inputs: Mapping[str, Any], rng: np.random.Generator, noise_scale: float = 1.0) -> Outcome:
        x = np.array([float(inputs[name]) for name in self.loads])
        distance = np.max(np.abs(self._x - x), axis=1)
        row = int(np.argmin(distance))
        if distance[row] <= ON_GRID_TOLERANCE:
            truth, source = float(self._y[row]), "plate"
        else:
            truth, source = float(self._emulator.predict(x)[0]), "emulator"
        reading = self.noise.measure(truth, rng, noise_scale)
        reading.units = "V"
        return Outcome(values={"overpotential": reading}, raw={"source": source})

    def info(self) -> dict[str, Any]:
        best = int(np.argmin(self._y))
        return {
            "inputs": {name: {"type": "simplex", "bounds": [0.0, 1.0]} for name in self.loads},
            "constraint": "loads sum to 1",
            "measured_compositions": len(self._y),
            "best_measured": {
                "overpotential": float(self._y[best]),
                **dict(zip(self.loads, self._x[best].tolist(), strict=True)),
            },
            "off_grid_emulator": self._emulator.describe(),
            "noise": {"base": self.noise.base, "relative": self.noise.relative},
        }


def plate_3496() -> OerPlate:
    return OerPlate("3496")


def plate_3851() -> OerPlate:
    return OerPlate("3851")


def plate_3860() -> OerPlate:
    return OerPlate("3860")


def plate_4098() -> OerPlate:
    return OerPlate("4098")
