"""The seam between the DFT adapter and whatever runs its jobs (SLURM, or local processes).

A scheduler knows jobs by a name (the idempotency key, plus a retry suffix) and an
id it assigns; it reports each job in one of the states below.  These are SLURM's
own states (the local queue speaks them too) minus the transient ones, which are
folded into PENDING and RUNNING; LOST means no one knows what became of it.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from enum import StrEnum
from typing import Protocol

from lab_adapters.dft.settings import Resources


class SchedState(StrEnum):
    PENDING = "PENDING"
    RUNNING = "RUNNING"
    COMPLETED = "COMPLETED"
    FAILED = "FAILED"
    TIMEOUT = "TIMEOUT"
    NODE_FAIL = "NODE_FAIL"
    CANCELLED = "CANCELLED"
    OUT_OF_MEMORY = "OUT_OF_MEMORY"
    LOST = "LOST"

    @property
    def is_terminal(self) -> bool:
        return self not in (SchedState.PENDING, SchedState.RUNNING)


#: Every state SLURM 22-24 reports (squeue %T, sacct State), mapped onto ours.
SLURM_STATES: dict[str, SchedState] = {
    "PENDING": SchedState.PENDING,
    "CONFIGURING": SchedState.PENDING,
    "REQUEUED": SchedState.PENDING,
    "REQUEUE_HOLD": SchedState.PENDING,
    "REQUEUE_FED": SchedState.PENDING,
    "RESV_DEL_HOLD": SchedState.PENDING,
    "RUNNING": SchedState.RUNNING,
    "COMPLETING": SchedState.RUNNING,  # still cleaning up: its files may not be final yet
    "STAGE_OUT": SchedState.RUNNING,
    "SIGNALING": SchedState.RUNNING,
    "RESIZING": SchedState.RUNNING,
    "SUSPENDED": SchedState.RUNNING,
    "STOPPED": SchedState.RUNNING,
    "COMPLETED": SchedState.COMPLETED,
    "FAILED": SchedState.FAILED,
    "SPECIAL_EXIT": SchedState.FAILED,
    "TIMEOUT": SchedState.TIMEOUT,
    "DEADLINE": SchedState.TIMEOUT,
    "NODE_FAIL": SchedState.NODE_FAIL,
    "BOOT_FAIL": SchedState.NODE_FAIL,
    "PREEMPTED": SchedState.NODE_FAIL,  # killed for someone else: as retryable as a node failure
    "CANCELLED": SchedState.CANCELLED,
    "REVOKED": SchedState.CANCELLED,
    "OUT_OF_MEMORY": SchedState.OUT_OF_MEMORY,
}


def map_slurm_state(text: str) -> SchedState:
    """``'CANCELLED by 0'`` → CANCELLED; an unknown state is an error, not a guess."""
    word = text.strip().split(" ")[0].rstrip("+").upper()
    try:
        return SLURM_STATES[word]
    except KeyError:
        raise ValueError(f"unknown SLURM job state {text!r}") from None


@dataclass(frozen=True)
class SchedJob:
    """One job as the scheduler sees it."""

    id: str
    name: str
    state: SchedState
    reason: str = ""
    directory: str = ""  # where it runs (SLURM's WorkDir), to tell same-named jobs of other work dirs apart


class Scheduler(Protocol):
    """Runs job scripts; every call is safe to repeat."""

    kind: str

    def find(self, name: str, directory: str) -> SchedJob | None:
        """The newest job with this name running in ``directory``, if any (the duplicate check before submitting)."""
        ...

    def submit(self, name: str, directory: str, script: str, resources: Resources) -> str:
        """Queue ``script`` (run in ``directory``) under ``name``; return the scheduler's id."""
        ...

    def states(self, ids: Sequence[str]) -> dict[str, SchedJob]:
        """What the scheduler knows of these ids (ids it no longer knows are absent)."""
        ...

    def cancel(self, job_id: str) -> None: ...
