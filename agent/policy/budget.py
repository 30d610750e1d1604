"""What a job that ends without a result costs: the ledger's refund rules, as one pure function.

- A job **lost** by its executor and run again (``agent.loop.sync``: the executor no longer knows it, e.g. the
  in-process lab restarted, a node died) is refunded when its re-run is charged: the campaign receives one
  measurement of the candidate and pays for one. Charging both was the old double charge of a lost job. A job
  lost once too often is not run again; it is a failed experiment and follows ``on_failure``.
- A job **cancelled** at its executor is refunded: matloop never cancels a job itself, so its operator stopped it,
  and the campaign does not count it as an experiment (``progress``) nor pay for it.
- A **failed** job follows ``budget.on_failure``: ``keep`` (the default: a DFT queue bills the core-hours a run
  used whether or not it converged, a lab bills a run whose sample failed) or ``refund``.
- A job that succeeded keeps its charge, even when a value it reported is unusable: the executor did the work.
"""

from __future__ import annotations

from agent.spec import Budget
from matloop.types import JobStatus


def refund_reason(budget: Budget, status: JobStatus, *, rerun: bool = False) -> str | None:
    """Why a job that ended with ``status`` is refunded, as the ledger's reason; ``None`` when it keeps its charge.

    ``rerun`` says that a lost job is being replaced by a new attempt (charged in the same transaction).
    """
    if status is JobStatus.LOST and rerun:
        return "lost by the executor and run again as a new job, which is charged instead"
    if status is JobStatus.CANCELLED:
        return "cancelled at the executor before it gave a result"
    if status in (JobStatus.FAILED, JobStatus.LOST) and budget.on_failure == "refund":
        return f"{status.value} without a result; budget.on_failure is refund"
    return None
