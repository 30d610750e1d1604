"""What a campaign file may say about its surrogate: one typed model per ``surrogate.type``, without torch.

``fit_surrogate`` refuses unknown kinds and settings when it runs, but that is after the initial
design's experiments: a typo in ``surrogate:`` would surface days into a campaign. The campaign
format uses :data:`SurrogateConfig` (so the file reader refuses a typo with its line, and the Prefect
run form shows the fields), and ``fit_surrogate`` checks its ``settings`` dict with :class:`SurrogateSettings`
(every setting of every kind), so the two can never disagree on a setting's name or range.

Settings whose default is ``None`` leave the choice to the model code (e.g. ``gp_variant: None`` picks
exact or sparse by the number of rows); :meth:`SurrogateSettings.fit_settings` passes only the settings
that differ from "let the model decide", so a campaign fits exactly as it did with a ``settings`` dict.
"""

from __future__ import annotations

from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from matloop.config import UnknownTypeError, flatten_settings

KINDS = ("auto", "gp", "ensemble", "prior")
KERNELS = ("auto", "matern", "additive")
GP_PRIORS = ("gamma", "botorch")
#: Mirrors ``surrogates.gp``'s constants (that module imports torch).
EXACT_GP_MAX_N = 1000
NUM_INDUCING = 256
SPARSE_MAXITER = 200

STRICT = ConfigDict(extra="forbid")


class EnsembleSettings(BaseModel):
    """The deep ensemble (``surrogates.ensemble``)."""

    model_config = STRICT
    n_members: int = Field(default=10, ge=1, description="networks in the ensemble")
    hidden: int = Field(default=32, ge=1, description="hidden width")
    layers: int = Field(default=2, ge=1, description="hidden layers")
    steps: int | None = Field(default=None, ge=1, description="optimiser steps; none: from epochs")
    epochs: int = Field(default=80, ge=1, description="passes over the data (when steps is none)")
    batch_size: int = Field(default=128, ge=1, description="batch size")
    lr: float = Field(default=1e-2, gt=0, description="learning rate")
    weight_decay: float = Field(default=1e-4, ge=0, description="weight decay")
    warmup_fraction: float = Field(default=0.2, ge=0, le=1, description="share of steps with a rising learning rate")
    nll_beta: float = Field(default=0.0, ge=0, le=1, description="β-NLL weighting (0: plain Gaussian NLL)")


#: The deep ensemble's settings and their defaults (``surrogates.ensemble`` fills missing ones from these).
ENSEMBLE_DEFAULTS: dict[str, Any] = EnsembleSettings().model_dump()


class _Common(BaseModel):
    model_config = STRICT
    cv_folds: int = Field(default=5, ge=0, description="cross-validation folds (< 2 skips validation and recalibration)")
    recalibrate: bool = Field(default=True, description="rescale the predicted spread to the cross-validated errors")

    def fit_settings(self) -> dict[str, Any]:
        """The ``settings`` dict ``fit_surrogate`` takes: every field but ``type``, ``cv_folds`` and unset choices."""
        return self.model_dump(exclude={"type", "cv_folds"}, exclude_none=True)


class _GPFields(BaseModel):
    exact_gp_max_n: int = Field(default=EXACT_GP_MAX_N, ge=1, description="above this many rows: the sparse GP")
    num_inducing: int = Field(default=NUM_INDUCING, ge=1, description="inducing points of the sparse GP")
    gp_variant: Literal["exact", "sparse"] | None = Field(default=None, description="force a GP variant; none: by rows")
    sparse_maxiter: int = Field(default=SPARSE_MAXITER, ge=1, description="optimiser iterations of the sparse GP")
    gp_prior: Literal["gamma", "botorch"] = Field(default="gamma", description="hyperparameter priors of the exact GP")
    kernel: Literal["auto", "matern", "additive"] = Field(
        default="auto", description="matern, additive over parameters, or auto (additive where it fits)"
    )
    cat_dims: list[int] = Field(default_factory=list, description="one-hot columns for a mixed GP")
    bounds: list[list[float]] | Literal["data"] | None = Field(
        default=None, description="2 x d known input bounds; none: the space's"
    )
    feature_groups: list[list[int]] | None = Field(
        default=None, description="each design parameter's feature columns; none: the featurizer's"
    )


class _EnsembleFields(BaseModel):
    ensemble: EnsembleSettings = Field(default_factory=EnsembleSettings, description="the deep ensemble")


class AutoSurrogate(_Common, _GPFields, _EnsembleFields):
    """The GP or the deep ensemble, whichever has the better cross-validated NLL per property."""

    type: Literal["auto"] = Field(default="auto", description="which surrogate")


class GPSurrogate(_Common, _GPFields):
    """A Gaussian process per property (exact up to ``exact_gp_max_n`` rows, sparse above)."""

    type: Literal["gp"] = Field(default="gp", description="which surrogate")


class EnsembleSurrogate(_Common, _EnsembleFields):
    """A deep ensemble of small MLPs per property."""

    type: Literal["ensemble"] = Field(default="ensemble", description="which surrogate")


class PriorSurrogate(_Common):
    """No model: the prior (for tests and baselines)."""

    type: Literal["prior"] = Field(default="prior", description="which surrogate")


SurrogateConfig = Annotated[
    AutoSurrogate | GPSurrogate | EnsembleSurrogate | PriorSurrogate,
    Field(discriminator="type", description="the model fitted to the results"),
]


class SurrogateSettings(_GPFields, _EnsembleFields):
    """Every setting ``fit_surrogate`` takes, whatever the kind (a dict from code, checked)."""

    model_config = STRICT
    recalibrate: bool = Field(default=True, description="rescale the predicted spread to the cross-validated errors")


def check_surrogate(kind: str, settings: dict[str, Any]) -> None:
    """Refuse an unknown kind or setting: a typo must not silently change nothing (one sentence, no traceback)."""
    if kind not in KINDS:
        raise ValueError(f"kind={kind!r}: expected one of {KINDS}")
    try:
        SurrogateSettings.model_validate(settings)
    except ValidationError as exc:
        raise ValueError(_sentence(exc)) from None


def _sentence(exc: ValidationError) -> str:
    """The first problem in the words the loop has always used (unknown names first, then a bad value)."""
    errors = exc.errors()
    unknown = sorted(str(e["loc"][0]) for e in errors if e["type"] == "extra_forbidden" and len(e["loc"]) == 1)
    if unknown:
        return f"unknown surrogate settings {unknown}; known: {sorted(SurrogateSettings.model_fields)}"
    nested = sorted(str(e["loc"][-1]) for e in errors if e["type"] == "extra_forbidden")
    if nested:
        return f"unknown surrogate settings ensemble.{nested}; known: {sorted(EnsembleSettings.model_fields)}"
    e = errors[0]
    where = ".".join(str(p) for p in e["loc"])
    return f"surrogate setting {where}={e['input']!r}: {e['msg']}"


def normalise_surrogate(value: Any) -> Any:
    """The raw ``surrogate:`` mapping in the typed shape: missing ``type`` is ``auto``; ``settings`` is flattened."""
    if value is None:
        return {"type": "auto"}
    if not isinstance(value, dict):
        return value
    value = dict(value)
    kind = value.setdefault("type", "auto")
    if isinstance(kind, str) and kind not in KINDS:
        raise UnknownTypeError(f"unknown surrogate {kind!r}; use one of {', '.join(KINDS)}")
    flatten_settings(value)
    return value
