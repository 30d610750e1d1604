"""Step 4, select: score the pool and choose the batch; store each pick with its reason.

Before enough results exist the batch is a space-filling initial design; after,
BoTorch acquisition over the surrogate posterior with in-flight jobs as pending
points.  The batch, its items and any new candidate rows commit together.
"""

from __future__ import annotations

import math
from typing import Any

from sqlalchemy import select

from agent.loop.context import LoopContext
from agent.loop.fit import FitOutcome, points_of
from agent.loop.state import current_batch, spending
from agent.store.events import record_event
from agent.store.models import BatchItemRecord, BatchRecord, CandidateRecord, IterationRecord
from matloop.space import ParametricSpace
from matloop.types import Candidate


class NothingToSelect(RuntimeError):
    """The pool is empty or the budget allows no experiment: the campaign cannot go on."""


def batch_size_now(ctx: LoopContext, session: Any | None = None) -> int:
    """The campaign's batch size, or fewer when the budget allows fewer experiments (read in ``session`` if given)."""
    if session is None:
        with ctx.db.reading() as session:
            return batch_size_now(ctx, session)
    left = spending(session, ctx.campaign_id).remaining_experiments(ctx.campaign)
    return int(min(ctx.campaign.batch_size, left)) if math.isfinite(left) else ctx.campaign.batch_size


def _first(value: Any) -> float | None:
    if value is None:
        return None
    try:
        import torch

        if isinstance(value, torch.Tensor):
            value = value.detach().reshape(-1).tolist()
    except ImportError:  # pragma: no cover
        pass
    if isinstance(value, (list, tuple)):
        return float(value[0]) if value else None
    return float(value)


def _by_property(values: dict[str, float] | None) -> dict[str, float | None]:
    """Posterior moments per property as JSON-safe floats (non-finite → None)."""
    out: dict[str, float | None] = {}
    for prop, value in (values or {}).items():
        v = float(value)
        out[prop] = v if math.isfinite(v) else None
    return out


def choose(ctx: LoopContext, fit: FitOutcome, pool: list[Candidate], q: int, iteration_number: int) -> list[dict]:
    """The picks as plain dicts: candidate, acquisition value, mean, std, reason."""
    seed = ctx.campaign.seed * 1_000 + iteration_number
    if fit.fitted is None:
        picks = _initial(ctx, fit, pool, q, seed)
        if ctx.campaign.is_multifidelity:  # paired and screened-only points: agent/selection/fidelity.py
            from agent.selection.fidelity import initial_design_fidelity, initial_design_reason, one_anchor

            anchor = one_anchor(ctx.campaign.objectives)
            for pick in picks:
                pick["fidelity"] = initial_design_fidelity(pick["rank"], len(picks), ctx.campaign.fidelities, anchor)
                pick["reason"] += "; " + initial_design_reason(pick["fidelity"], ctx.campaign.target_fidelity, anchor)
        return picks

    import torch

    from agent.selection import select_batch
    from agent.selection.scoring import pool_features
    from surrogates.threads import ONE_THREAD_MAX_POOL, one_thread_up_to

    feats = fit.featurizer
    X_pool = pool_features(feats, pool, read=points_of).to(torch.double)  # in chunks, on the run's executor
    obs = fit.observations
    X_obs = fit.features if fit.features is not None else feats.transform(points_of(obs.candidates)).to(torch.double)
    Y_obs = torch.tensor(obs.values, dtype=torch.double)
    X_pending = feats.transform(points_of(obs.pending)).to(torch.double) if obs.pending else None
    acquisition = ctx.campaign.acquisition.type
    kwargs: dict[str, Any] = dict(
        objectives=ctx.campaign.objectives, constraints=ctx.campaign.constraints, properties=obs.properties,
        q=q, X_observed=X_obs, Y_observed=Y_obs, X_pending=X_pending,
        acquisition=acquisition,  # "auto": selection picks (qlogei for one objective)
        seed=seed, feasibility_model=_feasibility(obs, X_obs, seed),
        exploit_share=getattr(ctx.campaign.acquisition, "exploit_share", 0.0),
    )
    if ctx.campaign.is_multifidelity:  # (candidate, fidelity) pairs: agent/selection/fidelity.py
        from agent.selection.fidelity import select_with_fidelities

        with one_thread_up_to(len(X_pool), ONE_THREAD_MAX_POOL):
            picks = select_with_fidelities(fit.fitted, X_pool, [c.fingerprint for c in pool], obs.jobs_at, **kwargs)
        prop = obs.properties[0]
        return [
            {"candidate": pool[p.index], "rank": p.rank, "acquisition_value": _first(p.acquisition_value),
             "mean": _property_moment(p.mean, prop), "std": _property_moment(p.std, prop), "reason": p.reason,
             "fidelity": p.fidelity}
            for p in picks
        ]
    # a small pool's tensors are small: extra torch threads only add synchronisation (surrogates/threads.py)
    with one_thread_up_to(len(X_pool), ONE_THREAD_MAX_POOL):
        chosen = select_batch(fit.model, X_pool, **kwargs)
    return [
        {"candidate": pool[int(p.index)], "rank": int(p.rank), "acquisition_value": _first(p.acquisition_value),
         "mean": p.mean, "std": p.std, "reason": str(p.reason)}
        for p in chosen
    ]


