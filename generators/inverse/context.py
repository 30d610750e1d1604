"""Reading what an inverse-design generator needs out of a :class:`GenerationContext`.

Both inverse generators learn from the campaign's measurements and aim at a target
value, so they share how those are found in the context:

* ``context.target`` — the campaign objective as a dict: ``{"property": "band_gap",
  "goal": "target", "target": 0.5, "tolerance": 0.05}``, or the loop's mapping
  ``{property: objective dict}`` (the first ``goal: target`` objective is used, else the first).  For ``maximize``/``minimize``
  goals the generator aims one standard deviation beyond the best value measured so far
  (an inverse model has to be told *which* value to invert).
* ``context.extra["measurements"]`` — the measured designs: a list of
  ``(Candidate, value)`` pairs (or ``{"candidate": ..., "value": ...}`` dicts) for the
  target property.  Failed experiments carry no value and are not passed.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np

from matloop.types import Candidate


class InverseDesignError(ValueError):
    """The context does not give an inverse generator what it needs (says what is missing)."""


def measured_pairs(extra: dict[str, Any], generator: str) -> list[tuple[Candidate, float]]:
    """The measured ``(candidate, value)`` pairs, validated; a clear error names what is wrong."""
    raw = extra.get("measurements")
    if raw is None:
        raise InverseDesignError(
            f"{generator}: context.extra['measurements'] is missing; an inverse generator learns from the "
            "campaign's measured (candidate, value) pairs"
        )
    pairs: list[tuple[Candidate, float]] = []
    for i, item in enumerate(raw):
        if isinstance(item, dict):
            cand, value = item.get("candidate"), item.get("value")
        elif isinstance(item, Sequence) and len(item) == 2:
            cand, value = item
        else:
            raise InverseDesignError(f"{generator}: measurements[{i}] is neither (candidate, value) nor a dict")
        if isinstance(cand, dict):
            cand = Candidate.model_validate(cand)
        if not isinstance(cand, Candidate):
            raise InverseDesignError(f"{generator}: measurements[{i}] has no Candidate")
        try:
            v = float(value)  # type: ignore[arg-type]
        except (TypeError, ValueError) as exc:
            raise InverseDesignError(f"{generator}: measurements[{i}] value {value!r} is not a number") from exc
        if not np.isfinite(v):
            raise InverseDesignError(f"{generator}: measurements[{i}] value is {v}")
        pairs.append((cand, v))
    return pairs


def objective(target: dict[str, Any] | None, generator: str) -> dict[str, Any]:
    """The one objective an inverse generator aims at, from either shape of ``context.target``."""
    if not target:
        raise InverseDesignError(f"{generator}: context.target is missing; inverse design needs an objective")
    if "goal" in target or "target" in target or "value" in target:
        return target
    objectives = [o for o in target.values() if isinstance(o, dict)]
    if not objectives:
        raise InverseDesignError(f"{generator}: context.target holds no objective: {target}")
    return next((o for o in objectives if o.get("goal") == "target"), objectives[0])


def target_value(target: dict[str, Any] | None, values: np.ndarray, generator: str) -> float:
    """The property value to invert for (see module docstring)."""
    target = objective(target, generator)
    goal = target.get("goal", "target")
    if goal == "target":
        value = target.get("target", target.get("value"))
        if value is None:
            raise InverseDesignError(f"{generator}: target objective has no 'target' value: {target}")
        return float(value)
    spread = float(np.std(values)) if len(values) > 1 else 1.0
    if goal == "maximize":
        return float(np.max(values)) + spread
    if goal == "minimize":
        return float(np.min(values)) - spread
    raise InverseDesignError(f"{generator}: unknown goal {goal!r} in context.target")
