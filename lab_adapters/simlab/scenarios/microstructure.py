"""Effective thermal conductivity of two-phase microstructures, by a finite-volume heat-conduction solve.

Two ways to ask for an experiment:

* ``{"image": [[0, 1, ...], ...]}`` — a square two-phase image (what the ``janus`` generator
  proposes), 8 to 256 pixels a side;
* ``{"volume_fraction": f, "length_scale": ell}`` (optionally ``"seed": s``, default 0) — the
  lab "synthesises" a Gaussian-random-field microstructure with those generation parameters (64 × 64) and
  measures it; this is the parametric face a campaign can use while ``matloop.space`` has
  no microstructure space.

Phase 0 conducts ``k0 = 1`` and phase 1 ``k1 = 10`` W/(m·K); heat flows along the columns
between two isothermal faces, the other faces insulated.  The reading carries 0.5 %
relative noise (a laser-flash instrument's typical repeatability).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import numpy as np

from lab_adapters.simlab.physics import (
    ConductionError,
    effective_conductivity,
    gaussian_random_field_microstructure,
    parallel_bound,
    series_bound,
    volume_fraction,
)
from lab_adapters.simlab.scenarios.base import NoiseModel, Outcome, PropertySpec, Step, check_numeric_box

GENERATION_BOUNDS: dict[str, tuple[float, float]] = {
    "volume_fraction": (0.05, 0.95),
    "length_scale": (1.0, 12.0),
    "seed": (0, 2**31 - 1),
}
MIN_SIZE, MAX_SIZE = 8, 256


class Microstructure:
    name = "microstructure"
    description = "effective thermal conductivity of a two-phase 2-D microstructure (finite-volume solve, k0=1, k1=10)"
    properties = {"thermal_conductivity": PropertySpec("W/(m K)", "effective conductivity across the image")}
    steps = (Step("fabrication", "printer", 2.0), Step("laser_flash", "laser_flash", 0.5))
    noise = NoiseModel(relative=0.005)
    k0, k1 = 1.0, 10.0
    size = 64

    def domain_error(self, inputs: Mapping[str, Any]) -> str | None:
        if "image" in inputs:
            if len(inputs) != 1:
                return f"an image experiment takes only 'image', got also {sorted(set(inputs) - {'image'})}"
            try:
                arr = np.asarray(inputs["image"], dtype=float)
            except (TypeError, ValueError):
                return "input 'image' is not a rectangular array of numbers"
            if arr.ndim != 2 or arr.shape[0] != arr.shape[1] or not MIN_SIZE <= arr.shape[0] <= MAX_SIZE:
                return f"input 'image' must be square, {MIN_SIZE} to {MAX_SIZE} pixels a side; got shape {arr.shape}"
            if not np.all(np.isin(arr, (0.0, 1.0))):
                return "input 'image' must hold only 0 and 1 (a two-phase microstructure)"
            return None
        bounds = {n: b for n, b in GENERATION_BOUNDS.items() if n != "seed" or "seed" in inputs}
        error = check_numeric_box(inputs, bounds)
        if error is None and "seed" in inputs and float(inputs["seed"]) != int(inputs["seed"]):
            return f"input 'seed'={inputs['seed']!r} is not an integer"
        return error

    def _image(self, inputs: Mapping[str, Any]) -> np.ndarray:
        if "image" in inputs:
            return np.asarray(inputs["image"], dtype=float)
        return gaussian_random_field_microstructure(
            self.size, float(inputs["volume_fraction"]), float(inputs["length_scale"]), int(inputs.get("seed", 0))
        )

    def evaluate(self, inputs: Mapping[str, Any], rng: np.random.Generator, noise_scale: float = 1.0) -> Outcome:
        image = self._image(inputs)
        try:
            k = effective_conductivity(image, self.k0, self.k1)
        except ConductionError as exc:
            return Outcome.failed(str(exc))
        reading = self.noise.measure(k, rng, noise_scale)
        reading.units = "W/(m K)"
        f = volume_fraction(image)
        return Outcome(
            values={"thermal_conductivity": reading},
            raw={
                "exact": k,
                "volume_fraction": f,
                "wiener_bounds": [series_bound(f, self.k0, self.k1), parallel_bound(f, self.k0, self.k1)],
                "size": int(image.shape[0]),
            },
        )

    def info(self) -> dict[str, Any]:
        return {
            "inputs": {
                "image": {"type": "image", "size": [MIN_SIZE, MAX_SIZE], "values": [0, 1]},
                **{n: {"type": "integer" if n == "seed" else "continuous", "bounds": list(b), **({"optional": True, "default": 0} if n == "seed" else {})}
                   for n, b in GENERATION_BOUNDS.items()},
            },
            "phase_conductivities": {"k0": self.k0, "k1": self.k1},
            "noise": {"base": self.noise.base, "relative": self.noise.relative},
        }


class MicrostructureCoarse(Microstructure):
    """The same experiment solved on a coarse mesh: the cheap fidelity of a two-fidelity campaign.

    The 64 × 64 microstructure is voxelised onto a 16 × 16 mesh (each 4 × 4 block takes its majority phase)
    before the same finite-volume solve: features finer than a block are lost or merged, so the answer is
    correlated with the fine mesh's but biased where the microstructure is fine-grained (small length scale),
    which is what a coarse simulation of a real microstructure does. About 16 times fewer unknowns.
    """

    name = "microstructure_coarse"
    description = "effective thermal conductivity on a coarse 16x16 mesh (majority-phase voxels of the 64x64 image)"
    block = 4

    def _image(self, inputs: Mapping[str, Any]) -> np.ndarray:
        image = super()._image(inputs)
        b = self.block if image.shape[0] % self.block == 0 and image.shape[0] >= 2 * MIN_SIZE else 1
        n = image.shape[0] // b
        means = image[: n * b, : n * b].reshape(n, b, n, b).mean(axis=(1, 3))
        return (means >= 0.5).astype(float)

    def info(self) -> dict[str, Any]:
        return {**super().info(), "mesh": f"{self.size // self.block}x{self.size // self.block} majority-phase voxels"}
