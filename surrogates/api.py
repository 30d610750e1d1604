"""``fit_surrogate``: one call from featurized data to a calibrated BoTorch model, with its metrics.

Every output column (one per campaign property) gets its own single-output model,
fitted on the rows where that property was measured: properties are often measured
on different subsets (a failed synthesis has no band gap but does count for
feasibility), and independent per-output models are what BoTorch's ``ModelList``
composes. Each fit runs k-fold cross-validation, stores the metrics, and maps the
predictive std through the recalibration (identity, one scale or a power map) that
gives the best cross-fitted NLL on those CV predictions (``calibration.py``).

``kind="auto"`` cross-validates both a GP and a deep ensemble and keeps the one
with the lower summed NLL; the reason string records both numbers.

The cross-validation is what a re-deciding fit spends its time on, so it does each kind's work once where it
can: an exact GP is fitted on every row once (the final model, too), and each fold is that GP conditioned on
the fold's training rows with its hyperparameters (Ax's default, ``refit_on_cv=False``: one hyperparameter
optimisation per output instead of one per fold); the ensemble's folds are trained from scratch on their own
rows (fine-tuning full-data members would have seen the held-out rows and flatter the ensemble's cv-NLL), all
folds' members in one batched module (``ensemble.fit_ensemble_folds``).
"""

from __future__ import annotations

import hashlib
import math
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
from botorch.models.model import Model, ModelList
from torch import Tensor

from surrogates import reuse
from surrogates.calibration import PriorModel, RecalibratedModel, StdMap, fit_recalibration, regression_metrics
from surrogates.config import check_surrogate
from surrogates.ensemble import DeepEnsemble, fit_ensemble, fit_ensemble_folds, rebuild_ensemble
from surrogates.gp import build_gp, fit_gp, gp_on_rows, gp_variant, hyperparameters, rebuild_gp
from surrogates.threads import one_thread_up_to

FORMAT = "matloop-surrogate/1"
#: Fits on up to this many rows run on one torch thread (measured up to 200: 5-20x faster on a busy box).
ONE_THREAD_MAX_N = 500
METRIC_KEYS = ("n", "rmse", "mae", "r2", "nll", "cov68", "cov95", "spearman_err_std")

Fitter = Callable[[Tensor, Tensor, Tensor | None, int, dict[str, Any]], tuple[Model, dict]]
FITTERS: dict[str, Fitter] = {"gp": fit_gp, "ensemble": fit_ensemble}


@dataclass
class OutputModel:
    """One output column's fitted model and everything needed to rebuild it."""

    kind: str  # "gp" | "ensemble" | "prior"
    base: Model
    recipe: dict[str, Any]
    recalibration: StdMap
    X: Tensor
    y: Tensor
    yvar: Tensor | None

    @property
    def model(self) -> Model:
        return self.base if self.recalibration.is_identity else RecalibratedModel(self.base, self.recalibration)


