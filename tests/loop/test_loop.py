"""The loop's steps over a real store and the real simulated lab (in-process, real HTTP on loopback)."""

from __future__ import annotations

from typing import Any

import pytest
from sqlalchemy import func, select

from agent.adapters import open_adapters
from agent.loop import (
    Backoff,
    LoopContext,
    apply_decision,
    dispatch,
    fit,
    generate,
    open_iteration,
    run_campaign,
    select_batch_step,
    submit_pending,
    sync,
)
from agent.loop.dispatch import create_jobs
from agent.loop.gate import DecisionError
from agent.loop.state import latest_recommendation, observations
from agent.policy import Decision
from agent.store import Database
from agent.store.campaigns import register_campaign
from agent.store.migrate import upgrade
from agent.store.models import (
    BatchRecord,
    CandidateRecord,
    EventRecord,
    IterationRecord,
    JobRecord,
    MeasurementRecord,
    ModelVersionRecord,
)
from tests.loop.conftest import branin_spec
from tests.support.labs import token_env


def make_ctx(url: str, spec: Any, adapters: dict) -> LoopContext:
    upgrade(url)
    db = Database(url)
    with db.transaction() as session:
        campaign_id = register_campaign(session, spec).id
    return LoopContext(db=db, campaign=spec, campaign_id=campaign_id, adapters=adapters,
                       backoff=Backoff(initial=0.02, maximum=0.2))


def test_campaign_runs_to_budget_and_stores_every_decision(sqlite_url: str, simlab: Any) -> None:
    spec = branin_spec(simlab.url, simlab.token)
    with open_adapters(spec) as adapters:
        ctx = make_ctx(sqlite_url, spec, adapters)
        outcome = run_campaign(ctx)
    assert outcome.status == "stopped" and outcome.reason == "budget spent: 12 of 12 experiments"
    with ctx.db.reading() as session:
        iterations = list(session.scalars(select(IterationRecord).order_by(IterationRecord.number)))
        assert [it.step for it in iterations] == ["complete"] * 3
        assert iterations[0].model_version_id is None  # initial design: no model yet
        assert all(it.model_version_id is not None for it in iterations[1:])
        batches = list(session.scalars(select(BatchRecord)))
        assert {b.status for b in batches} == {"dispatched"} and {b.approver for b in batches} == {"policy:auto"}
        assert all(item.reason for b in batches for item in b.items)
        assert all(item.acquisition_value is not None for b in batches[1:] for item in b.items)
        jobs = list(session.scalars(select(JobRecord)))
        assert len(jobs) == 12 and {j.status for j in jobs} == {"succeeded"}
        assert session.scalar(select(func.count()).select_from(MeasurementRecord)) == 12
        # every fitted iteration records the model's pick among measured candidates; the newest is the summary's
        assert all("recommended" in (it.info or {}) for it in iterations[1:])
        pick = latest_recommendation(session, ctx.campaign_id)
        measured = {c.fingerprint for c in observations(session, spec, ctx.campaign_id).candidates}
        assert pick is not None and pick["iteration"] == 3 and pick["candidate"] in measured
        assert set(pick["content"]) == {"x1", "x2"} and pick["std"] >= 0
        # the stop refits on every result (the last batch included) and that pick is the summary's
        assert pick["final"] and pick["n_results"] == 12
        assert iterations[-1].info["recommended"]["candidate"] in measured  # the iteration-start pick stays
        final = iterations[-1].info["recommended_final"]
        # the stop's pick names its own model version: every result, a version beside the iteration's own
        version = session.get(ModelVersionRecord, final["model_version"])
        assert version is not None and version.n_train == 12 and version.iteration_id == iterations[-1].id
        assert version.id != iterations[-1].model_version_id and "at the stop" in version.reason
        assert len({j.idempotency_key for j in jobs}) == 12
        versions_before = session.scalar(select(func.count()).select_from(ModelVersionRecord))
    # everything is decided: running again only confirms the stop, and does not refit for the same results
    with open_adapters(spec) as adapters:
        ctx.adapters = adapters
        assert run_campaign(ctx).status == "stopped"
    with ctx.db.reading() as session:
        assert session.get(IterationRecord, iterations[-1].id).info["recommended_final"] == final
        assert session.scalar(select(func.count()).select_from(ModelVersionRecord)) == versions_before
    ctx.db.dispose()


