"""What the approval form shows: the batch a person is asked to let go, as markdown above the form.

A person approving a batch must see what they approve without opening another
tab: each candidate with its id (the ids the form's "drop" choices offer), what
it is, the model's prediction with units, the acquisition value and what that
number means, the reason it was picked, what the batch costs, what budget is
left, and links to the run's artifacts for more.  Everything is read from the
database (the record), nothing from the flow's memory.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from agent.loop.context import LoopContext
from agent.loop.state import candidate_from_record, progress
from agent.policy.stopping import CampaignProgress
from agent.store.models import BatchRecord
from flows.artifacts import artifact_key

#: What an acquisition value means, by the acquisition that produced it (the name a pick's reason starts with).
ACQUISITION_MEANING = {
    "qlogei": "the logarithm of the expected improvement over the best result so far (qLogEI): the higher, the more "
              "this pick is expected to beat the current best; compare values within a batch, not across batches",
    "qlognei": "the logarithm of the expected improvement over the best result so far, allowing for measurement "
               "noise (qLogNEI): the higher, the more promising",
    "ucb": "the upper confidence bound (predicted mean plus a multiple of the std, on the goal's side): the higher, "
           "the more promising or the less known",
    "thompson": "the pick's value in one sample drawn from the model's posterior (Thompson sampling): the sample's "
                "best are picked, so likely and uncertain candidates both get their turn",
    "qlognehvi": "the logarithm of the expected growth of the Pareto front's hypervolume (qLogNEHVI) over all "
                 "objectives: the higher, the more the pick is expected to improve the trade-off",
    "band": "how likely the pick lands within the target band: the higher, the more likely",
}
INITIAL_DESIGN = "initial design"


@dataclass(frozen=True)
class BatchForm:
    """The batch's candidate ids (the form's drop choices) and its markdown description."""

    candidate_ids: list[int]
    markdown: str


def _cell(text: object) -> str:
    """A markdown table cell: one line, no column separators."""
    return " ".join(str(text).split()).replace("|", "/")


def _count(n: int, noun: str) -> str:
    return f"{n} {noun}" if n == 1 else f"{n} {noun}s"


def _number(value: float | None, digits: int = 4) -> str:
    if value is None or not math.isfinite(value):
        return "–"
    return f"{value:.{digits}g}"


def _acquisition_name(reason: str, configured: str) -> str | None:
    """The acquisition whose units a pick's value is in: its reason's head (``thompson: ...``) where that names one,
    else the campaign's configured acquisition (``auto`` ranks by qLogEI, and its exploitation share and
    ``explore:``-style reasons carry qLogEI values)."""
    head = reason.split(":", 1)[0].strip().lower()
    if head in ACQUISITION_MEANING:
        return head
    return configured if configured in ACQUISITION_MEANING else ("qlogei" if configured == "auto" else None)


def _acquisition_lines(picks: list[tuple[int, str, float | None]], configured: str) -> list[str]:
    """What the batch's acquisition values mean. One sentence when every pick's value is in one acquisition's units;
    when a batch mixes them (``auto``'s qLogEI head and Thompson tail), one line per kind naming its picks, so
    nobody compares a log-improvement with a posterior sample."""
    kinds: dict[str, list[int]] = {}
    for candidate_id, reason, value in picks:
        name = _acquisition_name(reason, configured)
        if value is not None and name is not None:
            kinds.setdefault(name, []).append(candidate_id)
    if len(kinds) <= 1:
        return [f"**Acquisition value:** {ACQUISITION_MEANING[name]}." for name in kinds]
    lines = ["**Acquisition values** are of different kinds in this batch; compare a value only with its own kind's:"]
    for name, ids in kinds.items():
        picked = ", ".join(map(str, ids))
        lines.append(f"- {_count(len(ids), 'pick')} ({picked}), {name}: {ACQUISITION_MEANING[name]}.")
    return lines


def _links(ctx: LoopContext, ui_url: str | None) -> str:
    base = (ui_url or "").rstrip("/")
    names = {"batch": "this batch", "model": "the model's cross-validated metrics", "budget": "budget progress"}
    return " · ".join(f"[{label}]({base}/artifacts/key/{artifact_key(ctx.campaign.name, what)})"
                      for what, label in names.items())


def batch_form(ctx: LoopContext, batch_id: int, ui_url: str | None = None) -> BatchForm:
    """The approval form's content for ``batch_id``: its ids and a markdown description of the batch."""
    campaign = ctx.campaign
    objective = campaign.objectives[0]
    units = f" {objective.units}" if objective.units else ""
    with ctx.db.reading() as session:
        batch = session.get(BatchRecord, batch_id)
        assert batch is not None
        items = [item for item in batch.items if not item.dropped]
        rows = [(item, candidate_from_record(item.candidate)) for item in items]
        snap = progress(session, campaign, ctx.campaign_id)
    ids = [item.candidate_id for item, _ in rows]
    goal = objective.goal if objective.goal != "target" else f"target {objective.target:g} ± {objective.tolerance:g}"
    # A list, not a table: Prefect shows the description in a narrow dialog, where a table's last columns (the
    # reason) end up off-screen; a list item wraps, so every pick's reason stays in view.
    lines = [
        f"**{campaign.name} · batch {batch_id}**: {_count(len(rows), 'candidate')} waiting for your decision "
        f"({objective.property}, {goal}{units}).",
        "",
    ]
    for item, candidate in rows:
        predicted = ("no prediction yet" if item.posterior_mean is None else
                     f"predicted {_number(item.posterior_mean)} ± {_number(item.posterior_std, 2)}{units}")
        acquisition_value = "" if item.acquisition_value is None else f" · acquisition {_number(item.acquisition_value)}"
        lines.append(f"- **{item.candidate_id}** · {_cell(candidate.label(90))} · {predicted}{acquisition_value}"
                     f" · why: {_cell(item.reason)}")
    lines.append("")
    if all(item.acquisition_value is None for item, _ in rows):
        lines.append("**Acquisition value:** none yet — these are the space-filling initial design, chosen before any "
                     "model exists, to spread the first experiments over the design space.")
    else:
        lines += _acquisition_lines([(item.candidate_id, item.reason, item.acquisition_value) for item, _ in rows],
                                    campaign.acquisition.type)
    fidelities = [item.fidelity for item, _ in rows]
    cost = campaign.batch_cost(fidelities)
    per_pick = (f"{_count(len(rows), 'experiment')} × {campaign.experiment_cost:g}" if len(set(fidelities)) <= 1
                and fidelities and fidelities[0] is None else
                ", ".join(f"{fidelities.count(f)} at {f or 'every fidelity'}" for f in dict.fromkeys(fidelities)))
    lines += ["", f"**Cost** {cost:g} {campaign.budget.currency} ({per_pick}) · "
                  f"**budget left** {_budget_left(ctx, snap)} · **more:** {_links(ctx, ui_url)}",
              "", "Drop a candidate by choosing its id below; reject re-proposes the batch without its candidates."]
    return BatchForm(candidate_ids=ids, markdown="\n".join(lines))


def _budget_left(ctx: LoopContext, snap: CampaignProgress) -> str:
    budget = ctx.campaign.budget
    parts = []
    if budget.max_experiments:
        parts.append(f"{max(budget.max_experiments - snap.experiments, 0)} of {budget.max_experiments} experiments")
    if budget.max_cost:
        parts.append(f"cost {max(budget.max_cost - snap.cost, 0.0):g} of {budget.max_cost:g}")
    if budget.max_iterations:
        parts.append(f"{max(budget.max_iterations - snap.completed_iterations, 0)} of {budget.max_iterations} "
                     "iterations")
    if budget.wall_clock:
        left = max(int((budget.wall_clock - snap.elapsed).total_seconds()), 0)
        parts.append(f"{left // 3600} h {left % 3600 // 60} min of {budget.wall_clock}")
    return ", ".join(parts) if parts else "no limit set"