@dataclass
class FittedSurrogate:
    """A fitted surrogate: the BoTorch model plus why it was chosen and how well it cross-validated.

    ``metrics`` maps each output column index (as ``str``) to cross-validated
    ``n, rmse, mae, r2, nll, cov68, cov95, spearman_err_std`` (after recalibration;
    ``*_raw`` before it; the map's ``variance_scale`` (a), ``std_power`` (b) and
    ``std_sigma0``). The recalibrated numbers are cross-fitted (the map scored on CV
    predictions it was not fitted on). Outputs without a model (prior) have NaNs.
    ``is_prior`` is True when any output has learned nothing (fewer than two points or a
    constant target; see ``prior_outputs``): the controller should then fill space.
    """

    model: Model
    kind: str
    reason: str
    metrics: dict[str, dict[str, float]]
    training_hash: str
    n_train: int
    excluded_rows: list[int]
    is_prior: bool
    prior_outputs: list[int] = field(default_factory=list)
    excluded_by_output: dict[str, list[int]] = field(default_factory=dict)
    outputs: list[OutputModel] = field(default_factory=list, repr=False)
    #: what the next fit may start from (``surrogates.reuse``): plain JSON, stored with the model version
    memo: dict[str, Any] = field(default_factory=dict, repr=False)

    @property
    def num_outputs(self) -> int:
        return len(self.outputs)

    def predict(self, X: Tensor, observation_noise: bool = False) -> tuple[Tensor, Tensor]:
        """Posterior mean and variance, each ``(n, num_outputs)``, without gradients."""
        means, variances = [], []
        with torch.no_grad():
            for out in self.outputs:
                mean, var = _predict(out.model, X, observation_noise)
                means.append(mean)
                variances.append(var)
        return torch.stack(means, dim=-1), torch.stack(variances, dim=-1)

    def marginal_moments(self, X: Tensor) -> tuple[Tensor, Tensor]:
        """Posterior mean and variance of the latent function, each ``(n, num_outputs)``, fast on large ``X``.

        Equal to ``model.posterior(X).mean`` / ``.variance`` per row, except that an exact GP with more than
        ``surrogates.moments.VARIANCE_RANK`` training points may over-state the variance (see
        :mod:`surrogates.moments`); what selection pre-screens whole pools with.
        """
        from surrogates.moments import marginal_moments

        return marginal_moments(self.model, X)

    def save(self, path: str | Path) -> None:
        """Write state dicts, training data, metrics and hash to one ``torch.save`` file."""
        payload = {
            "format": FORMAT,
            "kind": self.kind,
            "reason": self.reason,
            "metrics": self.metrics,
            "training_hash": self.training_hash,
            "n_train": self.n_train,
            "excluded_rows": self.excluded_rows,
            "excluded_by_output": self.excluded_by_output,
            "is_prior": self.is_prior,
            "prior_outputs": self.prior_outputs,
            "outputs": [
                {
                    "kind": o.kind,
                    "recipe": o.recipe,
                    "recalibration": o.recalibration.as_dict(),
                    "X": o.X,
                    "y": o.y,
                    "yvar": o.yvar,
                    "state": o.base.state_dict(),
                }
                for o in self.outputs
            ],
        }
        torch.save(payload, Path(path))


def load_surrogate(path: str | Path) -> FittedSurrogate:
    """Rebuild a saved surrogate; its predictions equal the saved one's."""
    payload = torch.load(Path(path), weights_only=True)
    if not isinstance(payload, dict) or payload.get("format") != FORMAT:
        raise ValueError(f"{path} is not a saved matloop surrogate ({FORMAT})")
    outputs = []
    for o in payload["outputs"]:
        if o["kind"] == "gp":
            base = rebuild_gp(o["X"], o["y"], o["yvar"], o["recipe"], o["state"])
        elif o["kind"] == "ensemble":
            base = rebuild_ensemble(o["X"], o["recipe"], o["state"])
        else:
            base = PriorModel()
            base.load_state_dict(o["state"])
        if "recalibration" in o:
            std_map = StdMap.from_dict(o["recalibration"])
        else:  # files written before the power map stored one std scale
            std_map = StdMap() if float(o["scale"]) == 1.0 else StdMap("scale", float(o["scale"]), 1.0, 1.0)
        outputs.append(OutputModel(o["kind"], base, o["recipe"], std_map, o["X"], o["y"], o["yvar"]))
    return FittedSurrogate(
        model=_combine(outputs),
        kind=payload["kind"],
        reason=payload["reason"],
        metrics=payload["metrics"],
        training_hash=payload["training_hash"],
        n_train=payload["n_train"],
        excluded_rows=payload["excluded_rows"],
        is_prior=payload["is_prior"],
        prior_outputs=payload["prior_outputs"],
        excluded_by_output=payload["excluded_by_output"],
        outputs=outputs,
    )


