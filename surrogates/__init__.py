"""Featurizers, Gaussian processes, deep ensembles, MLIP scorers and calibration.

The public entry points are re-exported here: ``fit_surrogate`` / ``FittedSurrogate`` /
``load_surrogate`` (``surrogates.api``) and the featurizers (``surrogates.featurize``).
"""

from surrogates.api import FittedSurrogate, fit_surrogate, load_surrogate

__all__ = ["FittedSurrogate", "fit_surrogate", "load_surrogate"]
