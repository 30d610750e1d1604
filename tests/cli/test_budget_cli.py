"""``matloop budget NAME``: spend by fidelity, adapter and iteration from the ledger, and what is left."""

from __future__ import annotations

import json
from pathlib import Path

from agent.spec import Campaign
from agent.store import Database
from agent.store.campaigns import register_campaign
from agent.store.ledger import charge, refund
from agent.store.models import BatchItemRecord, BatchRecord, CandidateRecord, IterationRecord, JobRecord
from matloop.types import Candidate
from tests.loop.conftest import branin_spec

#: (iteration, fidelity, adapter, cost, refunded): two fidelities on two adapters, one refund.
JOBS = [(1, "coarse", "mlip", 0.5, False), (1, "fine", "dft", 4.0, False), (2, "coarse", "mlip", 0.5, False),
        (2, "fine", "dft", 4.0, True)]


def _spec() -> Campaign:
    return branin_spec(
        name="ledger-cli", budget={"max_cost": 20.0, "max_iterations": 5, "currency": "core-hours"},
        adapters={"mlip": {"type": "simlab", "url": "http://127.0.0.1:9"},
                  "dft": {"type": "simlab", "url": "http://127.0.0.1:9"}},
        measurements=[{"properties": ["y"], "adapter": "mlip", "fidelity": "coarse", "cost": 0.5},
                      {"properties": ["y"], "adapter": "dft", "fidelity": "fine", "cost": 4.0}],
    )


def _campaign_with_spend(url: str) -> None:
    db = Database(url)
    with db.transaction() as s:
        rec = register_campaign(s, _spec())
        iterations: dict[int, tuple[int, int]] = {}
        for n, (number, fidelity, adapter, cost, refunded) in enumerate(JOBS):
            if number not in iterations:
                it = IterationRecord(campaign_id=rec.id, number=number, step="dispatched")
                s.add(it)
                s.flush()
                batch = BatchRecord(campaign_id=rec.id, iteration_id=it.id, status="dispatched")
                s.add(batch)
                s.flush()
                iterations[number] = (it.id, batch.id)
            it_id, batch_id = iterations[number]
            cand = Candidate.point({"x1": float(n), "x2": 1.0})
            crec = CandidateRecord(campaign_id=rec.id, fingerprint=cand.fingerprint, kind="point",
                                   representation=cand.model_dump(mode="json"))
            s.add(crec)
            s.flush()
            item = BatchItemRecord(batch_id=batch_id, candidate_id=crec.id, rank=n)
            s.add(item)
            s.flush()
            job = JobRecord(campaign_id=rec.id, candidate_id=crec.id, batch_item_id=item.id, adapter=adapter,
                            fidelity=fidelity, idempotency_key=f"k{n}", status="failed" if refunded else "succeeded",
                            cost=cost)
            s.add(job)
            charge(s, job, iteration_id=it_id, reason="dispatched")
            if refunded:
                s.flush()
                refund(s, job, reason="test")
    db.dispose()


def test_budget_shows_spend_three_ways_and_what_is_left(migrated_db_url: str, cli) -> None:
    _campaign_with_spend(migrated_db_url)
    result = cli(migrated_db_url, "budget", "ledger-cli", "--format", "json")
    assert result.exit_code == 0, result.output
    report = json.loads(result.stdout)
    assert report["currency"] == "core-hours" and report["on_failure"] == "keep"
    assert (report["spent"], report["charged"], report["refunded"], report["jobs"]) == (5.0, 9.0, 4.0, 4)
    assert report["by_fidelity"] == [
        {"fidelity": "coarse", "jobs": 2, "charged": 1.0, "refunded": 0.0, "spent": 1.0},
        {"fidelity": "fine", "jobs": 2, "charged": 8.0, "refunded": 4.0, "spent": 4.0}]
    assert [(r["adapter"], r["spent"]) for r in report["by_adapter"]] == [("dft", 4.0), ("mlip", 1.0)]
    assert [(r["iteration"], r["spent"]) for r in report["by_iteration"]] == [("1", 4.5), ("2", 0.5)]
    limits = {limit["limit"]: limit for limit in report["limits"]}
    assert limits["cost (core-hours)"] == {"limit": "cost (core-hours)", "used": 5.0, "of": 20.0, "left": 15.0}
    assert limits["iterations"]["left"] == 5 and limits["experiments"]["of"] is None
    assert report["experiments_left"] == 3  # 15 left, one experiment (coarse + fine) costs 4.5

    result = cli(migrated_db_url, "budget", "ledger-cli")
    assert result.exit_code == 0, result.output
    out = result.stdout
    assert "spent 5 core-hours on 4 jobs (charged 9, refunded 4" in out
    for title in ("budget limits", "spend by fidelity (core-hours)", "spend by adapter", "spend by iteration"):
        assert title in out
    assert "coarse" in out and "mlip" in out and "15" in out


def test_budget_refuses_plainly_and_creates_nothing(tmp_path: Path, sqlite_url: str, cli) -> None:
    missing = tmp_path / "nowhere" / "db.sqlite"
    result = cli(f"sqlite:///{missing}", "budget", "any")
    assert result.exit_code == 1 and "Traceback" not in result.output
    assert not missing.parent.exists()
    from agent.store.migrate import upgrade

    upgrade(sqlite_url)
    result = cli(sqlite_url, "budget", "nope")
    assert result.exit_code == 1 and "no campaign named 'nope'" in result.output
    assert len(result.output.strip().splitlines()) == 1
    result = cli(sqlite_url, "budget", "nope", "--format", "csv")
    assert result.exit_code == 1 and "table or json" in result.output