def training_hash(X: Tensor, Y: Tensor, Yvar: Tensor | None) -> str:
    """SHA-256 over the exact training tensors (shape, dtype and bytes), so a model names its data."""
    h = hashlib.sha256()
    for t in (X, Y, Yvar):
        if t is None:
            h.update(b"none")
            continue
        t = t.detach().to(torch.double).contiguous().cpu()
        h.update(str(tuple(t.shape)).encode())
        h.update(t.numpy().tobytes())
    return h.hexdigest()


def fit_surrogate(
    X: Tensor,
    Y: Tensor,
    Yvar: Tensor | None = None,
    *,
    kind: str = "auto",
    seed: int = 0,
    cv_folds: int = 5,
    settings: dict[str, Any] | None = None,
    memo: dict[str, Any] | None = None,
) -> FittedSurrogate:
    """Fit one model per column of ``Y`` on featurized ``X``, cross-validate, recalibrate.

    ``settings``: ``exact_gp_max_n``, ``num_inducing``, ``gp_variant`` ("exact"/"sparse"),
    ``gp_prior`` ("gamma"/"botorch"), ``bounds`` (2 x d known input bounds; see ``gp.py``),
    ``kernel`` ("auto"/"matern"/"additive") and ``feature_groups`` (each design parameter's columns; see ``gp.py``),
    ``cat_dims`` (one-hot columns for a mixed GP), ``ensemble`` (dict, see
    ``ensemble.DEFAULTS``), ``recalibrate`` (default True). ``cv_folds < 2`` skips CV
    (no metrics, no recalibration; ``auto`` then picks the GP).

    ``memo`` is the previous fit's ``FittedSurrogate.memo`` (or ``None``): the verdict (kind, recalibration,
    metrics) and the GP's hyperparameters are reused or warm-started from it while the data has not grown
    enough to change them (``surrogates.reuse``); the reason says which, and why.
    """
    # up to a few hundred rows every tensor is small: extra torch threads only add synchronisation
    # (surrogates/threads.py); larger fits were not measured and keep torch's threads
    with one_thread_up_to(X.shape[0], ONE_THREAD_MAX_N):
        return _fit_surrogate(X, Y, Yvar, kind=kind, seed=seed, cv_folds=cv_folds, settings=settings, memo=memo)


