"""What a campaign file may say about its surrogate, checkable without importing torch.

``fit_surrogate`` refuses unknown kinds and settings when it runs, but that is after the initial
design's experiments: a typo in ``surrogate:`` would surface days into a campaign. The campaign
file reader (``agent.spec.components``) calls :func:`check_surrogate` when the file is read, and
``fit_surrogate`` calls the same function, so the two can never disagree.
"""

from __future__ import annotations

from typing import Any

KINDS = ("auto", "gp", "ensemble", "prior")
KERNELS = ("auto", "matern", "additive")
GP_PRIORS = ("gamma", "botorch")
SETTINGS = {"exact_gp_max_n", "num_inducing", "gp_variant", "sparse_maxiter", "cat_dims", "ensemble", "recalibrate",
            "gp_prior", "bounds", "kernel", "feature_groups"}
#: The deep ensemble's settings (``surrogate.settings.ensemble``) and their defaults.
ENSEMBLE_DEFAULTS: dict[str, Any] = {
    "n_members": 10,
    "hidden": 32,
    "layers": 2,
    "steps": None,  # None: from ``epochs``; an int fixes the number of optimiser steps
    "epochs": 80,
    "batch_size": 128,
    "lr": 1e-2,
    "weight_decay": 1e-4,
    "warmup_fraction": 0.2,
    "nll_beta": 0.0,
}


def check_surrogate(kind: str, settings: dict[str, Any]) -> None:
    """Refuse an unknown kind or setting: a typo in a campaign file must not silently change nothing."""
    if kind not in KINDS:
        raise ValueError(f"kind={kind!r}: expected one of {KINDS}")
    unknown = sorted(set(settings) - SETTINGS)
    if unknown:
        raise ValueError(f"unknown surrogate settings {unknown}; known: {sorted(SETTINGS)}")
    if settings.get("kernel") not in (None, *KERNELS):
        raise ValueError(f"surrogate setting kernel={settings['kernel']!r}: expected one of {KERNELS}")
    if settings.get("gp_variant") not in (None, "exact", "sparse"):
        raise ValueError(f"surrogate setting gp_variant={settings['gp_variant']!r}: expected 'exact' or 'sparse'")
    if settings.get("gp_prior") not in (None, *GP_PRIORS):
        raise ValueError(f"surrogate setting gp_prior={settings['gp_prior']!r}: expected one of {GP_PRIORS}")
    ensemble = settings.get("ensemble", {})
    if not isinstance(ensemble, dict) or set(ensemble) - set(ENSEMBLE_DEFAULTS):
        bad = sorted(set(ensemble) - set(ENSEMBLE_DEFAULTS)) if isinstance(ensemble, dict) else ensemble
        raise ValueError(f"unknown surrogate settings ensemble.{bad}; known: {sorted(ENSEMBLE_DEFAULTS)}")


#: Read by the loop from ``surrogate.settings`` and passed to ``fit_surrogate`` as its own argument.
LOOP_SETTINGS = ("cv_folds",)


def check_campaign_surrogate(kind: str, settings: dict[str, Any]) -> None:
    """:func:`check_surrogate` for a campaign file's ``surrogate:``, which may also set ``cv_folds``."""
    folds = settings.get("cv_folds", 5)
    if isinstance(folds, bool) or not isinstance(folds, int) or folds < 0:
        raise ValueError(f"surrogate setting cv_folds={folds!r}: expected a whole number >= 0 (< 2 skips validation)")
    check_surrogate(kind, {k: v for k, v in settings.items() if k not in LOOP_SETTINGS})
