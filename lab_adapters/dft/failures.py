"""Why a DFT attempt failed, and what a retry changes.

Failure kinds (the ``failure`` of a job's ``result.json``, or what the scheduler
says): ``scf_not_converged``, ``timeout``, ``node_failure``, ``out_of_memory``,
``missing_output`` (the job ended without a usable result), ``relax_not_converged``,
``error`` (deterministic: bad input, code crash), ``cancelled`` and ``lost``.
Only the first five are worth retrying, each as often as the policy allows.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Any

from lab_adapters.dft.scheduler import SchedJob, SchedState
from lab_adapters.dft.settings import RecipeSettings, Resources, RetryPolicy

RETRYABLE = ("scf_not_converged", "timeout", "node_failure", "out_of_memory", "missing_output")


@dataclass(frozen=True)
class Outcome:
    """How one attempt ended."""

    kind: str  # "ok" or a failure kind
    message: str = ""
    scheduler_state: str = ""

    def as_dict(self) -> dict[str, str]:
        return {"kind": self.kind, "message": self.message, "scheduler_state": self.scheduler_state}


def classify(job: SchedJob, result: dict[str, Any] | None, output_tail: str = "", cancel_requested: bool = False) -> Outcome:
    """The outcome of a finished attempt from the scheduler's state and the job's ``result.json``."""
    state = job.state.value
    if cancel_requested or job.state is SchedState.CANCELLED:
        return Outcome("cancelled", "cancelled" + (f" ({job.reason})" if job.reason else ""), state)
    if result is not None and result.get("status") == "ok":
        return Outcome("ok", "", state)
    if result is not None and result.get("failure"):
        return Outcome(str(result["failure"]), str(result.get("message", "")), state)
    by_state = {
        SchedState.TIMEOUT: ("timeout", "the job hit its walltime"),
        SchedState.NODE_FAIL: ("node_failure", "the node failed (or the job was preempted)"),
        SchedState.OUT_OF_MEMORY: ("out_of_memory", "the job ran out of memory"),
        SchedState.LOST: ("lost", "the job is gone"),
    }
    if job.state in by_state:
        kind, text = by_state[job.state]
        return Outcome(kind, f"{text}: {job.reason}" if job.reason else text, state)
    tail = output_tail.strip()[-800:]
    message = f"the job ended ({state}{', ' + job.reason if job.reason else ''}) without result.json"
    return Outcome("missing_output", message + (f"; its output ends with:\n{tail}" if tail else ""), state)


@dataclass
class RetryPlan:
    """The settings and resources of the next attempt, and what changed."""

    recipe: RecipeSettings
    resources: Resources
    changes: dict[str, Any] = field(default_factory=dict)


def _scale_mem(mem: str, factor: float) -> str:
    m = re.fullmatch(r"(\d+)([KMGT]?)", mem)
    assert m is not None  # validated by Resources
    return f"{int(int(m.group(1)) * factor + 0.999)}{m.group(2)}"


def plan_retry(
    kind: str, previous: list[str], recipe: RecipeSettings, resources: Resources, policy: RetryPolicy,
    default_mixing_beta: float,
) -> RetryPlan | None:
    """The next attempt after a failure of ``kind`` (``previous``: kinds of earlier failures), or None to give up."""
    if kind not in RETRYABLE or previous.count(kind) >= getattr(policy, kind):
        return None
    changes: dict[str, Any] = {}
    new_recipe, new_resources = recipe, resources
    if kind == "scf_not_converged":
        beta = round((recipe.mixing_beta or default_mixing_beta) * policy.mixing_factor, 6)
        iterations = int(recipe.max_scf_iterations * policy.scf_iterations_factor)
        changes = {"mixing_beta": beta, "max_scf_iterations": iterations}
        new_recipe = recipe.model_copy(update=changes)
    elif kind == "timeout":
        changes = {"time": resources.time * policy.time_factor}
        new_resources = resources.model_copy(update=changes)
    elif kind == "out_of_memory":
        if resources.mem is None:
            return None  # no explicit request to enlarge: the default is all the scheduler gives
        changes = {"mem": _scale_mem(resources.mem, policy.memory_factor)}
        new_resources = resources.model_copy(update=changes)
    return RetryPlan(recipe=new_recipe, resources=new_resources, changes=changes)