def _fit_surrogate(X: Tensor, Y: Tensor, Yvar: Tensor | None, *, kind: str, seed: int, cv_folds: int,
                   settings: dict[str, Any] | None, memo: dict[str, Any] | None) -> FittedSurrogate:
    settings = dict(settings or {})
    check_surrogate(kind, settings)
    X, Y, Yvar = _validate(X, Y, Yvar)
    n, m = Y.shape
    masks = [torch.isfinite(Y[:, c]) & (torch.ones(n, dtype=torch.bool) if Yvar is None else
                                        torch.isfinite(Yvar[:, c]) & (Yvar[:, c] >= 0)) for c in range(m)]
    excluded_by_output = {str(c): torch.nonzero(~masks[c]).flatten().tolist() for c in range(m)}
    excluded = sorted({r for rows in excluded_by_output.values() for r in rows})

    columns = []
    prior_outputs = []
    for c in range(m):
        y = Y[masks[c], c : c + 1]
        yvar = None if Yvar is None else Yvar[masks[c], c : c + 1]
        if kind == "prior" or _is_uninformative(y):
            prior_outputs.append(c)
        columns.append((X[masks[c]], y, yvar))
    learnable = [c for c in range(m) if c not in prior_outputs]

    key = reuse.request_key(kind, cv_folds, seed, settings, m)
    rows = {c: int(columns[c][1].shape[0]) for c in learnable}
    plan = reuse.plan(memo, key=key, rows=rows, learnable=learnable) if kind != "prior" and learnable else None
    candidates = ["gp", "ensemble"] if kind == "auto" else ([kind] if kind != "prior" else [])
    cv: dict[str, dict[int, tuple[dict[str, float], StdMap, str]]] = {k: {} for k in candidates}
    #: the GP on every row of each output, fitted once on a re-decision: its folds reuse its hyperparameters
    full_gp: dict[int, tuple[Model, dict, dict[str, Any], str]] = {}
    if plan is None or plan.redecide:
        # Cross-validate each candidate kind on every learnable output.
        for k in candidates:
            for c in learnable:
                if k == "gp":
                    full_gp[c] = _fit_final("gp", plan, c, *columns[c], seed, settings)
                cv[k][c] = _cross_validate(k, *columns[c], folds=cv_folds, seed=seed, settings=settings,
                                           full=full_gp[c][:2] if k == "gp" else None)
        chosen, reason = _choose(kind, candidates, cv, learnable, prior_outputs)
        if cv_folds >= 2 and any(full_gp[c][1].get("variant") == "exact" for c in full_gp):
            # part of the verdict's first clause, so a kept verdict's reason says it too
            reason += " (GP cross-validated with the full fit's hyperparameters, conditioned on each fold's rows)"
    else:  # the previous verdict stands: its kind, recalibration and cross-validated metrics
        chosen = str(plan.memo["kind"])
        cv[chosen] = {c: _kept_verdict(plan.output(c)) for c in learnable}
        reason = f"{plan.memo['verdict'].get('reason', chosen)}; {plan.why}"
    if plan is not None and plan.redecide and memo is not None:
        reason += f"; re-decided: {plan.why}"
    outputs: list[OutputModel] = []
    metrics: dict[str, dict[str, float]] = {}
    memo_outputs: dict[int, dict[str, Any]] = {}
    hyper_notes: list[str] = []
    for c in range(m):
        Xc, y, yvar = columns[c]
        if c in prior_outputs:
            mean = float(y.mean()) if len(y) else 0.0
            outputs.append(OutputModel("prior", PriorModel(mean, 1.0), {}, StdMap(), Xc, y, yvar))
            metrics[str(c)] = {k: float("nan") for k in METRIC_KEYS} | {"n": float(len(y))}
            continue
        if chosen == "gp" and c in full_gp:  # already fitted for the cross-validation: not fitted twice
            base, recipe, entry, note = full_gp[c]
        else:
            base, recipe, entry, note = _fit_final(chosen, plan, c, Xc, y, yvar, seed, settings)
        col_metrics, std_map, why = cv[chosen][c]
        outputs.append(OutputModel(chosen, base, recipe, std_map, Xc, y, yvar))
        metrics[str(c)] = col_metrics
        verdict_n = rows[c] if plan is None or plan.redecide else int(plan.output(c)["verdict_n"])
        memo_outputs[c] = {"verdict_n": verdict_n, "metrics": col_metrics, "std_map": std_map.as_dict(),
                           "why": why, **entry}
        if note:
            hyper_notes.append(note if len(learnable) == 1 else f"output {c}: {note}")
    scale_notes = [f"output {c}: {cv[chosen][c][2]}" for c in learnable
                   if chosen in cv and not cv[chosen][c][1].is_identity]
    if scale_notes:
        reason += "; " + "; ".join(scale_notes)
    additive = [o.recipe["feature_groups"] for o in outputs if o.recipe.get("kernel") == "additive"]
    if additive:
        reason += f"; additive kernel over {len(additive[0])} feature groups plus their interactions"
    if chosen == "gp" and any(o.recipe.get("variant") == "sparse" for o in outputs) and Yvar is not None:
        reason += "; sparse GP ignores measured noise (learns one noise level)"
    if hyper_notes:
        reason += "; " + "; ".join(hyper_notes)
    next_memo: dict[str, Any] = {}
    if plan is not None and chosen in ("gp", "ensemble"):
        verdict = {"reason": reason.split("; ")[0], "outputs": len(learnable),
                   "nll": {k: sum(cv[k][c][0]["nll"] for c in learnable) for k in candidates} if kind == "auto"
                   and (plan.redecide) else {}}
        next_memo = reuse.make_memo(key=key, kind=chosen, redecided=plan.redecide, previous=plan,
                                    verdict=verdict, outputs=memo_outputs)
    return FittedSurrogate(
        model=_combine(outputs),
        kind=chosen,
        reason=reason,
        metrics=metrics,
        training_hash=training_hash(X, Y, Yvar),
        n_train=n - len(excluded),
        excluded_rows=excluded,
        is_prior=bool(prior_outputs),
        prior_outputs=prior_outputs,
        excluded_by_output=excluded_by_output,
        outputs=outputs,
        memo=next_memo,
    )


