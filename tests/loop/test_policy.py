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
