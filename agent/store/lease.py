"""Keeping a campaign's run lease alive while the run waits (for results, or for a person).

The run lock is a lease with an expiry, renewed at each step; but a single
step can legitimately last hours (waiting on a slow lab) or days (a manual
approval paused in-process).  Without a heartbeat the lease would lapse and a
second ``matloop run --resume`` could take over a campaign whose first process
is still alive.  :class:`LeaseHeartbeat` renews it from a daemon thread every
third of its time to live; a renewal that finds the lease taken by another
process stops the heartbeat and is logged (the next step's own renewal then
raises :class:`~agent.store.errors.DatabaseBusy` and the run stops cleanly).
"""

from __future__ import annotations

import logging
import threading
from datetime import timedelta
from types import TracebackType

from agent.store.campaigns import acquire_run_lock
from agent.store.database import Database
from agent.store.errors import DatabaseBusy
from agent.store.models import CampaignRecord

log = logging.getLogger(__name__)


class LeaseHeartbeat:
    """A context manager renewing ``campaign_id``'s run lease every ``ttl / 3`` until the block ends."""

    def __init__(self, db: Database, campaign_id: int, ttl: timedelta, *, interval: float | None = None) -> None:
        self.db, self.campaign_id, self.ttl = db, campaign_id, ttl
        self.interval = interval if interval is not None else ttl.total_seconds() / 3
        self.renewals = 0
        self.lost: str | None = None
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._beat, name=f"lease-{campaign_id}", daemon=True)

    def renew(self) -> None:
        """Renew once; :class:`DatabaseBusy` when another live process holds the lease."""
        with self.db.transaction() as session:
            record = session.get(CampaignRecord, self.campaign_id)
            if record is None:
                raise DatabaseBusy(f"campaign id {self.campaign_id} no longer exists")
            acquire_run_lock(session, record, ttl=self.ttl)
        self.renewals += 1

    def _beat(self) -> None:
        while not self._stop.wait(self.interval):
            try:
                self.renew()
            except DatabaseBusy as exc:
                self.lost = str(exc)
                log.error("run lease lost, the heartbeat stops: %s", exc)
                return
            except Exception as exc:  # noqa: BLE001 - a database blip: try again next beat, the lease has slack
                log.warning("could not renew the run lease (will retry): %s", exc)

    def __enter__(self) -> LeaseHeartbeat:
        self._thread.start()
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self._stop.set()
        self._thread.join(timeout=self.interval + 5)