def _kept_verdict(previous: dict[str, Any]) -> tuple[dict[str, float], StdMap, str]:
    """A previous verdict's metrics, std map and its why, as ``_cross_validate`` returns them."""
    metrics = {k: float("nan") if v is None else float(v) for k, v in previous["metrics"].items()
               if isinstance(v, (int, float)) or v is None}
    return metrics, StdMap.from_dict(previous["std_map"]), str(previous.get("why", ""))


def _fit_final(
    kind: str, plan: reuse.Plan | None, c: int, X: Tensor, y: Tensor, yvar: Tensor | None, seed: int,
    settings: dict[str, Any],
) -> tuple[Model, dict, dict[str, Any], str]:
    """The model on every row of output ``c``: a GP or an ensemble warm-started from the memo when it can be; with
    its memo entry and a note for the reason."""
    if kind == "ensemble" and plan is not None:
        return _fit_final_ensemble(plan, c, X, y, seed, settings)
    if kind != "gp" or plan is None:
        base, recipe = FITTERS[kind](X, y, yvar, seed, settings)
        return base, recipe, {}, ""
    n = int(X.shape[0])
    init = None
    if plan.output(c).get("hyper") and gp_variant(n, settings) == "exact":
        with torch.random.fork_rng():  # only the parameters' names and shapes are wanted
            shape = build_gp(X[:2], y[:2], None if yvar is None else yvar[:2], "exact", settings)
        init = reuse.hyper_init(plan, c, hyperparameters(shape))
    optimize, note = reuse.needs_reoptimising(plan, c, n) if init is not None else (True, "")
    base, recipe = fit_gp(X, y, yvar, seed, settings, init=init, optimize=optimize)
    if recipe["variant"] != "exact":
        return base, recipe, {}, ""
    hyper_n = n if optimize else int(plan.output(c)["hyper_n"])  # not optimising: needs_reoptimising read it
    return base, recipe, {"hyper": reuse.hyper_json(hyperparameters(base)), "hyper_n": hyper_n}, note


def _fit_final_ensemble(
    plan: reuse.Plan, c: int, X: Tensor, y: Tensor, seed: int, settings: dict[str, Any]
) -> tuple[Model, dict, dict[str, Any], str]:
    """A kept ensemble fine-tuned from the memo's members (checked against their fresh spread), else trained afresh."""
    ens_settings = dict(settings.get("ensemble", {}))
    fresh = DeepEnsemble(X.shape[-1], ens_settings)
    start, note = reuse.ensemble_start(plan, c, fresh.state_dict())
    if start is not None:
        warm = DeepEnsemble(X.shape[-1], ens_settings).fit(X, y, seed, start=start)
        spread, ref = warm.spread(X), reuse.spread_ref(plan, c)
        count = reuse.warm_count(plan, c) + 1
        if spread >= reuse.MIN_SPREAD_RATIO * ref:
            entry = reuse.ensemble_json(warm.state_dict(), spread=spread, spread_ref=ref, warm=count)
            return warm, {"settings": warm.settings}, entry, \
                f"ensemble fine-tuned from the previous fit's members ({count} in a row; spread {spread / ref:.2f} " \
                f"of the fresh members')"
        note = f"ensemble trained afresh (fine-tuned members' spread fell to {spread / ref:.2f} of the fresh one)"
    fresh.fit(X, y, seed)
    entry = reuse.ensemble_json(fresh.state_dict(), spread=fresh.spread(X), spread_ref=None, warm=0)
    return fresh, {"settings": fresh.settings}, entry, note