def _initial(ctx: LoopContext, fit: FitOutcome, pool: list[Candidate], q: int, seed: int) -> list[dict]:
    """The space-filling initial design (no model yet): over the space's box, or over the pool's features."""
    if not isinstance(ctx.campaign.space, ParametricSpace):
        return _initial_from_pool(ctx, fit, pool, q, seed)
    try:
        from agent.selection import initial_design
    except ImportError:  # selection's space-filling design not available: a greedy maximin over the pool
        initial_design = _maximin_design
    points = initial_design(ctx.campaign.space, q, seed, pool=[c.params for c in pool] if pool else None)
    by_fp = {c.fingerprint: c for c in pool}
    picks = []
    for rank, point in enumerate(points):
        candidate = point if isinstance(point, Candidate) else Candidate.point(point, origin="initial_design")
        candidate = by_fp.get(candidate.fingerprint, candidate)
        picks.append({"candidate": candidate, "rank": rank, "acquisition_value": None, "mean": None,
                      "std": None, "reason": f"initial design (space-filling); {fit.reason}"})
    return picks


def _property_moment(value: Any, prop: str) -> dict[str, float] | None:
    """A pick's mean or std as ``{property: value}`` whether selection gave a dict or a number."""
    if value is None or isinstance(value, dict):
        return value
    first = _first(value)
    return None if first is None else {prop: first}


def _maximin_design(space: Any, n: int, seed: int, pool: list[dict] | None = None) -> list[dict]:
    """Greedy maximin over the pool in the unit-scaled numeric features: spread the first batch out."""
    import numpy as np

    if not pool:
        raise NothingToSelect("no pool to draw the initial design from")
    names = [k for k, v in pool[0].items() if isinstance(v, (int, float))]
    X = np.array([[float(p[k]) for k in names] for p in pool]) if names else np.zeros((len(pool), 1))
    span = X.max(axis=0) - X.min(axis=0)
    X = (X - X.min(axis=0)) / np.where(span > 0, span, 1.0)
    rng = np.random.default_rng(seed)
    chosen = [int(rng.integers(len(pool)))]
    dist = np.linalg.norm(X - X[chosen[0]], axis=1)
    while len(chosen) < min(n, len(pool)):
        j = int(np.argmax(dist))
        chosen.append(j)
        dist = np.minimum(dist, np.linalg.norm(X - X[j], axis=1))
    return [pool[i] for i in chosen]


