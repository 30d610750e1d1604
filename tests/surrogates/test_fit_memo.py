"""A fit starts from the previous fit's memo: the verdict is kept until the data grows, and is the same read back.

The loop holds nothing between iterations, so the memo goes through the database; the ask/tell API may hold
it in memory. Both must give the same model, which these tests compare bit for bit on SQLite and PostgreSQL.
"""

from __future__ import annotations

import json
from typing import Any

import pytest
import torch

from surrogates import fit_surrogate
from surrogates.reuse import REDECIDE_GROWTH

SMALL_ENSEMBLE = {"ensemble": {"n_members": 3, "hidden": 8, "steps": 40}}


@pytest.fixture(autouse=True)
def _one_thread() -> None:
    torch.set_num_threads(1)


def _data(n: int) -> tuple[torch.Tensor, torch.Tensor]:
    g = torch.Generator().manual_seed(7)
    X = torch.rand(n, 3, generator=g, dtype=torch.double)
    y = torch.sin(5 * X[:, 0]) + X[:, 1] ** 2 + 0.05 * torch.randn(n, generator=g, dtype=torch.double)
    return X, y.unsqueeze(-1)


def _same_model(a: Any, b: Any) -> bool:
    X = torch.linspace(0, 1, 15, dtype=torch.double).unsqueeze(-1).expand(15, 3).contiguous()
    (ma, va), (mb, vb) = a.predict(X), b.predict(X)
    return torch.equal(ma, mb) and torch.equal(va, vb)


def _same_members(a: Any, b: Any) -> bool:
    """The two fits' ensembles (before recalibration, which a kept verdict keeps from the earlier data) are equal."""
    X = torch.linspace(0, 1, 15, dtype=torch.double).unsqueeze(-1).expand(15, 3).contiguous()
    return all(torch.equal(u, v) for u, v in zip(a.outputs[0].base.member_predictions(X),
                                                  b.outputs[0].base.member_predictions(X), strict=True))


def test_a_kept_verdict_skips_cross_validation_until_the_data_grows() -> None:
    X, y = _data(40)
    first = fit_surrogate(X[:20], y[:20], kind="auto", settings=SMALL_ENSEMBLE)
    assert "kept" not in first.reason and first.memo["outputs"]["0"]["verdict_n"] == 20
    assert first.metrics["0"]["n"] == 20

    kept = fit_surrogate(X[:22], y[:22], kind="auto", settings=SMALL_ENSEMBLE, memo=first.memo)
    assert kept.kind == first.kind and "kept from the verdict on 20 results" in kept.reason, kept.reason
    assert kept.metrics["0"]["n"] == 20  # the cross-validation that stands is the one on 20 results
    assert kept.outputs[0].recalibration == first.outputs[0].recalibration
    assert kept.n_train == 22 and kept.memo["outputs"]["0"]["verdict_n"] == 20

    n = int(20 * (1 + REDECIDE_GROWTH)) + 1
    again = fit_surrogate(X[:n], y[:n], kind="auto", settings=SMALL_ENSEMBLE, memo=kept.memo)
    assert f"re-decided: output 0 grew from 20 to {n} results" in again.reason, again.reason
    assert again.metrics["0"]["n"] == n and again.memo["outputs"]["0"]["verdict_n"] == n


