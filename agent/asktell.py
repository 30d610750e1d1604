"""Ask/tell from Python: a campaign's own fit and select steps over a pool ``DataFrame``, one batch at a time.

``Recommender(campaign, pool)`` takes a campaign (a :class:`~agent.spec.Campaign`, a campaign file's path or
its YAML text) and a ``pandas.DataFrame`` with one column per parameter of its space. ``recommend(n)`` returns
the next ``n`` rows to measure with their reasons (acquisition value, posterior mean and std per property,
the reason text, the generator, the model version); ``add_measurements(frame)`` tells it what was measured
(the parameter columns and one column per measured property; NaN where an experiment failed).

Why a real store underneath rather than pure functions extracted from the steps: a campaign's decisions are
made by the loop's step functions reading the database (which observations, in which order, which are
still pending, which candidates are known, which iteration number seeds the acquisition), and every rule
of those steps lives in them. Holding a campaign in a SQLite database (a temporary file unless ``database``
names one) and calling :func:`~agent.loop.sync`, :func:`~agent.loop.fit`, :func:`~agent.loop.generate`,
:func:`~agent.loop.select_batch_step`, the gate and :func:`~agent.loop.dispatch` in the order
:func:`~agent.loop.run_campaign` does means there is one path: a pick made here is the pick a campaign with
the same file, seed and results stores (``tests/loop/test_asktell.py`` runs a real campaign and checks), and a
change to the loop's defaults reaches notebooks and benchmarks without anyone remembering to copy it.
The price is a few milliseconds of SQLite per step, next to seconds of model fitting.

The measurements come in through the loop's own door too: every campaign adapter is replaced by a
:class:`LabBook`, an executor whose jobs finish when ``add_measurements`` hands in their values, so results
are checked and stored by :func:`~agent.loop.sync` (units, non-finite values, failed experiments) exactly as a
lab's answers are. Picks not yet measured are in-flight jobs: the next ``recommend`` treats them as pending
points, as a campaign does while its lab works, and never offers them again.

What the loop does and this does not: it does not stop (the stopping rules are the caller's to apply; the
budget's ``max_experiments`` still caps a batch, as in a campaign), and the caller's call to ``recommend`` is
the approval of a campaign whose policy is not automatic.
"""

from __future__ import annotations

import dataclasses
import math
import shutil
import tempfile
from pathlib import Path
from typing import Any

import pandas as pd
from sqlalchemy import select

from agent.loop import LoopContext
from agent.loop.dispatch import dispatch, submit_pending
from agent.loop.fit import fit
from agent.loop.gate import apply_decision, policy_decision
from agent.loop.generate import generate
from agent.loop.iteration import next_iteration
from agent.loop.select import NothingToSelect, select_batch_step
from agent.loop.state import OPEN_JOB_STATUSES, modelled_properties
from agent.loop.sync import expected_units, sync
from agent.policy.approval import Decision
from agent.spec import Campaign, load_campaign, parse_campaign
from agent.store import Database
from agent.store.campaigns import register_campaign
from agent.store.models import BatchItemRecord, BatchRecord, CandidateRecord, IterationRecord, JobRecord
from generators.pool import FramePool, PoolError, frame_candidates, plain_value
from matloop.space import CategoricalParameter, ParametricSpace
from matloop.types import (
    Candidate,
    JobRequest,
    JobResult,
    JobStatus,
    PropertyValue,
    make_idempotency_key,
    number_problem,
)

#: Who approves a batch of a campaign whose policy wants a person: the caller who asked for it.
CALLER = "asktell-caller"


class RecommenderError(ValueError):
    """A campaign, pool or measurement frame the recommender cannot use; the message is one sentence."""


class LabBook:
    """An executor whose jobs finish when the caller reports their values (:meth:`Recommender.add_measurements`).

    It speaks the :class:`~matloop.types.LabAdapter` protocol, so the loop's dispatch and sync steps run
    unchanged: a job's external id is its idempotency key, it stays ``submitted`` until a result is handed
    in under that id, and then ``fetch`` returns it (once; a repeated fetch returns the same result).
    """

    name = "asktell"

    def __init__(self) -> None:
        self.results: dict[str, JobResult] = {}

    def submit(self, job: JobRequest) -> str:
        return job.idempotency_key

    def poll(self, external_ids: Any) -> dict[str, JobStatus]:
        return {i: self.results[i].status if i in self.results else JobStatus.SUBMITTED for i in external_ids}

    def fetch(self, external_id: str) -> JobResult:
        return self.results[external_id]

    def cancel(self, external_id: str) -> None:
        self.results.pop(external_id, None)


