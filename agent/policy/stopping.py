"""When a campaign stops: budget spent, target met, or no improvement for N iterations.

Pure functions over a :class:`CampaignProgress` snapshot (read from the
database), so the reason a campaign stopped can be recomputed and explained.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from datetime import timedelta

from agent.spec import Campaign


@dataclass
class CampaignProgress:
    """Where a campaign stands, as the database says."""

    experiments: int = 0  # distinct candidates dispatched (in flight or done)
    cost: float = 0.0  # net spend on the campaign's ledger (charges less refunds), in its budget's currency
    completed_iterations: int = 0
    elapsed: timedelta = timedelta(0)
    results: int = 0  # candidates with a successful result
    failed: int = 0
    best: float | None = None  # best value of the first objective (in its own units)
    best_history: list[float | None] = field(default_factory=list)  # best after each completed iteration
    target_met: bool = False

    def remaining_cost(self, campaign: Campaign) -> float:
        """What is left of ``max_cost`` after the ledger's spend (``inf`` when the budget sets no cost limit)."""
        if campaign.budget.max_cost is None:
            return math.inf
        return max(campaign.budget.max_cost - self.cost, 0.0)

    def remaining_experiments(self, campaign: Campaign) -> float:
        """How many more experiments the budget allows (``inf`` when it sets no such limit).

        In cost, an experiment is one candidate measured by every measurement (``experiment_cost``); the
        ledger's spend says what is left, so a refunded job gives its cost back to the campaign.
        """
        left = math.inf
        budget = campaign.budget
        if budget.max_experiments is not None:
            left = min(left, budget.max_experiments - self.experiments)
        if budget.max_cost is not None and campaign.experiment_cost > 0:
            left = min(left, math.floor((budget.max_cost - self.cost) / campaign.experiment_cost + 1e-9))
        return max(left, 0)


def _improvement(campaign: Campaign, old: float | None, new: float | None) -> float:
    """How much better ``new`` is than ``old`` for the first objective (positive = better)."""
    if new is None:
        return 0.0
    if old is None:
        return math.inf
    objective = campaign.objectives[0]
    if objective.goal == "maximize":
        return new - old
    if objective.goal == "minimize":
        return old - new
    assert objective.target is not None
    return abs(old - objective.target) - abs(new - objective.target)


def stop_reason(campaign: Campaign, progress: CampaignProgress) -> str | None:
    """Why the campaign should stop now, as a sentence, or ``None`` to go on."""
    budget = campaign.budget
    if budget.max_experiments is not None and progress.experiments >= budget.max_experiments:
        return f"budget spent: {progress.experiments} of {budget.max_experiments} experiments"
    if progress.remaining_experiments(campaign) <= 0:
        return (f"budget spent: cost {progress.cost:g} of {budget.max_cost:g} {budget.currency}, "
                "not enough for another experiment")
    if budget.max_iterations is not None and progress.completed_iterations >= budget.max_iterations:
        return f"budget spent: {progress.completed_iterations} of {budget.max_iterations} iterations"
    if budget.wall_clock is not None and progress.elapsed >= budget.wall_clock:
        return f"budget spent: wall clock {progress.elapsed} of {budget.wall_clock}"
    if campaign.stopping.target_met and progress.target_met:
        return "target met: a measured candidate satisfies every target objective"
    n = campaign.stopping.no_improvement_iterations
    history = progress.best_history
    if n is not None and len(history) > n:
        gain = _improvement(campaign, history[-n - 1], history[-1])
        if gain <= campaign.stopping.min_improvement:
            return f"no improvement for {n} iterations (best {history[-1]:.4g})" if history[-1] is not None else (
                f"no improvement for {n} iterations (no successful result yet)"
            )
    return None


def is_better(campaign: Campaign, value: float, than: float | None) -> bool:
    """Whether ``value`` beats ``than`` on the first objective."""
    return _improvement(campaign, than, value) > 0
