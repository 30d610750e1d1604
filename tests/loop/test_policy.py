"""Approval and stopping policies."""

from __future__ import annotations

from datetime import timedelta

import pytest
from pydantic import ValidationError

from agent.policy import CampaignProgress, Decision, automatic_decision, stop_reason
from agent.spec import Approval
from tests.loop.conftest import branin_spec


def test_automatic_approval_by_policy_and_cost() -> None:
    assert automatic_decision(Approval(policy="auto"), 100.0).approver == "policy:auto"  # type: ignore[union-attr]
    assert automatic_decision(Approval(policy="manual"), 0.0) is None
    cheap = Approval(policy="auto_below_cost", cost_limit=5.0)
    assert automatic_decision(cheap, 5.0) is not None
    assert automatic_decision(cheap, 5.5) is None
    with pytest.raises(ValidationError):
        Decision(approver="")
    with pytest.raises(ValidationError, match="not both"):
        Decision(approver="ada", approve=False, drop=[1])


def test_stop_reasons() -> None:
    spec = branin_spec(budget={"max_experiments": 12, "max_iterations": 5, "wall_clock": "1h"},
                       stopping={"no_improvement_iterations": 2, "min_improvement": 0.01})
    assert stop_reason(spec, CampaignProgress(experiments=4)) is None
    assert "12 of 12 experiments" in (stop_reason(spec, CampaignProgress(experiments=12)) or "")
    assert "5 of 5 iterations" in (stop_reason(spec, CampaignProgress(completed_iterations=5)) or "")
    assert "wall clock" in (stop_reason(spec, CampaignProgress(elapsed=timedelta(hours=2))) or "")
    assert "no improvement for 2" in (stop_reason(spec, CampaignProgress(best_history=[3.0, 2.0, 1.995, 1.999])) or "")
    assert stop_reason(spec, CampaignProgress(best_history=[3.0, 2.0, 1.5])) is None
    target = branin_spec(objectives=[{"property": "y", "goal": "target", "target": 1.0, "tolerance": 0.1}])
    assert "target met" in (stop_reason(target, CampaignProgress(target_met=True)) or "")
    costly = branin_spec(budget={"max_cost": 10.0}, measurements=[
        {"properties": ["y"], "adapter": "lab", "fidelity": "branin", "cost": 4.0, "options": {"scenario": "branin"}}])
    assert CampaignProgress(cost=4.0).remaining_experiments(costly) == 1
    assert "not enough for another" in (stop_reason(costly, CampaignProgress(cost=8.0)) or "")


def test_auto_below_cost_needs_the_budget_left_to_pay_for_the_batch() -> None:
    cheap = Approval(policy="auto_below_cost", cost_limit=5.0)
    decision = automatic_decision(cheap, 4.0, remaining=4.0, currency="USD")
    assert decision is not None and decision.note == ("batch cost 4 USD is within the limit 5, and the budget has 4 "
                                                      "USD left")
    assert automatic_decision(cheap, 4.0, remaining=3.99) is None  # within the limit, but the budget cannot pay
    assert automatic_decision(Approval(policy="auto"), 4.0, remaining=0.0) is not None  # auto asks nobody


def test_failed_jobs_keep_or_refund_their_charge_by_policy() -> None:
    from agent.policy.budget import refund_reason
    from agent.spec import Budget
    from matloop.types import JobStatus

    keep, refund = Budget(max_cost=10.0), Budget(max_cost=10.0, on_failure="refund")
    assert keep.on_failure == "keep" and keep.currency == "cost units"
    assert refund_reason(keep, JobStatus.FAILED) is None and refund_reason(keep, JobStatus.LOST) is None
    assert "on_failure is refund" in (refund_reason(refund, JobStatus.FAILED) or "")
    assert "run again" in (refund_reason(keep, JobStatus.LOST, rerun=True) or "")  # paid once, whatever the policy
    assert refund_reason(keep, JobStatus.CANCELLED) is not None
    assert refund_reason(refund, JobStatus.SUCCEEDED) is None
    for bad in ({"currency": ""}, {"currency": "a\nb"}, {"on_failure": "sometimes"}):
        with pytest.raises(ValidationError):
            Budget(max_cost=1.0, **bad)
    assert "of 10 core-hours" in (stop_reason(branin_spec(budget={"max_cost": 10.0, "currency": "core-hours"}),
                                              CampaignProgress(cost=10.0)) or "")
