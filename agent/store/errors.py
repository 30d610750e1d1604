"""Database problems, each with what went wrong, where, and what to run."""

from __future__ import annotations


class StoreError(RuntimeError):
    """A problem with the campaign database that the user can act on."""


class DatabaseUnreachable(StoreError):
    """The database cannot be reached (server down, wrong URL, file not writable)."""


class DatabaseMissing(StoreError):
    """A read-only command was pointed at a SQLite file that does not exist (it is never created for a read)."""


class UnsupportedDatabase(StoreError):
    """The database URL is malformed or names a backend matloop does not run on."""


class DatabaseOutdated(StoreError):
    """The database schema is older (or newer) than this version of matloop expects."""


class DatabaseBusy(StoreError):
    """Another writer holds the database or the campaign."""


class LeaseHeld(StoreError):
    """Another live run owns the campaign (its lease): not a blip to retry, a refusal to read.

    Distinct from :class:`DatabaseBusy` (a lock held for a moment, retried): a step that meets
    ``LeaseHeld`` stops the run at once, and the lease heartbeat stops beating.
    """


class CampaignFinished(StoreError):
    """The campaign has stopped (budget spent, target met...): relaunching it needs a larger budget."""


class UnknownCampaign(StoreError):
    """No campaign of that name; ``known`` lists those that exist."""

    def __init__(self, name: str, known: list[str]) -> None:
        self.name = name
        self.known = known
        listing = ", ".join(known) if known else "(none yet)"
        super().__init__(f"no campaign named {name!r}; known campaigns: {listing}")
