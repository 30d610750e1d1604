"""Step 2, fit: train the surrogate on every stored measurement and record the model version.

The model lives in memory only; what is stored is what it was trained on
(size, hash) and how well it cross-validated.  A resumed iteration refits
(deterministic in the seed) and reuses the iteration's model-version record when
the training data is the same, so resuming writes nothing twice.

Each fit leaves a memo on its iteration (``info["fit_memo"]``: the model choice, the
recalibration, the GP's hyperparameters; see ``surrogates.reuse``) and starts from
the memo of the latest earlier iteration, read from the database: the loop holds
nothing between iterations, so a killed and resumed run fits exactly what an
uninterrupted one would.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

from agent.loop.context import LoopContext
from agent.loop.state import Observations, observations
from agent.store.events import record_event
from agent.store.models import IterationRecord, ModelVersionRecord


@dataclass
class FitOutcome:
    """The fitted surrogate (``None`` during the initial design) and what it was fitted on."""

    observations: Observations
    fitted: Any | None = None
    featurizer: Any | None = None
    #: the observations' features as the model saw them (``observations.candidates``, in order; the selection's too)
    features: Any | None = None
    model_version_id: int | None = None
    reason: str = ""

    @property
    def model(self) -> Any | None:
        return None if self.fitted is None else getattr(self.fitted, "model", self.fitted)


def initial_design_size(ctx: LoopContext) -> int:
    return ctx.campaign.initial_design_size or max(ctx.campaign.batch_size, 2)


def results_to_model(ctx: LoopContext) -> int:
    """Results the model needs before it takes over from the initial design. With several fidelities, results
    at the target: the initial design pairs only some points (agent/selection/fidelity.py)."""
    size = initial_design_size(ctx)
    if ctx.campaign.is_multifidelity:
        from agent.selection.fidelity import initial_target_results, one_anchor

        return initial_target_results(size, one_anchor(ctx.campaign.objectives))
    return size


def featurizer(ctx: LoopContext) -> Any:
    from surrogates.featurize import featurizer_for

    return featurizer_for(ctx.campaign.space)


def points_of(candidates: list[Any]) -> list[Any]:
    """What the campaign's featurizer reads: parameter dicts, composition dicts, or pymatgen structures."""
    out: list[Any] = []
    for c in candidates:
        if c.params is not None:
            out.append(c.params)
        elif c.composition is not None:
            out.append(c.composition)
        elif c.structure is not None:
            from pymatgen.core import Structure

            out.append(Structure.from_dict(c.structure))
        else:
            out.append(c.content)
    return out


def fit(ctx: LoopContext, iteration_id: int) -> FitOutcome:
    """Fit the surrogate on all complete observations; record a model version (one transaction)."""
    with ctx.db.reading() as session:
        obs = observations(session, ctx.campaign, ctx.campaign_id)
        iteration = session.get(IterationRecord, iteration_id)
        assert iteration is not None
        memo = previous_memo(session, ctx.campaign_id, before=iteration.number)
    needed = results_to_model(ctx)
    if obs.n_complete < needed:
        outcome = FitOutcome(observations=obs, reason=f"initial design: {obs.n_complete} of {needed} results")
        _mark(ctx, iteration_id, None, outcome.reason)
        return outcome
    fitted, feats, X = _fit_observations(ctx, obs, memo)
    version_id = _record_version(ctx, iteration_id, fitted, _recommendation(ctx, obs, fitted, X))
    return FitOutcome(observations=obs, fitted=fitted, featurizer=feats, features=X, model_version_id=version_id,
                      reason=str(getattr(fitted, "reason", "")))


def previous_memo(session: Any, campaign_id: int, before: int) -> dict[str, Any] | None:
    """The fit memo of the latest iteration numbered below ``before`` that left one (``None``: none did)."""
    from sqlalchemy import select

    # one iteration's info at a time, newest first: a memo holds an ensemble's members (~75 KB of JSON), and
    # reading every earlier iteration's to use the latest would grow with the campaign; the latest usually has it
    ids = session.scalars(
        select(IterationRecord.id).where(IterationRecord.campaign_id == campaign_id,
                                         IterationRecord.number < before).order_by(IterationRecord.number.desc())
    ).all()
    for iteration_id in ids:
        info = session.scalar(select(IterationRecord.info).where(IterationRecord.id == iteration_id))
        memo = (info or {}).get("fit_memo") if isinstance(info, dict) else None
        if memo:
            return memo
    return None


