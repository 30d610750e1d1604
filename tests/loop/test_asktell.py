"""The ask/tell API (``agent.Recommender``): the loop's own steps over a pool DataFrame, one batch at a time."""

from __future__ import annotations

import math
from collections.abc import Iterator
from typing import Any

import numpy as np
import pandas as pd
import pytest
from sqlalchemy import select

from agent import Recommender, RecommenderError
from agent.adapters import open_adapters
from agent.loop import Backoff, LoopContext, run_campaign
from agent.spec import Campaign
from agent.store import Database
from agent.store.campaigns import register_campaign
from agent.store.migrate import upgrade
from agent.store.models import BatchItemRecord, BatchRecord, CandidateRecord, IterationRecord, MeasurementRecord
from generators.base import GenerationContext
from generators.registry import build_generator
from tests.loop.conftest import branin_spec


def _grid_spec(**overrides: Any) -> Campaign:
    """Two parameters on a 0.1 grid and a categorical choice: 2 x 11 x 11 = 242 candidates, y minimised."""
    data: dict[str, Any] = {
        "name": "asktell-grid", "seed": 3,
        "space": {"type": "parametric", "parameters": [
            {"name": "a", "type": "continuous", "bounds": [0.0, 1.0], "step": 0.1},
            {"name": "b", "type": "continuous", "bounds": [0.0, 1.0], "step": 0.1},
            {"name": "kind", "type": "categorical", "options": ["p", "q"]},
        ]},
        "objectives": [{"property": "y", "goal": "minimize"}],
        "budget": {"max_experiments": 100},
        "batch_size": 3, "initial_design_size": 2,
        "adapters": {"lab": {"type": "simlab"}},
        "measurements": [{"properties": ["y"], "adapter": "lab"}],
        "surrogate": {"type": "gp", "cv_folds": 0},  # the API, not model choice, is under test here
    }
    data.update(overrides)
    return Campaign.model_validate(data)


def _grid_pool() -> pd.DataFrame:
    grid = np.round(np.linspace(0, 1, 11), 1)
    rows = [{"a": a, "b": b, "kind": k} for k in ("p", "q") for a in grid for b in grid]
    frame = pd.DataFrame(rows, index=[f"c{i}" for i in range(len(rows))])
    frame["y"] = (frame.a - 0.3) ** 2 + (frame.b - 0.7) ** 2 + np.where(frame.kind == "q", 0.0, 0.2)
    return frame


def test_recommend_tell_recommend_over_a_small_pool() -> None:
    pool = _grid_pool()
    with Recommender(_grid_spec(), pool[["a", "b", "kind"]]) as rec:
        first = rec.recommend()  # the campaign's batch size; nothing measured: the space-filling design
        assert len(first) == 3 and set(first.index) <= set(pool.index)
        assert first["reason"].str.startswith("initial design").all() and first["acquisition_value"].isna().all()
        told = pool.loc[first.index].copy()
        told.loc[told.index[0], "y"] = math.nan  # a failed experiment is data too
        assert rec.add_measurements(told) == 3

        second = rec.recommend(2)  # two results: the model's turn
        assert len(second) == 2 and not set(second.index) & set(first.index)
        assert second["acquisition_value"].notna().all() and second["model_version"].notna().all()
        assert (second["y_std"] > 0).all() and second["reason"].str.startswith("qlogei").all()
        assert list(second.columns[:3]) == ["a", "b", "kind"] and list(second["rank"]) == [0, 1]

        third = rec.recommend(2)  # the second batch is still out: pending, never offered twice
        assert not set(third.index) & (set(first.index) | set(second.index))
        # rows never recommended may be told too, with a standard deviation
        extra = pool.loc[["c0", "c5"]].assign(y_std=[0.01, 0.02])
        assert rec.add_measurements(pd.concat([pool.loc[third.index], pool.loc[second.index], extra])) == 6
        fourth = rec.recommend(4)
        assert not set(fourth.index) & (set(first.index) | set(second.index) | set(third.index) | {"c0", "c5"})
        with rec.db.reading() as session:
            stored = session.execute(select(MeasurementRecord.failed, MeasurementRecord.std)).all()
            assert sorted(f for f, _ in stored) == [False] * 8 + [True]
            assert sorted(s for _, s in stored if s is not None) == [0.01, 0.02]
            numbers = list(session.scalars(select(IterationRecord.number).order_by(IterationRecord.number)))
            assert numbers == [1, 2, 3, 4]


