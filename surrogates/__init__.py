"""Featurizers, Gaussian processes, deep ensembles, MLIP scorers and calibration.

The public entry points are re-exported here: ``fit_surrogate`` / ``FittedSurrogate`` /
``load_surrogate`` (``surrogates.api``) and the featurizers (``surrogates.featurize``).
They are imported on first use, so that ``surrogates.config`` (what the campaign-file reader
reads) can be imported without torch.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from surrogates.api import FittedSurrogate, fit_surrogate, load_surrogate

__all__ = ["FittedSurrogate", "fit_surrogate", "load_surrogate"]


def __getattr__(name: str) -> Any:
    if name in __all__:
        from surrogates import api

        return getattr(api, name)
    raise AttributeError(f"module 'surrogates' has no attribute {name!r}")
