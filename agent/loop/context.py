"""What every step of the loop needs: the database, the campaign spec and its record id, the adapters."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from agent.spec import Campaign
from agent.store import Database
from matloop.types import LabAdapter


@dataclass
class Backoff:
    """Polling schedule for waiting on results: start fast, slow down, never beyond ``maximum``."""

    initial: float = 0.5
    factor: float = 1.6
    maximum: float = 60.0

    def delays(self):  # type: ignore[no-untyped-def]
        delay = self.initial
        while True:
            yield delay
            delay = min(delay * self.factor, self.maximum)


@dataclass
class LoopContext:
    """The campaign a step works on.  Holds no state of the loop itself: that lives in the database."""

    db: Database
    campaign: Campaign
    campaign_id: int
    adapters: dict[str, LabAdapter]
    artifacts_dir: Path | None = None
    backoff: Backoff = field(default_factory=Backoff)
    base_dir: Path | None = None  # where the campaign file lives (relative paths in settings)
