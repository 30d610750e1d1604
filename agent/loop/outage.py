"""Riding out a database outage: how long a campaign waits for its database before a run gives up.

A campaign runs for days, and a database failover, a restart for maintenance or a network blip should pause it,
not end its run. The flow retries each step on these delays (about nine minutes in all); the few reads the loop
makes *between* steps (which step an iteration is at, its batch, the iteration number for a task's name) wait on
the same schedule, so an outage that begins between two steps is ridden out like one that begins inside a step.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from typing import TypeVar

from sqlalchemy.orm import Session

from agent.store import Database, DatabaseBusy, DatabaseUnreachable

log = logging.getLogger(__name__)

T = TypeVar("T")

#: Seconds between tries while the database is unreachable or busy (2 s, 10 s, ... 5 min; ~9 minutes in all).
TRANSIENT_RETRY_DELAYS = (2, 10, 30, 60, 120, 300)


def through_outage(call: Callable[[], T], delays: tuple[float, ...] = TRANSIENT_RETRY_DELAYS) -> T:
    """``call()`` (something that only reads), tried again after each delay while the database is unreachable or busy."""
    for delay in (*delays, None):
        try:
            return call()
        except (DatabaseUnreachable, DatabaseBusy) as exc:
            if delay is None:
                raise
            log.warning("database unavailable between steps (trying again in %s s): %s", delay, exc)
            time.sleep(delay)
    raise AssertionError("unreachable")  # the last try either returns or raises


def read_through_outage(db: Database, read: Callable[[Session], T],
                        delays: tuple[float, ...] = TRANSIENT_RETRY_DELAYS) -> T:
    """``read(session)`` in a read session, tried again after each delay while the database is unreachable or busy."""

    def once() -> T:
        with db.reading() as session:
            return read(session)

    return through_outage(once, delays)