def _fit_observations(ctx: LoopContext, obs: Observations, memo: dict[str, Any] | None = None) -> tuple[Any, Any, Any]:
    """The campaign's surrogate fitted on ``obs``, from the previous fit's ``memo``: (fitted, featurizer, features)."""
    import torch

    from surrogates import fit_surrogate

    feats = featurizer(ctx)
    X = feats.transform(points_of(obs.candidates)).to(torch.double)
    if ctx.campaign.is_multifidelity:
        return _fit_fidelities(ctx, obs, feats, X), feats, X
    Y = torch.tensor(obs.values, dtype=torch.double)
    var = torch.tensor(obs.variances, dtype=torch.double)
    Yvar = None if torch.isnan(var).all() or bool((torch.nan_to_num(var) == 0).all()) else var
    torch.manual_seed(ctx.campaign.seed)
    config = ctx.campaign.surrogate
    settings = config.fit_settings()
    if getattr(feats, "feature_groups", None) and "feature_groups" not in settings:
        settings["feature_groups"] = feats.feature_groups  # each parameter's columns, for the additive kernel
    fitted = fit_surrogate(X, Y, Yvar=Yvar, kind=config.type, seed=ctx.campaign.seed,
                           settings=settings, cv_folds=config.cv_folds, memo=memo)
    return fitted, feats, X


def _fit_fidelities(ctx: LoopContext, obs: Observations, feats: Any, X: Any) -> Any:
    """Several fidelities: one model over all of them (:mod:`surrogates.multifidelity`), the target's posterior
    for the acquisition; every fidelity's cross-validated metrics go into the model version."""
    import torch

    from surrogates.multifidelity import FidelityData, fit_multifidelity

    campaign = ctx.campaign
    prop = obs.properties[0]
    data = []
    for fidelity in campaign.fidelities:
        if fidelity == campaign.target_fidelity:
            y = torch.tensor([row[0] for row in obs.values], dtype=torch.double)
            ok = torch.isfinite(y)  # a failed target measurement is for the feasibility model, not this one
            data.append(FidelityData(fidelity, campaign.fidelity_cost(fidelity), X[ok], y[ok]))
        else:
            candidates, values = obs.cheaper.get(fidelity, ([], []))
            Xf = feats.transform(points_of(candidates)).to(torch.double) if candidates else X[:0]
            data.append(FidelityData(fidelity, campaign.fidelity_cost(fidelity), Xf,
                                     torch.tensor(values, dtype=torch.double)))
    settings = campaign.surrogate.fit_settings()
    return fit_multifidelity(data, campaign.fidelities.index(campaign.target_fidelity), seed=campaign.seed,
                             cv_folds=campaign.surrogate.cv_folds, settings=settings, property_name=prop)


def final_recommendation(ctx: LoopContext) -> None:
    """At the stop: the model's pick from a model fitted on *every* result, on the last iteration's record.

    The pick stored at each fit (``info["recommended"]``) comes from the model fitted at the start of
    that iteration, so the last batch's results are not in it; a campaign that stops because its last
    batch met the target would otherwise report a stale pick. Stored as ``info["recommended_final"]``
    with the number of results it saw (a resumed stop with the same results does not refit); a fit that
    fails here is recorded, not raised, so that nothing keeps the campaign from stopping.
    """
    from agent.loop.recommend import recommend
    from agent.loop.state import latest_iteration

    with ctx.db.reading() as session:
        obs = observations(session, ctx.campaign, ctx.campaign_id)
        last = latest_iteration(session, ctx.campaign_id)
        info = dict(last.info or {}) if last is not None else {}
        memo = None if last is None else previous_memo(session, ctx.campaign_id, before=last.number + 1)
    if last is None or obs.n_complete < results_to_model(ctx):
        return
    if (info.get("recommended_final") or {}).get("n_results") == obs.n_complete:
        return
    try:
        fitted, _, X = _fit_observations(ctx, obs, memo)
        pick = recommend(ctx.campaign, obs, fitted, X)
    except Exception as exc:  # noqa: BLE001 - the stop must happen; say why there is no final pick
        pick, error, fitted = None, f"{type(exc).__name__}: {exc}", None
    else:
        error = None
    entry = {**pick, "n_results": obs.n_complete} if pick else {"n_results": obs.n_complete, "error": error}
    with ctx.db.transaction() as session:  # the model version and the pick it made: both or neither
        if fitted is not None:
            entry["model_version"] = _final_version(session, ctx, last.id, fitted)
        iteration = session.get(IterationRecord, last.id)
        assert iteration is not None
        iteration.info = {**(iteration.info or {}), "recommended_final": entry}