class ParsedPool(FramePool):
    """The caller's pool as :class:`~generators.pool.FramePool` proposes it, parsed into candidates once.

    The pool does not change between asks, only which of its candidates are known; re-reading every row
    (parameters, the space's checks, a fingerprint each) on every ask cost more than the selection on
    10^4-row pools. The candidates proposed are the same, in the same order: the rows in the space, first
    of each fingerprint, without the known ones, the first ``n`` of them.
    """

    def __init__(self, frame: pd.DataFrame) -> None:
        super().__init__(frame)
        self._parsed: list[tuple[str, Candidate]] | None = None
        self._bad: list[str] = []
        self._space: Any = None

    def propose(self, space: Any, context: Any, n: int) -> list[Candidate]:
        return [c for _, c in self.propose_checked(space, context, n)]

    def propose_checked(self, space: Any, context: Any, n: int) -> list[tuple[str, Candidate]]:
        """:meth:`propose` with each candidate's fingerprint; every candidate passed ``space``'s checks when the
        pool was parsed (:func:`agent.loop.generate.generate` does not repeat them)."""
        if self._parsed is None:
            everything = dataclasses.replace(context, known_fingerprints=set())
            parsed, self._bad = frame_candidates(space, self.frame, everything, len(self.frame), origin=self.name,
                                                 where="the pool", first_row=0)
            self._parsed = [(c.fingerprint, c) for c in parsed]  # a fingerprint is a hash of the row: once
            self._space = space
        assert space is self._space or space == self._space, "a parsed pool serves the space it was parsed for"
        self.rejected = list(self._bad)
        known = context.known_fingerprints
        out = [(fp, c) for fp, c in self._parsed if fp not in known][:n]
        if self._bad and not out:
            raise PoolError(f"no row of the pool lies in the space: {self._bad[:3]}")
        return out


def _campaign_of(campaign: Campaign | dict[str, Any] | str | Path) -> Campaign:
    if isinstance(campaign, Campaign):
        return campaign
    if isinstance(campaign, dict):  # a campaign file's content, as Python data
        from pydantic import ValidationError

        try:
            return Campaign.model_validate(campaign)
        except ValidationError as exc:
            first = exc.errors()[0]
            where = ".".join(str(part) for part in first["loc"])
            raise RecommenderError(f"the campaign is not valid: {where}: {first['msg']} "
                                   f"({exc.error_count()} problem(s) in all)") from None
    if isinstance(campaign, Path) or (isinstance(campaign, str) and "\n" not in campaign):
        return load_campaign(campaign)
    if isinstance(campaign, str):
        return parse_campaign(campaign)
    raise RecommenderError(f"campaign must be a Campaign, its content as a dict, a campaign file's path or its "
                           f"YAML text, not "
                           f"{type(campaign).__name__}")


def _row_label(label: Any) -> str:
    return f"row {label!r}"


