"""An example matloop generator plug-in (see docs/plugins.md): uniform random points in a parametric space.

The entry point (``matloop.generators`` → ``example-random``) is :func:`make_generator`; its
``config_model`` attribute tells matloop to validate the campaign's ``settings`` with
:class:`ExampleSettings` first, so a misspelt setting is refused with the file, by name.
"""

from __future__ import annotations

from typing import Any

import numpy as np
from pydantic import BaseModel, ConfigDict, Field

from generators.base import GenerationContext
from matloop.space import CategoricalParameter, IntegerParameter, ParametricSpace
from matloop.types import Candidate


class ExampleSettings(BaseModel):
    """The plug-in's own settings (``generator.settings`` in a campaign file)."""

    model_config = ConfigDict(extra="forbid")
    size: int = Field(default=64, ge=1, description="points drawn per iteration")


class RandomBoxGenerator:
    """Random points in the box of a parametric space, deterministic in the context's seed."""

    name = "example-random"

    def __init__(self, settings: ExampleSettings) -> None:
        self.settings = settings

    def propose(self, space: Any, context: GenerationContext, n: int) -> list[Candidate]:
        if not isinstance(space, ParametricSpace):
            raise ValueError(f"example-random needs a parametric space, not {type(space).__name__}")
        rng = np.random.default_rng(context.seed)
        out: list[Candidate] = []
        for _ in range(min(n, self.settings.size) * 4):
            params: dict[str, Any] = {}
            for p in space.parameters:
                if isinstance(p, CategoricalParameter):
                    params[p.name] = p.options[int(rng.integers(len(p.options)))]
                elif isinstance(p, IntegerParameter):
                    params[p.name] = int(rng.integers(int(p.bounds[0]), int(p.bounds[1]) + 1))
                else:
                    low, high = p.bounds
                    value = float(rng.uniform(low, high))
                    if p.step is not None:
                        value = min(round(low + round((value - low) / p.step) * p.step, 10), high)
                    params[p.name] = value
            if space.violations(params):
                continue
            candidate = Candidate.point(params, origin=self.name)
            if candidate.fingerprint in context.known_fingerprints:
                continue
            out.append(candidate)
            if len(out) >= min(n, self.settings.size):
                break
        return out


def make_generator(settings: ExampleSettings) -> RandomBoxGenerator:
    """The entry point's object: called with the validated settings model."""
    return RandomBoxGenerator(settings)


make_generator.config_model = ExampleSettings  # type: ignore[attr-defined]