def test_a_memo_for_other_settings_or_a_damaged_one_is_decided_afresh_in_one_sentence() -> None:
    X, y = _data(24)
    first = fit_surrogate(X[:20], y[:20], kind="gp")
    other = fit_surrogate(X[:21], y[:21], kind="gp", settings={"kernel": "matern", "recalibrate": False},
                          memo=first.memo)
    assert "re-decided: previous fit not reusable (the surrogate settings changed)" in other.reason
    broken = json.loads(json.dumps(first.memo))
    broken["outputs"]["0"]["std_map"]["a"] = "lots"
    damaged = fit_surrogate(X[:21], y[:21], kind="gp", memo=broken)
    assert "re-decided: previous fit not reusable (output 0's verdict is malformed)" in damaged.reason
    hyper = json.loads(json.dumps(first.memo))
    hyper["outputs"]["0"]["hyper"] = {"covar_module.raw_lengthscale": [[1.0]]}  # not this GP's parameters
    cold = fit_surrogate(X[:21], y[:21], kind="gp", memo=hyper)
    assert "kept from the verdict" in cold.reason and "hyperparameters" not in cold.reason.split("kept")[1]
    assert _same_model(cold, fit_surrogate(X[:21], y[:21], kind="gp", memo={**hyper, "outputs": {
        "0": {k: v for k, v in hyper["outputs"]["0"].items() if k != "hyper"}}}))


def test_kept_hyperparameters_are_reoptimised_once_the_data_grew_enough() -> None:
    X, y = _data(40)
    first = fit_surrogate(X[:30], y[:30], kind="gp")
    conditioned = fit_surrogate(X[:31], y[:31], kind="gp", memo=first.memo)
    assert "hyperparameters of the fit on 30 results kept" in conditioned.reason, conditioned.reason
    assert conditioned.memo["outputs"]["0"]["hyper"] == first.memo["outputs"]["0"]["hyper"]
    grown = fit_surrogate(X[:34], y[:34], kind="gp", memo=conditioned.memo)
    assert "hyperparameters re-optimised from the fit on 30 results" in grown.reason, grown.reason
    assert grown.memo["outputs"]["0"]["hyper_n"] == 34


def test_the_memo_read_back_from_the_database_gives_the_same_model_as_in_process(migrated_db_url: str) -> None:
    from agent.loop.fit import previous_memo
    from agent.store import Database
    from agent.store.campaigns import register_campaign
    from agent.store.models import IterationRecord
    from tests.loop.conftest import branin_spec

    X, y = _data(40)
    first = fit_surrogate(X[:24], y[:24], kind="auto", settings=SMALL_ENSEMBLE)
    db = Database(migrated_db_url)
    with db.transaction() as session:
        campaign_id = register_campaign(session, branin_spec()).id
        session.add(IterationRecord(campaign_id=campaign_id, number=1, step="complete",
                                    info={"fit_memo": first.memo}))
    db.dispose()
    restarted = Database(migrated_db_url)  # a new process would open the store afresh
    with restarted.reading() as session:
        stored = previous_memo(session, campaign_id, before=2)
        assert previous_memo(session, campaign_id, before=1) is None
    restarted.dispose()
    assert stored == first.memo
    for n in (26, 37):  # a kept verdict, and a re-decided one (warm-started hyperparameters either way)
        in_process = fit_surrogate(X[:n], y[:n], kind="auto", settings=SMALL_ENSEMBLE, memo=first.memo)
        read_back = fit_surrogate(X[:n], y[:n], kind="auto", settings=SMALL_ENSEMBLE, memo=stored)
        assert _same_model(in_process, read_back)
        assert in_process.reason == read_back.reason and in_process.memo == read_back.memo


def test_a_kept_ensemble_is_fine_tuned_from_its_previous_members_and_the_same_read_back() -> None:
    X, y = _data(40)
    first = fit_surrogate(X[:24], y[:24], kind="ensemble", settings=SMALL_ENSEMBLE)
    entry = first.memo["outputs"]["0"]["ensemble"]
    assert entry["warm"] == 0 and entry["spread_ref"] > 0
    kept = fit_surrogate(X[:26], y[:26], kind="ensemble", settings=SMALL_ENSEMBLE, memo=first.memo)
    assert "ensemble fine-tuned from the previous fit's members (1 in a row" in kept.reason, kept.reason
    assert kept.memo["outputs"]["0"]["ensemble"]["warm"] == 1
    assert kept.memo["outputs"]["0"]["ensemble"]["spread_ref"] == entry["spread_ref"]  # the fresh members' spread
    fresh = fit_surrogate(X[:26], y[:26], kind="ensemble", settings=SMALL_ENSEMBLE)
    assert not _same_members(kept, fresh)  # it did start from the previous members
    # what a resumed campaign reads back from the database (plain JSON) gives the same fine-tuned model
    read_back = fit_surrogate(X[:26], y[:26], kind="ensemble", settings=SMALL_ENSEMBLE,
                              memo=json.loads(json.dumps(first.memo)))
    assert _same_model(kept, read_back) and kept.memo == read_back.memo
    # the fine-tuned members still fit the data about as well as freshly trained ones
    held = X[26:], y[26:, 0]
    err = {name: float(((m.predict(held[0])[0][:, 0] - held[1]) ** 2).mean().sqrt()) for name, m in
           (("kept", kept), ("fresh", fresh))}
    assert err["kept"] < 1.5 * err["fresh"], err


