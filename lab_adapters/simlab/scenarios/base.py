"""The small protocol a ground-truth scenario of the simulated lab implements.

A scenario says what it measures (properties with units), which instrument steps an
experiment goes through and how long each takes (in lab hours), whether given
inputs are inside its domain, and what an experiment on those inputs measures.
The lab does everything else (queueing, time, failures, persistence, HTTP), so a
scenario stays a few dozen lines of science.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol, runtime_checkable

import numpy as np

from matloop.types import PropertyValue


@dataclass(frozen=True)
class PropertySpec:
    """One property a scenario measures."""

    units: str
    description: str = ""


@dataclass(frozen=True)
class Step:
    """One stage of an experiment: which instrument it occupies and for how many lab hours."""

    name: str
    instrument: str
    hours: float


@dataclass(frozen=True)
class NoiseModel:
    """Measurement noise: ``std = base + relative * |value|`` (heteroscedastic when ``relative > 0``)."""

    base: float = 0.0
    relative: float = 0.0

    def std(self, value: float, scale: float = 1.0) -> float:
        return scale * (self.base + self.relative * abs(value))

    def measure(self, value: float, rng: np.random.Generator, scale: float = 1.0) -> PropertyValue:
        """A noisy reading of ``value`` with the std the instrument would report."""
        std = self.std(value, scale)
        noisy = value + (rng.normal(0.0, std) if std > 0 else 0.0)
        return PropertyValue(value=float(noisy), std=float(std), units=None)


@dataclass
class Outcome:
    """What one experiment produced: measured values, or the reason it failed."""

    values: dict[str, PropertyValue] = field(default_factory=dict)
    raw: dict[str, Any] = field(default_factory=dict)
    error: str | None = None

    @classmethod
    def failed(cls, reason: str, **raw: Any) -> Outcome:
        return cls(error=reason, raw=dict(raw))

    @property
    def ok(self) -> bool:
        return self.error is None


@runtime_checkable
class Scenario(Protocol):
    """Ground truth for the simulated lab.

    ``domain_error`` is called when an experiment is submitted: a non-None answer
    makes the experiment fail at once with that sentence (it must name the input
    and the allowed range).  ``evaluate`` is called once, when the experiment's
    last step completes; ``rng`` is seeded from the lab seed and the idempotency
    key, so a given experiment always measures the same value.  ``noise_scale``
    multiplies the scenario's own noise (0 gives noise-free answers).
    """

    name: str
    description: str
    properties: Mapping[str, PropertySpec]
    steps: Sequence[Step]

    def domain_error(self, inputs: Mapping[str, Any]) -> str | None: ...

    def evaluate(self, inputs: Mapping[str, Any], rng: np.random.Generator, noise_scale: float = 1.0) -> Outcome: ...

    def info(self) -> dict[str, Any]:
        """Extra facts for ``GET /v1/scenarios`` (inputs, emulator and its error, known optimum)."""
        ...


# --- helpers shared by scenarios over named numeric inputs -------------------------------------


def check_named_inputs(inputs: Mapping[str, Any], expected: Sequence[str]) -> str | None:
    """A sentence naming missing or unknown input names, or None when the names are exactly ``expected``."""
    missing = [n for n in expected if n not in inputs]
    unknown = [n for n in inputs if n not in expected]
    problems = []
    if missing:
        problems.append(f"missing input(s) {missing}")
    if unknown:
        problems.append(f"unknown input(s) {unknown}")
    if problems:
        return "; ".join(problems) + f" (this scenario takes {list(expected)})"
    return None


def check_numeric_box(inputs: Mapping[str, Any], bounds: Mapping[str, tuple[float, float]]) -> str | None:
    """A sentence naming the first non-numeric or out-of-range input, or None when all lie in their bounds."""
    error = check_named_inputs(inputs, list(bounds))
    if error:
        return error
    for name, (lo, hi) in bounds.items():
        value = inputs[name]
        if isinstance(value, bool) or not isinstance(value, (int, float)) or not np.isfinite(value):
            return f"input {name!r} is {value!r}, not a finite number"
        if not lo <= value <= hi:
            return f"input {name!r}={value:g} is outside the scenario's domain [{lo:g}, {hi:g}]"
    return None
