"""The simulated autonomous lab: an HTTP service (``server``), its client adapter (``client``),
an in-process starter for demos and tests (``inprocess``) and its ground truths (``scenarios``).

Imports are lazy so that ``lab_adapters.simlab.physics`` and the scenarios can be used
without loading FastAPI or httpx.
"""

from __future__ import annotations

from typing import Any

_EXPORTS = {
    "SimLabAdapter": "lab_adapters.simlab.client",
    "SimLabHandle": "lab_adapters.simlab.inprocess",
    "running_simlab": "lab_adapters.simlab.inprocess",
    "LabConfig": "lab_adapters.simlab.lab",
    "create_app": "lab_adapters.simlab.server",
}


def __getattr__(name: str) -> Any:
    if name in _EXPORTS:
        import importlib

        return getattr(importlib.import_module(_EXPORTS[name]), name)
    raise AttributeError(f"module 'lab_adapters.simlab' has no attribute {name!r}")


__all__ = list(_EXPORTS)