# --------------------------------------------------------------------------- helpers


def _validate(X: Tensor, Y: Tensor, Yvar: Tensor | None) -> tuple[Tensor, Tensor, Tensor | None]:
    X = torch.as_tensor(X).to(torch.double)
    Y = torch.as_tensor(Y).to(torch.double)
    if Y.dim() == 1:
        Y = Y.unsqueeze(-1)
    if X.dim() != 2 or Y.dim() != 2:
        raise ValueError(f"X must be (n, d) and Y (n, m); got X {tuple(X.shape)} and Y {tuple(Y.shape)}")
    if X.shape[0] != Y.shape[0]:
        raise ValueError(f"X has {X.shape[0]} rows but Y has {Y.shape[0]}")
    if Y.shape[1] < 1:
        raise ValueError("Y has no columns")
    bad = torch.nonzero(~torch.isfinite(X).all(dim=1)).flatten().tolist()
    if bad:
        raise ValueError(f"X has non-finite features in rows {bad[:20]}{' ...' if len(bad) > 20 else ''}")
    if Yvar is not None:
        Yvar = torch.as_tensor(Yvar).to(torch.double)
        if Yvar.dim() == 1:
            Yvar = Yvar.unsqueeze(-1)
        if Yvar.shape != Y.shape:
            raise ValueError(f"Yvar has shape {tuple(Yvar.shape)}, Y has {tuple(Y.shape)}")
    return X, Y, Yvar


def _is_uninformative(y: Tensor) -> bool:
    """Fewer than two points, or a target with no spread to learn."""
    if y.shape[0] < 2:
        return True
    spread = float(y.max() - y.min())
    return spread <= 1e-12 * max(1.0, float(y.abs().max()))


def _predict(model: Model, X: Tensor, observation_noise: bool | Tensor, chunk: int = 2048) -> tuple[Tensor, Tensor]:
    means, variances = [], []
    for start in range(0, X.shape[0], chunk):
        post = model.posterior(X[start : start + chunk], observation_noise=observation_noise)
        means.append(post.mean.reshape(-1))
        variances.append(post.variance.reshape(-1))
    return torch.cat(means), torch.cat(variances)


def _kfold(n: int, folds: int, seed: int) -> list[np.ndarray]:
    order = np.random.default_rng(seed).permutation(n)
    return [order[i::folds] for i in range(folds)]


def _cross_validate(
    kind: str, X: Tensor, y: Tensor, yvar: Tensor | None, *, folds: int, seed: int, settings: dict[str, Any],
    full: tuple[Model, dict] | None = None,
) -> tuple[dict[str, float], StdMap, str]:
    """Held-out metrics (after recalibration, with ``*_raw`` before), the std map and why.

    ``full`` (the GP fitted on every row, and its recipe): an exact GP's folds are that GP conditioned on each
    fold's training rows, with its hyperparameters (:func:`surrogates.gp.gp_on_rows`), as Ax cross-validates
    by default (``refit_on_cv=False``): one hyperparameter optimisation per output instead of one per fold
    (those were almost all of a re-deciding ask's time). The held-out rows still shaped the hyperparameters,
    a small optimism that Ax accepts too; the ensemble's folds are trained from scratch on their rows only.
    A sparse GP's folds are fitted afresh (a variational posterior is not conditioned on other rows).
    """
    n = X.shape[0]
    folds = min(folds, n)
    if folds < 2 or n < 3:
        nan = {k: float("nan") for k in METRIC_KEYS} | {"n": float(n), "variance_scale": 1.0, "std_power": 1.0}
        return nan, StdMap(), "no cross-validation"
    mean, var = _cv_predictions(kind, X, y, yvar, folds=folds, seed=seed, settings=settings, full=full)
    yy, mm, vv = y[:, 0].numpy(), mean.numpy(), var.numpy()
    raw = regression_metrics(yy, mm, vv)
    std_map, why, calibrated = StdMap(), "recalibration off", raw
    if settings.get("recalibrate", True):
        # With measured noise the GP's predictive std at a new point is not defined (its noise
        # is unknown there), so only a single scale, which does not depend on it, is allowed.
        std_map, why, calibrated = fit_recalibration(yy, mm, vv, allow_power=not (yvar is not None and kind == "gp"),
                                                     seed=seed)
    out = calibrated | {f"{k}_raw": raw[k] for k in ("nll", "cov68", "cov95")} | {
        "variance_scale": std_map.a, "std_power": std_map.b, "std_sigma0": std_map.sigma0}
    return out, std_map, why