class Recommender:
    """Ask/tell over one campaign: ``recommend(n)`` → picks with their reasons; ``add_measurements(frame)``.

    ``campaign``: a :class:`~agent.spec.Campaign`, its content as a dict, a campaign file's path or its YAML text.
    ``pool``: one column per parameter of the campaign's (parametric) space, one row per candidate; other
    columns are ignored. ``None`` lets the campaign's own generator propose, as in a run. ``database``: a URL
    to keep the campaign's records in (``matloop history NAME`` reads them); a campaign of the same name
    and spec found there is continued. By default a temporary SQLite file, removed by :meth:`close`.
    """

    def __init__(self, campaign: Campaign | dict[str, Any] | str | Path, pool: pd.DataFrame | None = None, *,
                 database: str | None = None) -> None:
        from agent.store.migrate import upgrade

        self.campaign = _campaign_of(campaign)
        if not isinstance(self.campaign.space, ParametricSpace):
            raise RecommenderError(f"the ask/tell API needs a parametric space; campaign {self.campaign.name!r} "
                                   f"has a {self.campaign.space.type!r} space")
        self.space: ParametricSpace = self.campaign.space
        self.properties = sorted({p for m in self.campaign.measurements for p in m.properties},
                                 key=self._property_order)
        self.pool = None if pool is None else self._checked_pool(pool)
        self._labels: dict[str, Any] = {} if self.pool is None else self._pool_labels(self.pool)
        self._tmp = None if database is not None else Path(tempfile.mkdtemp(prefix="matloop-asktell-"))
        url = database or f"sqlite:///{self._tmp}/campaign.sqlite"
        upgrade(url)
        self.db = Database(url, scratch=self._tmp is not None)  # a temporary file: no disk flush per commit
        with self.db.transaction() as session:
            campaign_id = register_campaign(session, self.campaign).id
        self.book = LabBook()
        self._generator = None if self.pool is None else ParsedPool(self.pool)
        self.ctx = LoopContext(db=self.db, campaign=self.campaign, campaign_id=campaign_id,
                               adapters={name: self.book for name in self.campaign.adapters})

    # -- the two calls ------------------------------------------------------------------------------------------

    def recommend(self, n: int | None = None) -> pd.DataFrame:
        """The next ``n`` candidates (default: the campaign's ``batch_size``), best first, with their reasons.

        Runs one iteration of the loop up to dispatch: results handed in are stored, the surrogate is fitted
        (the campaign's ``surrogate``; ``auto`` cross-validates a GP against an ensemble and recalibrates the
        winner), the pool loses known candidates, and the batch is chosen (a space-filling design until the
        campaign's initial design is measured). The index holds the picks' labels in the pool.
        """
        q = self.campaign.batch_size if n is None else n
        if isinstance(q, bool) or not isinstance(q, int) or q < 1:
            raise RecommenderError(f"n must be a whole number of at least 1, got {q!r}")
        # the campaign's batch size is a campaign setting; this call's n replaces it, but not the initial design's size
        self.ctx.campaign = self.campaign.model_copy(update={
            "batch_size": q,
            "initial_design_size": self.campaign.initial_design_size or max(self.campaign.batch_size, 2),
        })
        try:
            # a campaign's iteration completes when its results are in (or the run waited long enough); here the
            # caller's next ask is that moment, whatever has been measured (add_measurements synced it), and the
            # next iteration opens in the same transaction
            iteration = next_iteration(self.ctx)
            sync(self.ctx)
            fitted = fit(self.ctx, iteration.id)
            pool = generate(self.ctx, iteration.id, fitted, generator=self._generator)
            try:
                batch_id = select_batch_step(self.ctx, iteration.id, fitted, pool)
            except NothingToSelect as exc:
                raise RecommenderError(f"nothing to recommend: {exc}") from None
            decision = policy_decision(self.ctx, batch_id) or Decision(approver=CALLER)
            apply_decision(self.db, batch_id, decision)
            dispatch(self.ctx, batch_id)
        finally:
            self.ctx.campaign = self.campaign
        return self._picks(batch_id)

    def add_measurements(self, frame: pd.DataFrame) -> int:
        """Store measured rows: parameter columns plus one column per measured property (NaN: a failed
        experiment; ``<property>_std`` columns, optional, give each value's standard deviation), in the
        campaign's units. Rows need not have been recommended. Returns how many rows were stored."""
        rows = self._checked_measurements(frame)
        keys: list[tuple[str, dict[str, float | None], dict[str, float | None], str]] = []
        with self.db.transaction() as session:
            for params, values, stds in rows:
                candidate = Candidate.point(params, origin="measured")
                record = session.scalar(select(CandidateRecord).where(
                    CandidateRecord.campaign_id == self.ctx.campaign_id,
                    CandidateRecord.fingerprint == candidate.fingerprint))
                if record is None:
                    record = CandidateRecord(
                        campaign_id=self.ctx.campaign_id, fingerprint=candidate.fingerprint,
                        kind=candidate.kind.value, representation=candidate.model_dump(mode="json"),
                        origin=candidate.origin)
                    session.add(record)
                    session.flush()
                for m in self.campaign.measurements:
                    job = self._open_job(session, record, m)
                    keys.append((job.idempotency_key, values, stds, f"{m.adapter}\0{m.fidelity}"))
        submit_pending(self.ctx)  # jobs of rows never recommended go out through the same door
        for key, values, stds, which in keys:
            adapter, fidelity = which.split("\0")
            m = next(m for m in self.campaign.measurements if (m.adapter, m.fidelity) == (adapter, fidelity))
            self.book.results[key] = self._result(m, values, stds)
        sync(self.ctx)
        return len(rows)

    def close(self) -> None:
        """Release the database (and remove the temporary one)."""
        self.db.dispose()
        if self._tmp is not None:
            shutil.rmtree(self._tmp, ignore_errors=True)
            self._tmp = None

    def __enter__(self) -> Recommender:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # -- the loop's bookkeeping ---------------------------------------------------------------------------------

    def _open_job(self, session: Any, record: CandidateRecord, m: Any) -> JobRecord:
        """The candidate's open job at this measurement, or a new one (the next attempt's key)."""
        job = session.scalar(select(JobRecord).where(
            JobRecord.campaign_id == self.ctx.campaign_id, JobRecord.candidate_id == record.id,
            JobRecord.adapter == m.adapter, JobRecord.fidelity == m.fidelity,
            JobRecord.status.in_(OPEN_JOB_STATUSES)).order_by(JobRecord.id).limit(1))
        if job is not None:
            return job
        earlier = len(list(session.scalars(select(JobRecord.id).where(
            JobRecord.campaign_id == self.ctx.campaign_id, JobRecord.candidate_id == record.id,
            JobRecord.fidelity == m.fidelity))))
        job = JobRecord(
            campaign_id=self.ctx.campaign_id, candidate_id=record.id, batch_item_id=None, adapter=m.adapter,
            fidelity=m.fidelity, idempotency_key=make_idempotency_key(self.campaign.name, record.fingerprint,
                                                                      m.fidelity, earlier),
            status=JobStatus.PENDING.value, cost=m.cost)
        session.add(job)
        session.flush()
        return job

    def _result(self, m: Any, values: dict[str, float | None], stds: dict[str, float | None]) -> JobResult:
        """What a lab would answer for this measurement: the values given, or a failed experiment."""
        given = {p: values[p] for p in m.properties if values.get(p) is not None}
        if not given:
            return JobResult(status=JobStatus.FAILED, error="reported as failed (no value given)")
        return JobResult(
            status=JobStatus.SUCCEEDED,
            properties={p: PropertyValue(value=v, std=stds.get(p), units=expected_units(self.campaign, m, p))
                        for p, v in given.items()},
            property_errors={p: "no value given" for p in m.properties if p not in given},
        )

    def _picks(self, batch_id: int) -> pd.DataFrame:
        """The batch as stored: each item's parameters and reason, in rank order, indexed by pool label."""
        props = modelled_properties(self.campaign)
        with self.db.reading() as session:
            batch = session.get(BatchRecord, batch_id)
            assert batch is not None
            iteration = session.get(IterationRecord, batch.iteration_id)
            assert iteration is not None
            items = session.execute(
                select(BatchItemRecord, CandidateRecord)
                .join(CandidateRecord, CandidateRecord.id == BatchItemRecord.candidate_id)
                .where(BatchItemRecord.batch_id == batch_id).order_by(BatchItemRecord.rank)).all()
            rows, labels = [], []
            for item, candidate in items:
                params = dict(candidate.representation.get("params") or {})
                predictions = item.predictions or {}
                row: dict[str, Any] = {name: params.get(name) for name in self.space.names}
                row.update({"rank": item.rank, "acquisition_value": item.acquisition_value})
                for p in props:
                    row[f"{p}_mean"] = (predictions.get(p) or {}).get("mean")
                    row[f"{p}_std"] = (predictions.get(p) or {}).get("std")
                row.update({"reason": item.reason, "generator": candidate.origin,
                            "fingerprint": candidate.fingerprint, "iteration": iteration.number,
                            "batch": batch_id, "model_version": iteration.model_version_id})
                rows.append(row)
                labels.append(self._labels.get(candidate.fingerprint, len(labels)))
        return pd.DataFrame(rows, index=pd.Index(labels, name=None if self.pool is None else self.pool.index.name))

    # -- checking what the caller hands in ----------------------------------------------------------------------

    def _property_order(self, prop: str) -> tuple[int, str]:
        order = modelled_properties(self.campaign)
        return (order.index(prop) if prop in order else len(order), prop)

    def _params(self, frame: pd.DataFrame, what: str) -> list[tuple[Any, dict[str, Any]]]:
        """Each row's parameters as plain Python values, each checked against the space (one sentence if not)."""
        if not isinstance(frame, pd.DataFrame):
            raise RecommenderError(f"the {what} must be a pandas DataFrame, not {type(frame).__name__}")
        if frame.columns.duplicated().any():
            dup = sorted({str(c) for c in frame.columns[frame.columns.duplicated()]})
            raise RecommenderError(f"the {what} has duplicated columns {dup}")
        missing = [name for name in self.space.names if name not in frame.columns]
        if missing:
            raise RecommenderError(f"the {what} lacks the parameter columns {missing} "
                                   f"(the campaign's space has {self.space.names})")
        if len(frame) == 0:
            raise RecommenderError(f"the {what} has no rows")
        out = []
        for label, values in zip(frame.index, frame[self.space.names].itertuples(index=False), strict=True):
            params = {name: plain_value(v) for name, v in zip(self.space.names, values, strict=True)}
            for p in self.space.parameters:
                if isinstance(p, CategoricalParameter) and isinstance(params[p.name], float) \
                        and params[p.name].is_integer() and int(params[p.name]) in p.options:
                    params[p.name] = int(params[p.name])
            problems = self.space.violations(params)
            if problems:
                raise RecommenderError(f"{what.split()[0]} {_row_label(label)} is not in the campaign's space: "
                                       f"{problems[0]}")
            out.append((label, params))
        return out

    def _checked_pool(self, pool: pd.DataFrame) -> pd.DataFrame:
        self._params(pool, "pool")
        return pool

    def _pool_labels(self, pool: pd.DataFrame) -> dict[str, Any]:
        labels: dict[str, Any] = {}
        for label, params in self._params(pool, "pool"):
            labels.setdefault(Candidate.point(params).fingerprint, label)
        return labels

    def _checked_measurements(self, frame: pd.DataFrame
                              ) -> list[tuple[dict[str, Any], dict[str, float | None], dict[str, float | None]]]:
        rows = self._params(frame, "measurements frame")
        missing = [p for p in self.properties if p not in frame.columns]
        if missing:
            raise RecommenderError(f"the measurements frame lacks the property columns {missing} (NaN marks a "
                                   "failed experiment)")
        seen: dict[str, Any] = {}
        out = []
        for i, (label, params) in enumerate(rows):
            fp = Candidate.point(params).fingerprint
            if fp in seen:
                raise RecommenderError(f"measurements {_row_label(label)} repeats the candidate of "
                                       f"{_row_label(seen[fp])}; add a repeat in a later call")
            seen[fp] = label
            values: dict[str, float | None] = {}
            stds: dict[str, float | None] = {}
            for prop in self.properties:
                values[prop] = self._number(frame[prop].iloc[i], label, prop)
                std_col = f"{prop}_std"
                std = self._number(frame[std_col].iloc[i], label, std_col) \
                    if std_col in frame.columns else None
                if std is not None and std < 0:
                    raise RecommenderError(f"measurements {_row_label(label)}: {std_col} is {std:g}, below zero")
                stds[prop] = std
            out.append((params, values, stds))
        return out

    @staticmethod
    def _number(value: Any, label: Any, column: str) -> float | None:
        """The value as a float; None where it is missing (NaN, None, NA), which marks a failed experiment."""
        value = plain_value(value)
        if value is None or value is pd.NA or (isinstance(value, float) and math.isnan(value)):
            return None
        problem = number_problem(value)
        if problem is not None:
            raise RecommenderError(f"measurements {_row_label(label)}: {column}: {problem}")
        return float(value)
