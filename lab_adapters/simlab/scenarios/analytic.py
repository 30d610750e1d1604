"""Analytic test functions with known optima, for tests and benchmarks of the controller.

Standard definitions (Surjanovic & Bingham's Virtual Library of Simulation
Experiments); both are minimised, and ``info()`` publishes the optimum so a test
can measure regret exactly.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any

import numpy as np

from lab_adapters.simlab.scenarios.base import NoiseModel, Outcome, PropertySpec, Step, check_numeric_box

_HARTMANN6_ALPHA = np.array([1.0, 1.2, 3.0, 3.2])
_HARTMANN6_A = np.array(
    [[10, 3, 17, 3.5, 1.7, 8], [0.05, 10, 17, 0.1, 8, 14], [3, 3.5, 1.7, 10, 17, 8], [17, 8, 0.05, 10, 0.1, 14]]
)
_HARTMANN6_P = 1e-4 * np.array(
    [
        [1312, 1696, 5569, 124, 8283, 5886],
        [2329, 4135, 8307, 3736, 1004, 9991],
        [2348, 1451, 3522, 2883, 3047, 6650],
        [4047, 8828, 8732, 5743, 1091, 381],
    ]
)


def branin(x1: float, x2: float) -> float:
    b, c, t = 5.1 / (4 * math.pi**2), 5 / math.pi, 1 / (8 * math.pi)
    return (x2 - b * x1**2 + c * x1 - 6) ** 2 + 10 * (1 - t) * math.cos(x1) + 10


def hartmann6(x: np.ndarray) -> float:
    inner = np.sum(_HARTMANN6_A * (np.asarray(x) - _HARTMANN6_P) ** 2, axis=1)
    return float(-np.sum(_HARTMANN6_ALPHA * np.exp(-inner)))


class _Analytic:
    """A closed-form function over a box, measured by a fast 'evaluator' instrument."""

    properties = {"y": PropertySpec("1", "function value (minimise)")}
    steps = (Step("evaluation", "evaluator", 0.1),)
    noise = NoiseModel(base=0.01)
    bounds: dict[str, tuple[float, float]] = {}
    optimum: dict[str, Any] = {}

    def domain_error(self, inputs: Mapping[str, Any]) -> str | None:
        return check_numeric_box(inputs, self.bounds)

    def _value(self, x: np.ndarray) -> float:
        raise NotImplementedError

    def evaluate(self, inputs: Mapping[str, Any], rng: np.random.Generator, noise_scale: float = 1.0) -> Outcome:
        x = np.array([float(inputs[name]) for name in self.bounds])
        reading = self.noise.measure(self._value(x), rng, noise_scale)
        reading.units = "1"
        return Outcome(values={"y": reading}, raw={"source": "closed form"})

    def info(self) -> dict[str, Any]:
        return {
            "inputs": {name: {"type": "continuous", "bounds": list(b)} for name, b in self.bounds.items()},
            "optimum": self.optimum,
            "noise": {"base": self.noise.base, "relative": self.noise.relative},
        }


class Branin(_Analytic):
    name = "branin"
    description = "Branin-Hoo function (2-D, three global minima of 0.397887)"
    bounds = {"x1": (-5.0, 10.0), "x2": (0.0, 15.0)}
    optimum = {"y": 0.397887, "at": [[-math.pi, 12.275], [math.pi, 2.275], [9.42478, 2.475]]}

    def _value(self, x: np.ndarray) -> float:
        return branin(float(x[0]), float(x[1]))


class Hartmann6(_Analytic):
    name = "hartmann6"
    description = "Hartmann function on the 6-D unit cube (global minimum -3.32237)"
    bounds = {f"x{i}": (0.0, 1.0) for i in range(1, 7)}
    optimum = {"y": -3.32237, "at": [[0.20169, 0.150011, 0.476874, 0.275332, 0.311652, 0.6573]]}

    def _value(self, x: np.ndarray) -> float:
        return hartmann6(x)