def test_picks_and_reasons_are_those_a_campaign_stores(sqlite_url: str, simlab: Any) -> None:
    """A real campaign (campaign defaults: surrogate ``auto``, acquisition ``auto``) on the simulated lab; then
    its results told to a Recommender in the same order: every batch is the campaign's, reason for reason."""
    spec = branin_spec(simlab.url, simlab.token, budget={"max_experiments": 8}, surrogate={"type": "auto"})
    assert spec.acquisition.type == "auto"
    upgrade(sqlite_url)
    db = Database(sqlite_url)
    with db.transaction() as session:
        campaign_id = register_campaign(session, spec).id
    with open_adapters(spec) as adapters:
        ctx = LoopContext(db=db, campaign=spec, campaign_id=campaign_id, adapters=adapters,
                          backoff=Backoff(initial=0.02, maximum=0.2))
        assert run_campaign(ctx).status == "stopped"
    with db.reading() as session:
        batches = []
        for batch in session.scalars(select(BatchRecord).order_by(BatchRecord.id)):
            items = session.execute(
                select(BatchItemRecord, CandidateRecord).join(CandidateRecord)
                .where(BatchItemRecord.batch_id == batch.id).order_by(BatchItemRecord.rank)).all()
            batches.append([(c.fingerprint, c.representation["params"], i.acquisition_value, i.posterior_mean,
                             i.posterior_std, i.reason) for i, c in items])
        measured = {c.fingerprint: (m.value, m.std) for m, c in session.execute(
            select(MeasurementRecord, CandidateRecord).join(CandidateRecord))}
    db.dispose()
    assert len(batches) == 2 and batches[1][0][2] is not None  # an initial design, then the model's batch

    generator = build_generator(spec.generator, spec.space)
    pool = pd.DataFrame([c.params for c in generator.propose(spec.space, GenerationContext(), 10**6)])
    with Recommender(spec, pool) as rec:
        for batch in batches:
            picks = rec.recommend(len(batch))
            assert list(picks["fingerprint"]) == [b[0] for b in batch]
            assert list(picks["reason"]) == [b[5] for b in batch]
            for (_, _, acq, mean, std, _), (_, row) in zip(batch, picks.iterrows(), strict=True):
                assert (acq, mean, std) == (row["acquisition_value"], row["y_mean"], row["y_std"]) or (
                    acq is None and pd.isna(row["acquisition_value"]))
            told = pd.DataFrame([{**b[1], "y": measured[b[0]][0], "y_std": measured[b[0]][1]} for b in batch])
            rec.add_measurements(told)


@pytest.fixture(scope="module")
def fresh() -> Iterator[Recommender]:
    """One recommender for the refusals: a refused frame stores nothing, so each test finds it untouched."""
    with Recommender(_grid_spec(), _grid_pool()) as rec:
        yield rec


@pytest.mark.parametrize(("frame", "message"), [
    ([{"a": 0.1, "b": 0.2, "kind": "p", "y": 1.0}], "must be a pandas DataFrame, not list"),
    (pd.DataFrame({"a": [0.1], "kind": ["p"], "y": [1.0]}), "lacks the parameter columns ['b']"),
    (pd.DataFrame({"a": [0.1], "b": [0.2], "kind": ["p"]}), "lacks the property columns ['y']"),
    (pd.DataFrame({"a": [1.5], "b": [0.2], "kind": ["p"], "y": [1.0]}), "row 0 is not in the campaign's space: a=1.5"),
    (pd.DataFrame({"a": [0.1], "b": [0.2], "kind": ["r"], "y": [1.0]}), "kind='r' is not one of ['p', 'q']"),
    (pd.DataFrame({"a": [0.1], "b": [0.2], "kind": ["p"], "y": ["high"]}), "y: the value is text, not a number"),
    (pd.DataFrame({"a": [0.1], "b": [0.2], "kind": ["p"], "y": [math.inf]}), "y: the value is +infinite"),
    (pd.DataFrame({"a": [0.1], "b": [0.2], "kind": ["p"], "y": [1.0], "y_std": [-1.0]}), "y_std is -1, below zero"),
    (pd.DataFrame({"a": [0.1, 0.1], "b": [0.2, 0.2], "kind": ["p", "p"], "y": [1.0, 2.0]}),
     "row 1 repeats the candidate of row 0"),
    (pd.DataFrame({"a": [], "b": [], "kind": [], "y": []}), "has no rows"),
    (pd.DataFrame([[0.1, 0.2, 0.3, "p", 1.0]], columns=["a", "b", "b", "kind", "y"]), "duplicated columns ['b']"),
])
def test_bad_measurement_frames_are_refused_in_one_sentence(frame: Any, message: str, fresh: Recommender) -> None:
    with pytest.raises(RecommenderError) as caught:
        fresh.add_measurements(frame)
    assert message in str(caught.value) and "\n" not in str(caught.value)
    with fresh.db.reading() as session:  # nothing half-written
        assert session.scalar(select(MeasurementRecord.id).limit(1)) is None
        assert session.scalar(select(CandidateRecord.id).limit(1)) is None


