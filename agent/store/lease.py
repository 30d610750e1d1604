"""Keeping a campaign's run lease alive while the run waits (for results, or for a person).

The run lock is a lease with an expiry, renewed at each step; but a single
step can legitimately last hours (waiting on a slow lab) or days (a manual
approval paused in-process).  Without a heartbeat the lease would lapse and a
second ``matloop run --resume`` could take over a campaign whose first process
is still alive.  :class:`LeaseHeartbeat` renews it from a daemon thread every
third of its time to live.  Two failures are told apart: a renewal that finds
the lease taken by another run (:class:`~agent.store.errors.LeaseHeld`) stops
the heartbeat and is logged (the next step's own renewal then raises it and the
run stops cleanly); a database locked or unreachable for a moment
(:class:`~agent.store.errors.DatabaseBusy` and the like) is only counted in
``failures`` and retried a second later: the lease has a third of its time to
live as slack, so a lock blip never costs the run its campaign.
"""

from __future__ import annotations

import logging
import threading
from datetime import timedelta
from types import TracebackType

from agent.store.campaigns import LeaseOwner, RunIsOver, acquire_run_lock, process_identity
from agent.store.database import Database
from agent.store.errors import LeaseHeld
from agent.store.models import CampaignRecord

#: After a failed renewal (a lock blip), the next try comes this soon rather than a full interval later.
RETRY_AFTER_FAILURE_SECONDS = 1.0

log = logging.getLogger(__name__)


class LeaseHeartbeat:
    """A context manager renewing ``campaign_id``'s run lease every ``ttl / 3`` until the block ends."""

    def __init__(
        self, db: Database, campaign_id: int, ttl: timedelta, *, interval: float | None = None,
        owner: LeaseOwner | None = None, run_is_over: RunIsOver | None = None,
    ) -> None:
        self.db, self.campaign_id, self.ttl = db, campaign_id, ttl
        self.owner = owner or process_identity()
        self.run_is_over = run_is_over
        self.interval = interval if interval is not None else ttl.total_seconds() / 3
        self.renewals = 0
        self.failures = 0  # renewals that met a busy or unreachable database (retried; the lease survives them)
        self.lost: str | None = None
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._beat, name=f"lease-{campaign_id}", daemon=True)

    def renew(self) -> None:
        """Renew once; :class:`LeaseHeld` when another live run holds the lease."""
        with self.db.transaction() as session:
            record = session.get(CampaignRecord, self.campaign_id)
            if record is None:
                raise LeaseHeld(f"campaign id {self.campaign_id} no longer exists")
            acquire_run_lock(session, record, ttl=self.ttl, owner=self.owner, run_is_over=self.run_is_over)
        self.renewals += 1

    def _beat(self) -> None:
        wait = self.interval
        while not self._stop.wait(wait):
            try:
                self.renew()
                wait = self.interval
            except LeaseHeld as exc:
                self.lost = str(exc)
                log.error("run lease lost, the heartbeat stops: %s", exc)
                return
            except Exception as exc:  # noqa: BLE001 - a database blip: try again soon, the lease has slack
                self.failures += 1
                wait = min(self.interval, RETRY_AFTER_FAILURE_SECONDS)
                log.warning("could not renew the run lease (will retry): %s", exc)

    def __enter__(self) -> LeaseHeartbeat:
        self._thread.start()
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self._stop.set()
        self._thread.join(timeout=self.interval + 5)