def _final_version(session: Any, ctx: LoopContext, iteration_id: int, fitted: Any) -> int:
    """The stop's model as a model version of the last iteration (not its selection model), reused if stored.

    Every pick must name the model that made it; the stop's refit sees the last batch's results too, so it
    is a model of its own. It is not the iteration's ``model_version_id``, which chose that iteration's batch.
    """
    from sqlalchemy import select

    existing = session.scalar(
        select(ModelVersionRecord.id).where(
            ModelVersionRecord.campaign_id == ctx.campaign_id, ModelVersionRecord.iteration_id == iteration_id,
            ModelVersionRecord.training_hash == str(fitted.training_hash),
        )
    )
    if existing is not None:
        return int(existing)
    reason = f"fitted at the stop on every result; {getattr(fitted, 'reason', '')}".rstrip("; ")
    return _add_version(session, ctx, iteration_id, fitted, reason=reason, final=True).id


def _add_version(session: Any, ctx: LoopContext, iteration_id: int, fitted: Any, *, reason: str,
                 artifact: str | None = None, final: bool = False) -> ModelVersionRecord:
    """Store what ``fitted`` was trained on and how well it cross-validated, with its ``model_fitted`` event."""
    version = ModelVersionRecord(
        campaign_id=ctx.campaign_id, iteration_id=iteration_id, kind=str(fitted.kind),
        objective=",".join(o.property for o in ctx.campaign.objectives), n_train=int(fitted.n_train),
        training_hash=str(fitted.training_hash), metrics=_clean_metrics(getattr(fitted, "metrics", {})),
        reason=reason, artifact_path=artifact,
    )
    session.add(version)
    session.flush()
    payload = {"model_version": version.id, "kind": version.kind, "n_train": version.n_train}
    record_event(session, "model_fitted", campaign_id=ctx.campaign_id, iteration_id=iteration_id,
                 payload={**payload, "final": True} if final else payload)
    return version


def _clean_metrics(metrics: Any) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for k, v in dict(metrics or {}).items():
        if isinstance(v, float) and not math.isfinite(v):
            out[k] = None
        elif isinstance(v, (int, float, str, bool)) or v is None:
            out[k] = v
        elif isinstance(v, dict):
            out[k] = _clean_metrics(v)
        else:
            try:
                out[k] = float(v)
            except (TypeError, ValueError):
                out[k] = str(v)
    return out


def _record_version(ctx: LoopContext, iteration_id: int, fitted: Any, recommended: dict[str, Any] | None = None
                    ) -> int:
    """Store the model version, its memo and the model's pick (``recommended``) on the iteration, in one transaction.

    The pick is stored whether the version is new or a resumed run's (the same training data): a run killed
    after the version committed in an earlier form of this step left no pick, and the resumed one adds it.
    """
    with ctx.db.transaction() as session:
        iteration = session.get(IterationRecord, iteration_id)
        assert iteration is not None
        if iteration.model_version_id is not None:
            existing = session.get(ModelVersionRecord, iteration.model_version_id)
            if existing is not None and existing.training_hash == str(fitted.training_hash):
                if iteration.step == "started":
                    iteration.step = "fitted"
                if recommended is not None:
                    iteration.info = {**(iteration.info or {}), "recommended": recommended}
                return existing.id
        artifact = None
        if ctx.artifacts_dir is not None and hasattr(fitted, "save"):
            path = ctx.artifacts_dir / "models" / f"iteration-{iteration.number:04d}.pt"
            path.parent.mkdir(parents=True, exist_ok=True)
            try:
                fitted.save(path)
                artifact = str(path)
            except Exception:  # noqa: BLE001 - the model file is a convenience; the record is the truth
                artifact = None
        version = _add_version(session, ctx, iteration_id, fitted, reason=str(getattr(fitted, "reason", "")),
                               artifact=artifact)
        iteration.model_version_id = version.id
        # what the next iteration's fit starts from, committed with the version it describes
        iteration.info = {**(iteration.info or {}), "fit_memo": getattr(fitted, "memo", None) or None,
                          **({} if recommended is None else {"recommended": recommended})}
        if iteration.step == "started":
            iteration.step = "fitted"
        return version.id


def _recommendation(ctx: LoopContext, obs: Observations, fitted: Any, X: Any) -> dict[str, Any] | None:
    """The model's pick among measured candidates (see :mod:`agent.loop.recommend`), stored with the version."""
    from agent.loop.recommend import recommend
    from surrogates.threads import ONE_THREAD_MAX_POOL, one_thread_up_to

    # predictions at the measured points: small tensors, one torch thread as for the selection's (surrogates/threads.py)
    with one_thread_up_to(len(X), ONE_THREAD_MAX_POOL):
        return recommend(ctx.campaign, obs, fitted, X)


def _mark(ctx: LoopContext, iteration_id: int, version_id: int | None, reason: str) -> None:
    with ctx.db.transaction() as session:
        iteration = session.get(IterationRecord, iteration_id)
        assert iteration is not None
        if iteration.step == "started":
            iteration.step = "fitted"
        iteration.info = {**(iteration.info or {}), "fit": reason}