def test_bad_pools_and_requests_are_refused_in_one_sentence() -> None:
    with pytest.raises(RecommenderError, match=r"the pool lacks the parameter columns \['kind'\]"):
        Recommender(_grid_spec(), pd.DataFrame({"a": [0.1], "b": [0.2]}))
    with pytest.raises(RecommenderError, match=r"pool row 'x' is not in the campaign's space: b=-1"):
        Recommender(_grid_spec(), pd.DataFrame({"a": [0.1], "b": [-1.0], "kind": ["p"]}, index=["x"]))
    with Recommender(_grid_spec(), _grid_pool().iloc[:2]) as rec:
        with pytest.raises(RecommenderError, match="n must be a whole number of at least 1, got 0"):
            rec.recommend(0)
        rec.recommend(2)
        with pytest.raises(RecommenderError, match="nothing to recommend: the generator proposed no new candidate"):
            rec.recommend(1)


def test_a_kept_ensemble_is_fine_tuned_the_same_after_a_resume(tmp_path: Any) -> None:
    """The ensemble's members a kept verdict fine-tunes come from the database: a recommender closed and
    reopened on the same store (a crash-resumed campaign) picks what an uninterrupted one picks, for the same
    reason."""
    pool = _grid_pool()
    spec = _grid_spec(surrogate={"type": "ensemble", "ensemble": {"n_members": 3, "hidden": 8, "steps": 40}})
    told = pool.iloc[::11]  # 22 rows: past the initial design, so the first ask cross-validates

    def first_half(rec: Recommender) -> None:
        rec.add_measurements(told)
        picks = rec.recommend()
        assert "ensemble fine-tuned" not in picks["reason"].iloc[0]
        rec.add_measurements(pool.loc[picks.index])

    def kept_reason(rec: Recommender) -> str:
        from agent.store.models import ModelVersionRecord

        with rec.db.reading() as session:
            return str(session.scalars(select(ModelVersionRecord.reason).order_by(ModelVersionRecord.id.desc())).first())

    with Recommender(spec, pool[["a", "b", "kind"]]) as rec:
        first_half(rec)
        uninterrupted = rec.recommend()
        reason = kept_reason(rec)
    assert "kept from the verdict" in reason and "ensemble fine-tuned from the previous fit's members (1 in a row" \
        in reason, reason
    url = f"sqlite:///{tmp_path}/resumed.sqlite"
    with Recommender(spec, pool[["a", "b", "kind"]], database=url) as before_crash:
        first_half(before_crash)
    with Recommender(spec, pool[["a", "b", "kind"]], database=url) as resumed:
        again = resumed.recommend()
        assert kept_reason(resumed) == reason
    assert list(again.index) == list(uninterrupted.index)
    assert np.array_equal(again["acquisition_value"].to_numpy(), uninterrupted["acquisition_value"].to_numpy())


def test_the_pool_parsed_once_proposes_what_the_frame_pool_proposes() -> None:
    """``ParsedPool`` (the recommender's pool, read once) and ``FramePool`` (read on every ask) propose the same
    candidates in the same order, whatever is known and however many are asked for; repeated rows once."""
    from agent.asktell import ParsedPool
    from generators.pool import FramePool

    space = _grid_spec().space
    frame = pd.concat([_grid_pool(), _grid_pool().iloc[:5]])  # five repeated rows
    parsed, plain = ParsedPool(frame), FramePool(frame)
    everything = [c.fingerprint for c in plain.propose(space, GenerationContext(), 10**6)]
    assert len(everything) == 242
    for known, n in [(set(), 10**6), (set(everything[::3]), 10**6), (set(everything[5:50]), 7), (set(everything), 9)]:
        context = GenerationContext(known_fingerprints=known)
        assert [c.fingerprint for c in parsed.propose(space, context, n)] == \
            [c.fingerprint for c in plain.propose(space, context, n)]
