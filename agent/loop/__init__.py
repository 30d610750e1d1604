"""The iteration as plain functions over the store (DESIGN.md "The loop, and its invariants").

Each step reads what it needs from the database, does its work, and commits
its writes in one transaction; :func:`run_campaign` strings them together and
resumes from whatever step an iteration last committed.
"""

from agent.loop.context import Backoff, LoopContext
from agent.loop.dispatch import dispatch, submit_pending
from agent.loop.fit import FitOutcome, fit
from agent.loop.gate import DecisionError, apply_decision, policy_decision, request_approval
from agent.loop.generate import generate
from agent.loop.iteration import check_stop, complete_iteration, finish_campaign, open_iteration
from agent.loop.runner import Hooks, RunOutcome, run_campaign
from agent.loop.select import NothingToSelect, select_batch_step
from agent.loop.sync import sync
from agent.loop.wait import wait_for_results

__all__ = [
    "Backoff", "DecisionError", "FitOutcome", "Hooks", "LoopContext", "NothingToSelect", "RunOutcome",
    "apply_decision", "check_stop", "complete_iteration", "dispatch", "finish_campaign", "fit", "generate",
    "open_iteration", "policy_decision", "request_approval", "run_campaign", "select_batch_step",
    "submit_pending", "sync", "wait_for_results",
]