def _cv_predictions(
    kind: str, X: Tensor, y: Tensor, yvar: Tensor | None, *, folds: int, seed: int, settings: dict[str, Any],
    full: tuple[Model, dict] | None = None,
) -> tuple[Tensor, Tensor]:
    """Every row's held-out predictive mean and variance (of a new measurement) over ``folds`` folds (2 or more)."""
    n = X.shape[0]
    reuse_full = kind == "gp" and full is not None and full[1].get("variant") == "exact"
    mean = torch.empty(n, dtype=torch.double)
    var = torch.empty(n, dtype=torch.double)
    tests = [torch.as_tensor(test) for test in _kfold(n, folds, seed)]
    trains = [torch.as_tensor(np.setdiff1d(np.arange(n), test.numpy())) for test in tests]
    # the ensemble's folds: every fold's members trained together (each on its own fold's rows only)
    ensembles = fit_ensemble_folds(X, y, trains, [seed + 1 + i for i in range(len(tests))], settings) \
        if kind == "ensemble" else None
    for i, (tr, te) in enumerate(zip(trains, tests, strict=True)):
        if reuse_full:
            model = gp_on_rows(full[0], full[1], X[tr], y[tr], None if yvar is None else yvar[tr])
        elif ensembles is not None:
            model = ensembles[i]
        else:
            model, _ = FITTERS[kind](X[tr], y[tr], None if yvar is None else yvar[tr], seed + 1 + i, settings)
        with torch.no_grad():
            if yvar is not None and kind == "gp":
                mu, v = _predict(model, X[te], observation_noise=False)
                v = v + yvar[te, 0]
            else:
                mu, v = _predict(model, X[te], observation_noise=True)
        mean[te], var[te] = mu, v
    return mean, var


def _choose(
    kind: str,
    candidates: list[str],
    cv: dict[str, dict[int, tuple[dict[str, float], StdMap, str]]],
    learnable: list[int],
    prior_outputs: list[int],
) -> tuple[str, str]:
    prior_note = f" (outputs {prior_outputs} have <2 points or constant targets: prior)" if prior_outputs else ""
    if not learnable:
        return "prior", f"no output has two or more distinct measurements{prior_note}"
    if kind != "auto":
        return kind, f"requested {kind}{prior_note}"
    nll = {k: sum(cv[k][c][0]["nll"] for c in learnable) for k in candidates}
    if not all(math.isfinite(v) for v in nll.values()):
        return "gp", f"auto: gp (too few points to cross-validate){prior_note}"
    best = min(candidates, key=lambda k: (nll[k], k != "gp"))
    other = [k for k in candidates if k != best][0]
    return best, f"auto: {best} cv-NLL {nll[best]:.3f} <= {other} {nll[other]:.3f}{prior_note}"


def _combine(outputs: list[OutputModel]) -> Model:
    models = [o.model for o in outputs]
    return models[0] if len(models) == 1 else ModelList(*models)
