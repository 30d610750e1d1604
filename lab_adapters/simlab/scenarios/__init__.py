"""The registry of ground-truth scenarios the simulated lab can run.

Adding a scenario takes two steps:

1. Write a module in this folder with a class that satisfies
   :class:`~lab_adapters.simlab.scenarios.base.Scenario`: ``name``,
   ``description``, ``properties`` (name → :class:`PropertySpec` with units),
   ``steps`` (the :class:`Step` s an experiment occupies, instrument and lab hours),
   ``domain_error(inputs)`` (None, or a sentence naming the bad input and what is
   allowed), ``evaluate(inputs, rng, noise_scale)`` (an :class:`Outcome` with
   the measured :class:`~matloop.types.PropertyValue` s and their std, or
   ``Outcome.failed(reason)``) and ``info()`` (facts for ``GET /v1/scenarios``).
   Inputs arrive as the JSON object the client sent: named parameters for a
   parametric point, ``{"structure": {...}}`` (a pymatgen ``Structure.as_dict()``)
   for a crystal, ``{"image": [[...]]}`` for a microstructure.
2. Add one line to ``_REGISTRY`` below: ``"name": "module:factory"``.  The factory
   is imported and called on first use only, so a scenario that loads data or
   fits an emulator costs nothing until a lab asks for it, and a scenario whose
   data are absent fails with its own message instead of breaking the others.
"""

from __future__ import annotations

import importlib
import threading
from collections.abc import Callable

from lab_adapters.simlab.scenarios.base import NoiseModel, Outcome, PropertySpec, Scenario, Step

#: name -> "module:factory" (module relative to this package; factory called with no arguments).
_REGISTRY: dict[str, str] = {
    "oer_plate_3496": ".oer:plate_3496",
    "oer_plate_3851": ".oer:plate_3851",
    "oer_plate_3860": ".oer:plate_3860",
    "oer_plate_4098": ".oer:plate_4098",
    "hybrid_perovskites": ".hybrid_perovskites:HybridPerovskites",
    "mos2_bandgap": ".mos2:Mos2Bandgap",
    "branin": ".analytic:Branin",
    "hartmann6": ".analytic:Hartmann6",
    "perov5": ".perov5:Perov5",
    "microstructure": ".microstructure:Microstructure",
    "microstructure_coarse": ".microstructure:MicrostructureCoarse",
}

_loaded: dict[str, Scenario] = {}
_lock = threading.Lock()


class UnknownScenario(KeyError):
    """No scenario of that name is registered; the message lists the known ones."""

    def __str__(self) -> str:  # KeyError would quote the whole sentence
        return str(self.args[0])


class ScenarioUnavailable(RuntimeError):
    """A registered scenario could not be built (e.g. its data are absent); the message says why."""


def scenario_names() -> list[str]:
    """Every registered scenario, in registration order."""
    return list(_REGISTRY)


def _factory(name: str) -> Callable[[], Scenario]:
    module_name, _, attr = _REGISTRY[name].partition(":")
    module = importlib.import_module(module_name, package=__name__)
    return getattr(module, attr)


def get_scenario(name: str) -> Scenario:
    """The scenario called ``name``, built on first use and cached for the life of the process."""
    if name not in _REGISTRY:
        raise UnknownScenario(f"unknown scenario {name!r}; known scenarios: {scenario_names()}")
    with _lock:
        if name not in _loaded:
            try:
                _loaded[name] = _factory(name)()
            except (OSError, ValueError) as exc:
                raise ScenarioUnavailable(f"scenario {name!r} cannot be loaded: {exc}") from exc
        return _loaded[name]


__all__ = [
    "NoiseModel",
    "Outcome",
    "PropertySpec",
    "Scenario",
    "ScenarioUnavailable",
    "Step",
    "UnknownScenario",
    "get_scenario",
    "scenario_names",
]