def test_a_kept_ensemble_is_trained_afresh_when_its_members_are_unusable_or_fine_tuned_too_often() -> None:
    from surrogates.reuse import MAX_WARM

    X, y = _data(30)
    first = fit_surrogate(X[:24], y[:24], kind="ensemble", settings=SMALL_ENSEMBLE)
    fresh = fit_surrogate(X[:26], y[:26], kind="ensemble", settings=SMALL_ENSEMBLE)
    damaged = json.loads(json.dumps(first.memo))
    damaged["outputs"]["0"]["ensemble"]["state"]["members.weights.0"]["f32"] = "not base64!"
    cold = fit_surrogate(X[:26], y[:26], kind="ensemble", settings=SMALL_ENSEMBLE, memo=damaged)
    assert "kept from the verdict" in cold.reason and "ensemble trained afresh (previous members unreadable)" \
        in cold.reason, cold.reason
    assert _same_members(cold, fresh)
    wrong_shape = json.loads(json.dumps(first.memo))
    wrong_shape["outputs"]["0"]["ensemble"]["state"]["members.weights.0"]["shape"] = [3, 2, 8]
    assert "previous members unreadable" in fit_surrogate(X[:26], y[:26], kind="ensemble", settings=SMALL_ENSEMBLE,
                                                          memo=wrong_shape).reason
    for bad_ref in (0.0, -1.0, "nan", None):  # no fresh spread to judge the fine-tuned one against
        no_ref = json.loads(json.dumps(first.memo))
        no_ref["outputs"]["0"]["ensemble"]["spread_ref"] = bad_ref
        assert "previous members unreadable" in fit_surrogate(X[:26], y[:26], kind="ensemble",
                                                              settings=SMALL_ENSEMBLE, memo=no_ref).reason, bad_ref
    tired = json.loads(json.dumps(first.memo))
    tired["outputs"]["0"]["ensemble"]["warm"] = MAX_WARM
    again = fit_surrogate(X[:26], y[:26], kind="ensemble", settings=SMALL_ENSEMBLE, memo=tired)
    assert f"ensemble trained afresh (fine-tuned {MAX_WARM} times in a row)" in again.reason, again.reason
    assert _same_members(again, fresh) and again.memo["outputs"]["0"]["ensemble"]["warm"] == 0


def test_fine_tuned_members_that_agree_too_much_are_trained_afresh() -> None:
    X, y = _data(30)
    first = fit_surrogate(X[:24], y[:24], kind="ensemble", settings=SMALL_ENSEMBLE)
    confident = json.loads(json.dumps(first.memo))
    confident["outputs"]["0"]["ensemble"]["spread_ref"] = 1e6  # fresh members disagreed far more than these do
    checked = fit_surrogate(X[:26], y[:26], kind="ensemble", settings=SMALL_ENSEMBLE, memo=confident)
    assert "ensemble trained afresh (fine-tuned members' spread fell to 0.00 of the fresh one)" in checked.reason
    assert _same_members(checked, fit_surrogate(X[:26], y[:26], kind="ensemble", settings=SMALL_ENSEMBLE))