def _initial_from_pool(ctx: LoopContext, fit: FitOutcome, pool: list[Candidate], q: int, seed: int) -> list[dict]:
    """The first batch of a non-parametric campaign (crystals, images): a maximin subset of the pool's features.

    There is no box to fill, so spread the batch over what the surrogate will see: the
    featurizer's columns, standardised over the pool, farthest-point from each other and
    from what is already measured.  Rows the greedy cannot separate (identical features)
    are topped up at random, so a batch is never short while the pool has candidates.
    """
    import torch

    from agent.selection.grid import maximin_subset
    from agent.selection.scoring import pool_features
    from surrogates.featurize import featurizer_for

    if not pool:
        raise NothingToSelect("no pool to draw the initial design from")
    feats = featurizer_for(ctx.campaign.space)
    X = pool_features(feats, pool, read=points_of).to(torch.double)
    measured = fit.observations.candidates + fit.observations.pending
    X_fixed = feats.transform(points_of(measured)).to(torch.double) if measured else None
    both = X if X_fixed is None else torch.cat([X, X_fixed])
    mean, std = both.mean(dim=0), both.std(dim=0)
    std = torch.where(std > 1e-12, std, torch.ones_like(std))
    Z = torch.nan_to_num((X - mean) / std)
    Z_fixed = None if X_fixed is None else torch.nan_to_num((X_fixed - mean) / std)
    chosen = maximin_subset(Z, q, seed, fixed=Z_fixed)
    if len(chosen) < min(q, len(pool)):
        rest = [i for i in torch.randperm(len(pool), generator=torch.Generator().manual_seed(seed)).tolist()
                if i not in set(chosen)]
        chosen += rest[: min(q, len(pool)) - len(chosen)]
    reason = f"initial design (maximin over {feats.dim} standardised {type(feats).__name__} features); {fit.reason}"
    return [{"candidate": pool[i], "rank": rank, "acquisition_value": None, "mean": None, "std": None,
             "reason": reason} for rank, i in enumerate(chosen)]


def _feasibility(obs: Any, X_obs: Any, seed: int) -> Any:
    """Learn where experiments fail, once some have failed (a failed experiment is data too)."""
    import torch

    succeeded = torch.tensor([not math.isnan(row[0]) for row in obs.values], dtype=torch.bool)
    if len(succeeded) == 0 or bool(succeeded.all()):
        return None
    from agent.selection import fit_feasibility

    return fit_feasibility(X_obs, succeeded, seed=seed)


def select_batch_step(ctx: LoopContext, iteration_id: int, fit: FitOutcome, pool: list[Candidate]) -> int:
    """Choose and store the batch; returns its id.  The iteration moves to ``selected``."""
    with ctx.db.reading() as session:
        q = batch_size_now(ctx, session)
        iteration = session.get(IterationRecord, iteration_id)
        assert iteration is not None
        number = iteration.number
    if q <= 0:
        raise NothingToSelect("the budget allows no more experiments")
    if not pool:
        raise NothingToSelect("the generator proposed no new candidate: every candidate of the space is known")
    picks = choose(ctx, fit, pool, min(q, len(pool)), number)
    with ctx.db.transaction() as session:
        iteration = session.get(IterationRecord, iteration_id)
        assert iteration is not None
        previous = current_batch(session, iteration_id)
        if previous is not None and previous.status == "proposed":
            return previous.id  # a resumed run selected already; keep that decision
        batch = BatchRecord(
            campaign_id=ctx.campaign_id, iteration_id=iteration_id, status="proposed",
            policy=ctx.campaign.approval.policy,
            replaces_batch_id=previous.id if previous is not None and previous.status == "rejected" else None,
        )
        session.add(batch)
        session.flush()
        for pick in picks:
            candidate: Candidate = pick["candidate"]
            record = session.scalar(
                select(CandidateRecord).where(
                    CandidateRecord.campaign_id == ctx.campaign_id, CandidateRecord.fingerprint == candidate.fingerprint
                )
            )
            if record is None:
                record = CandidateRecord(
                    campaign_id=ctx.campaign_id, fingerprint=candidate.fingerprint, kind=candidate.kind.value,
                    representation=candidate.model_dump(mode="json"), origin=candidate.origin,
                )
                session.add(record)
                session.flush()
            mean, std = _by_property(pick["mean"]), _by_property(pick["std"])
            first = ctx.campaign.objectives[0].property
            session.add(BatchItemRecord(
                batch_id=batch.id, candidate_id=record.id, rank=pick["rank"],
                acquisition_value=pick["acquisition_value"], posterior_mean=mean.get(first), posterior_std=std.get(first),
                predictions={p: {"mean": mean.get(p), "std": std.get(p)} for p in mean},
                reason=pick["reason"], fidelity=pick.get("fidelity"),
            ))
        iteration.step = "selected"
        record_event(session, "batch_proposed", campaign_id=ctx.campaign_id, iteration_id=iteration_id,
                     payload={"batch": batch.id, "size": len(picks), "model_version": fit.model_version_id})
        return batch.id
