"""Which fidelity each pick goes to, where a user looks: ``matloop history`` (table, CSV, JSON), ``matloop pending``
and the batch table artifact, on a real two-fidelity campaign (funnel-microstructure on the simulated lab) whose
second batch waits for a person."""

from __future__ import annotations

import csv
import io
import json
from pathlib import Path
from typing import Any

import pytest
import torch
import yaml
from sqlalchemy import select

from agent.adapters import open_adapters
from agent.loop import run_campaign
from agent.loop.gate import request_approval
from agent.policy.approval import Decision
from agent.spec import Campaign
from agent.store.models import BatchItemRecord, BatchRecord, JobRecord
from flows.artifacts import batch_table
from lab_adapters.simlab.inprocess import running_simlab
from tests.cli.conftest import build_hand_made_campaign, cli  # noqa: F401  (the fixture)
from tests.loop.test_loop import make_ctx
from tests.support.labs import token_env

TEMPLATE = Path(__file__).resolve().parents[2] / "agent" / "templates" / "funnel-microstructure.yaml"
FIDELITIES = {"coarse_mesh", "fine_mesh"}


class _Waiting(Exception):
    """The second batch waits for a person (as a flow run suspends on it)."""


@pytest.fixture(autouse=True)
def _one_thread() -> None:
    torch.set_num_threads(1)


def _run_until_second_batch_waits(url: str) -> tuple[Any, int]:
    data: dict[str, Any] = yaml.safe_load(TEMPLATE.read_text())
    data.update(budget={"max_cost": 20, "max_iterations": 3}, batch_size=4, initial_design_size=4,
                approval={"policy": "manual"}, stopping={"target_met": False},
                surrogate={"type": "gp", "cv_folds": 0})
    asked: list[int] = []

    def ask_person(ctx: Any, batch_id: int) -> Decision:
        asked.append(batch_id)
        if len(asked) == 1:
            return Decision(approver="ada")
        request_approval(ctx.db, batch_id, flow_run_id=None, approval_key=f"approve-batch-{batch_id}")
        raise _Waiting

    with running_simlab(scenarios=["microstructure", "microstructure_coarse"], time_scale=1e-4) as lab:
        data["adapters"]["lab"].update(url=lab.url, token_env=token_env(lab.token))
        spec = Campaign.model_validate(data)
        with open_adapters(spec) as adapters:
            ctx = make_ctx(url, spec, adapters)
            with pytest.raises(_Waiting):
                run_campaign(ctx, ask_person=ask_person)
    return ctx, asked[-1]


def test_each_pick_shows_its_fidelity(sqlite_url: str, cli) -> None:  # noqa: F811
    ctx, waiting = _run_until_second_batch_waits(sqlite_url)
    with ctx.db.reading() as session:
        picks = {i.candidate_id: i.fidelity for i in session.scalars(
            select(BatchItemRecord).where(BatchItemRecord.batch_id == waiting))}
        jobs = {(j.batch_item_id, j.fidelity) for j in session.scalars(select(JobRecord))}
        first = session.scalar(select(BatchRecord.id).where(BatchRecord.id != waiting))
    # the initial design: two points at both fidelities, two on the coarse mesh only
    assert len(picks) == 4 and set(picks.values()) <= FIDELITIES and len(jobs) == 6

    # history as JSON and CSV: the dispatched initial design's rows at the job's fidelity (each candidate at
    # both), the waiting batch's rows at the fidelity each pick names
    result = cli(sqlite_url, "history", ctx.campaign.name, "--format", "json")
    assert result.exit_code == 0, result.output
    rows = json.loads(result.stdout)
    by_batch: dict[int, list[dict]] = {}
    for row in rows:
        by_batch.setdefault(row["batch_id"], []).append(row)
    assert {r["fidelity"] for r in by_batch[first]} == FIDELITIES
    assert sorted((r["candidate_id"], r["fidelity"]) for r in by_batch[waiting]) == sorted(picks.items())
    for fmt_args in ([], ["--limit", "100"]):  # the database-rendered CSV and the typed rows' CSV
        result = cli(sqlite_url, "history", ctx.campaign.name, "--format", "csv", *fmt_args)
        assert result.exit_code == 0, result.output
        read = list(csv.DictReader(io.StringIO(result.stdout)))
        # (an item's two jobs come in either order: rows are ordered by item and property only)
        assert sorted((int(r["batch_id"]), int(r["candidate_id"]), r["fidelity"]) for r in read) == \
            sorted((r["batch_id"], r["candidate_id"], r["fidelity"]) for r in rows)

    # the table has a fidelity column for this campaign
    result = cli(sqlite_url, "history", ctx.campaign.name)
    assert result.exit_code == 0, result.output
    header = next(line for line in result.stdout.splitlines() if "iter" in line and "candidate" in line)
    assert "fidelity" in header
    for fidelity in set(picks.values()):
        assert fidelity in result.stdout

    # pending: how many picks go where
    result = cli(sqlite_url, "pending", "--format", "json")
    assert result.exit_code == 0, result.output
    (row,) = json.loads(result.stdout)
    assert row["batch"] == waiting
    counts = {f: list(picks.values()).count(f) for f in sorted(FIDELITIES) if f in picks.values()}
    assert row["fidelity"] == ", ".join(f"{f} {n}" for f, n in counts.items())

    # the batch artifact: one fidelity per row; the initial design's paired points "every fidelity"
    table, _ = batch_table(ctx, waiting)
    assert {int(r["candidate id"]): r["fidelity"] for r in table} == picks
    table, _ = batch_table(ctx, first)
    assert [r["fidelity"] for r in table] == ["every fidelity", "coarse_mesh", "every fidelity", "coarse_mesh"]
    ctx.db.dispose()


def test_a_single_fidelity_campaign_shows_no_fidelity(sqlite_url: str, cli) -> None:  # noqa: F811
    from agent.store.migrate import upgrade

    upgrade(sqlite_url)
    build_hand_made_campaign(sqlite_url)
    result = cli(sqlite_url, "history", "oer-demo")
    assert result.exit_code == 0, result.output
    header = next(line for line in result.stdout.splitlines() if "iter" in line and "candidate" in line)
    assert "fidelity" not in header and "oer_plate_3496" not in result.stdout