def test_fine_tuned_members_disagree_about_as_much_as_fresh_ones() -> None:
    """On the fresh schedule's tail the members take in the new rows without drifting apart: the recalibration
    (fitted on fresh members' CV predictions) stays right for them. At the full rate they spread 2-5x more."""
    X, y = _data(40)
    settings = {"ensemble": {"n_members": 5, "hidden": 16}}  # the default steps (300), where the drift was seen
    first = fit_surrogate(X[:20], y[:20], kind="ensemble", settings=settings)
    kept = fit_surrogate(X[:24], y[:24], kind="ensemble", settings=settings, memo=first.memo)
    assert "fine-tuned" in kept.reason, kept.reason
    ratio = kept.outputs[0].base.spread(X[:24]) / first.memo["outputs"]["0"]["ensemble"]["spread_ref"]
    assert 0.7 <= ratio <= 1.4, ratio


def test_members_trained_in_one_chunk_equal_those_trained_in_chunks_of_five() -> None:
    """In one process all members train as one batched module (half the time of two chunks); a cluster's chunks
    must give the same members, bit for bit, since each has its own seed and the batched matmuls do not mix them."""
    from surrogates.ensemble import DEFAULTS, MEMBER_CHUNK, member_chunk, train_members

    X, y = _data(30)
    xs, ys = (X - X.mean(0)) / X.std(0), (y[:, 0] - y.mean()) / y.std()
    settings = {**DEFAULTS, "steps": 30}
    members = list(range(10))
    assert member_chunk(10) == 10 and MEMBER_CHUNK == 5
    whole = train_members(xs, ys, settings, 3, members)
    parts = train_members(xs, ys, settings, 3, members[:5]) + train_members(xs, ys, settings, 3, members[5:])
    assert all(torch.equal(a, b) for (wa, ba), (wb, bb) in zip(whole, parts, strict=True)
               for a, b in zip(wa + ba, wb + bb, strict=True))
    start = [torch.stack([m[0][i] for m in whole]) for i in range(3)], [torch.stack([m[1][i] for m in whole])
                                                                       for i in range(3)]
    warm_whole = train_members(xs, ys, settings, 3, members, init=start)
    warm_parts = train_members(xs, ys, settings, 3, members[:5], init=start) + \
        train_members(xs, ys, settings, 3, members[5:], init=start)
    assert all(torch.equal(a, b) for (wa, ba), (wb, bb) in zip(warm_whole, warm_parts, strict=True)
               for a, b in zip(wa + ba, wb + bb, strict=True))


def test_members_trained_on_one_thread_equal_those_trained_on_several() -> None:
    """Training runs on one torch thread (far faster on a busy machine); the members are those of several threads."""
    from surrogates.ensemble import DEFAULTS, train_members

    X, y = _data(60)
    xs, ys = (X - X.mean(0)) / X.std(0), (y[:, 0] - y.mean()) / y.std()
    settings = {**DEFAULTS, "steps": 20, "batch_size": 60}
    torch.set_num_threads(2)
    try:
        two = train_members(xs, ys, settings, 5, list(range(10)))
        assert torch.get_num_threads() == 2  # restored
        torch.set_num_threads(1)
        one = train_members(xs, ys, settings, 5, list(range(10)))
    finally:
        torch.set_num_threads(1)
    assert all(torch.equal(a, b) for (wa, ba), (wb, bb) in zip(two, one, strict=True)
               for a, b in zip(wa + ba, wb + bb, strict=True))


def test_a_fit_runs_on_one_thread_and_gives_torch_its_threads_back() -> None:
    """fit_surrogate runs its small fits on one torch thread (surrogates/threads.py) and restores the setting."""
    from surrogates.threads import one_thread

    X, y = _data(24)
    torch.set_num_threads(2)
    try:
        seen = []
        with one_thread():
            seen.append(torch.get_num_threads())
        fit_surrogate(X, y, kind="gp", cv_folds=0)
        assert seen == [1] and torch.get_num_threads() == 2
    finally:
        torch.set_num_threads(1)