def test_rejected_batch_is_reproposed_without_its_candidates(sqlite_url: str, simlab: Any) -> None:
    spec = branin_spec(simlab.url, simlab.token, approval={"policy": "manual"})
    with open_adapters(spec) as adapters:
        ctx = make_ctx(sqlite_url, spec, adapters)
        iteration = open_iteration(ctx)
        fitted = fit(ctx, iteration.id)
        first = select_batch_step(ctx, iteration.id, fitted, generate(ctx, iteration.id, fitted))
        with ctx.db.reading() as session:
            rejected = {item.candidate_id for item in session.get(BatchRecord, first).items}  # type: ignore[union-attr]
        with pytest.raises(DecisionError, match="not in batch"):
            apply_decision(ctx.db, first, Decision(approver="ada", drop=[99999]))
        assert apply_decision(ctx.db, first, Decision(approver="ada", approve=False, note="too close")) == "rejected"
        second = select_batch_step(ctx, iteration.id, fitted, generate(ctx, iteration.id, fitted))
        with ctx.db.reading() as session:
            batch = session.get(BatchRecord, second)
            assert batch is not None and batch.replaces_batch_id == first
            assert not rejected & {item.candidate_id for item in batch.items}
            keep = sorted(item.candidate_id for item in batch.items)
        assert apply_decision(ctx.db, second, Decision(approver="bo", drop=keep[:1])) == "edited"
        assert apply_decision(ctx.db, second, Decision(approver="bo", drop=keep[:1])) == "edited"  # idempotent
        with pytest.raises(DecisionError, match="already decided"):
            apply_decision(ctx.db, second, Decision(approver="eve", approve=False))
        dispatch(ctx, second)
        with ctx.db.reading() as session:
            assert session.scalar(select(func.count()).select_from(JobRecord)) == 3
            decided = list(session.scalars(select(EventRecord).where(EventRecord.kind == "batch_decided")))
            assert [e.actor for e in decided] == ["ada", "bo"]
            assert session.get(BatchRecord, first).note == "too close"  # type: ignore[union-attr]
    ctx.db.dispose()


def test_a_job_recorded_but_never_submitted_is_submitted_once_on_resume(sqlite_url: str, simlab: Any) -> None:
    """The crash window between writing the job and the lab accepting it: resume submits each key once."""
    spec = branin_spec(simlab.url, simlab.token)
    with open_adapters(spec) as adapters:
        ctx = make_ctx(sqlite_url, spec, adapters)
        iteration = open_iteration(ctx)
        fitted = fit(ctx, iteration.id)
        batch = select_batch_step(ctx, iteration.id, fitted, generate(ctx, iteration.id, fitted))
        apply_decision(ctx.db, batch, Decision(approver="policy:auto"))
        create_jobs(ctx, batch)  # the process "dies" here: jobs written, nothing submitted
        assert submit_pending(ctx) == 4
        assert submit_pending(ctx) == 0
        outcome = run_campaign(ctx)
        assert outcome.status == "stopped"
        sync(ctx)
    experiments = simlab.lab.list(limit=1000)
    assert len(experiments) == 12 and len({e.idempotency_key for e in experiments}) == 12
    assert {e.executions for e in experiments} == {1}
    ctx.db.dispose()


def test_exploit_share_from_the_campaign_file_reaches_the_batch(sqlite_url: str, simlab: Any) -> None:
    """``acquisition: {settings: {exploit_share: 0.5}}``: half of each model-based batch is the best posterior means."""
    spec = branin_spec(simlab.url, simlab.token, acquisition={"type": "auto", "settings": {"exploit_share": 0.5}})
    with open_adapters(spec) as adapters:
        ctx = make_ctx(sqlite_url, spec, adapters)
        run_campaign(ctx)
    with ctx.db.reading() as session:
        batches = sorted(session.scalars(select(BatchRecord)), key=lambda b: b.id)
        assert len(batches) == 3
        for batch in batches[1:]:
            reasons = [item.reason for item in sorted(batch.items, key=lambda i: i.rank)]
            assert [r.startswith("posterior mean: ") for r in reasons] == [True, True, False, False], reasons
            assert all(r.startswith("qlogei: ") for r in reasons[2:])



def run_template(sqlite_url: str, name: str, scenario: str, **changes: Any) -> LoopContext:
    """Run a shipped template against the in-process lab's ``scenario``, with ``changes`` to its top-level keys."""
    from pathlib import Path

    import yaml

    from agent.spec import Campaign
    from lab_adapters.simlab.inprocess import running_simlab

    template = Path(__file__).resolve().parents[2] / "agent" / "templates" / f"{name}.yaml"
    data = {**yaml.safe_load(template.read_text()), **changes}
    with running_simlab(scenarios=[scenario], time_scale=1e-4) as lab:
        data["adapters"]["lab"].update(url=lab.url, token_env=token_env(lab.token))
        spec = Campaign.model_validate(data)
        with open_adapters(spec) as adapters:
            ctx = make_ctx(sqlite_url, spec, adapters)
            outcome = run_campaign(ctx)
    assert outcome.status == "stopped", outcome
    return ctx


def test_hybrid_perovskites_template_fits_the_additive_kernel_over_its_three_choices(sqlite_url: str) -> None:
    """The shipped template runs, and the featurizer's parameter groups reach the GP: one term per choice."""
    ctx = run_template(sqlite_url, "hybrid-perovskites", "hybrid_perovskites",
                       budget={"max_experiments": 16, "max_iterations": 3})
    with ctx.db.reading() as session:
        versions = list(session.scalars(select(ModelVersionRecord)))
        measured = session.scalar(select(func.count()).select_from(MeasurementRecord))
    assert measured and versions
    assert all("additive kernel over 3 feature groups" in v.reason for v in versions), [v.reason for v in versions]


def test_oer_template_fits_fractions_and_presence_bits_as_two_groups(sqlite_url: str) -> None:
    """The shipped composition template: its gridded six-metal mixture reaches the GP as two feature groups
    (the loadings, and which metals are present), and the picks stay on the simplex grid."""
    ctx = run_template(sqlite_url, "oer", "oer_plate_3496", budget={"max_experiments": 16, "max_iterations": 2},
                       surrogate={"type": "gp"})
    with ctx.db.reading() as session:
        versions = list(session.scalars(select(ModelVersionRecord)))
        points = [c.representation["params"] for c in session.scalars(
            select(CandidateRecord).join(JobRecord, JobRecord.candidate_id == CandidateRecord.id))]
    assert versions and all("additive kernel over 2 feature groups" in v.reason for v in versions), [
        v.reason for v in versions]
    assert len(points) == 16
    for point in points:
        assert abs(sum(point.values()) - 1.0) < 1e-9
        assert all(abs(v * 10 - round(v * 10)) < 1e-9 for v in point.values()), point


def test_a_mixture_where_absence_does_not_matter_reaches_the_gp_without_presence_bits(sqlite_url: str) -> None:
    """``absence_matters: false`` on the template's mixture: one Matern over the six loadings, no bits."""
    import yaml

    from cli.campaign_files import template_text

    space = yaml.safe_load(template_text("oer"))["space"]
    space["simplex"][0]["absence_matters"] = False
    ctx = run_template(sqlite_url, "oer", "oer_plate_3496", space=space, surrogate={"type": "gp"},
                       budget={"max_experiments": 12, "max_iterations": 2})
    with ctx.db.reading() as session:
        versions = list(session.scalars(select(ModelVersionRecord)))
    assert versions and not any("additive" in v.reason for v in versions), [v.reason for v in versions]


def test_a_failing_final_fit_is_recorded_and_does_not_block_the_stop(
    sqlite_url: str, simlab: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    import importlib

    fit_module = importlib.import_module("agent.loop.fit")  # the module, not the step function agent.loop.fit
    spec = branin_spec(simlab.url, simlab.token, budget={"max_experiments": 8})
    with open_adapters(spec) as adapters:
        ctx = make_ctx(sqlite_url, spec, adapters)
        assert run_campaign(ctx).status == "stopped"
    with ctx.db.transaction() as session:
        last = session.scalars(select(IterationRecord).order_by(IterationRecord.number.desc())).first()
        assert last.info["recommended_final"]["n_results"] == 8
        last.info = {k: v for k, v in last.info.items() if k != "recommended_final"}  # as if the stop came first

    def broken(*args: Any) -> None:
        raise RuntimeError("Cholesky failed")

    monkeypatch.setattr(fit_module, "_fit_observations", broken)
    fit_module.final_recommendation(ctx)  # does not raise: the stop must happen
    with ctx.db.reading() as session:
        last = session.scalars(select(IterationRecord).order_by(IterationRecord.number.desc())).first()
        assert last.info["recommended_final"] == {"n_results": 8, "error": "RuntimeError: Cholesky failed"}
        pick = latest_recommendation(session, ctx.campaign_id)
    assert pick is not None and not pick.get("final")  # the summary falls back to the iteration's own pick
    ctx.db.dispose()
