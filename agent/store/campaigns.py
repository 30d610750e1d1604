"""Campaign records: registering a spec, finding campaigns by name, and the run lock."""

from __future__ import annotations

import os
import socket
from collections.abc import Callable
from dataclasses import dataclass, replace
from datetime import UTC, datetime, timedelta

from sqlalchemy import select
from sqlalchemy.orm import Session

from agent.spec import Campaign
from agent.store.errors import LeaseHeld, StoreError, UnknownCampaign
from agent.store.events import record_event
from agent.store.models import CampaignRecord


def campaign_names(session: Session) -> list[str]:
    return list(session.scalars(select(CampaignRecord.name).order_by(CampaignRecord.name)))


def get_campaign(session: Session, name: str) -> CampaignRecord:
    """The campaign called ``name``; :class:`UnknownCampaign` (listing the known ones) otherwise."""
    record = session.scalar(select(CampaignRecord).where(CampaignRecord.name == name))
    if record is None:
        raise UnknownCampaign(name, campaign_names(session))
    return record


class CampaignAlreadyExists(StoreError):
    """A new run names a campaign that already has history: continuing it must be asked for (``--resume``)."""


def refuse_existing_campaign(session: Session, name: str, where: str, how_to_continue: str) -> None:
    """Raise :class:`CampaignAlreadyExists` when a campaign called ``name`` is stored (``where`` names the
    database, ``how_to_continue`` the caller's way to resume: a CLI flag, a flow parameter)."""
    status = session.scalar(select(CampaignRecord.status).where(CampaignRecord.name == name))
    if status is not None:
        raise CampaignAlreadyExists(
            f"campaign {name!r} already exists in {where} (status {status}): {how_to_continue}, "
            "or change `name:` in the campaign file"
        )


def register_campaign(session: Session, campaign: Campaign, *, allow_changed_spec: bool = False) -> CampaignRecord:
    """Store ``campaign`` (or find it); refuse a different spec under the same name.

    A campaign's history is only explainable against the spec it ran with, so a
    changed file under an existing name is an error unless the caller opts in
    (the change is then logged as an event).
    """
    spec_hash = campaign.spec_hash()
    record = session.scalar(select(CampaignRecord).where(CampaignRecord.name == campaign.name))
    if record is None:
        record = CampaignRecord(
            name=campaign.name, spec=campaign.model_dump(mode="json"), spec_hash=spec_hash, status="created"
        )
        session.add(record)
        session.flush()
        record_event(session, "campaign_created", campaign_id=record.id, payload={"spec_hash": spec_hash})
        return record
    if record.spec_hash != spec_hash and campaign.same_as_stored(record.spec):
        record.spec, record.spec_hash = campaign.model_dump(mode="json"), spec_hash  # stored in an older shape
    if record.spec_hash != spec_hash:
        if not allow_changed_spec:
            raise StoreError(
                f"campaign {campaign.name!r} already exists with a different spec (hash {record.spec_hash[:12]} "
                f"vs {spec_hash[:12]}); rename the campaign, or resume it with its original file"
            )
        record_event(
            session,
            "spec_changed",
            campaign_id=record.id,
            payload={"old_hash": record.spec_hash, "new_hash": spec_hash},
        )
        record.spec = campaign.model_dump(mode="json")
        record.spec_hash = spec_hash
    return record


def load_spec(record: CampaignRecord) -> Campaign:
    return Campaign.from_stored(record.spec)


@dataclass(frozen=True)
class LeaseOwner:
    """Who holds a campaign's run lease: a process (host and pid), the Prefect flow run it runs, and since when.

    Stored in ``campaigns.lock_owner`` as ``host:pid|flow-run-id|since`` (a bare ``host:pid`` from older
    versions still reads).  The flow run id lets ``matloop approve`` and a resumed run tell *which* run owns
    the campaign; a run suspended for approval holds the lease with no process (``pid`` None) until a
    person decides, so a second run cannot slip in while the first waits.
    """

    host: str
    pid: int | None
    flow_run_id: str | None = None
    since: datetime | None = None

    def encode(self) -> str:
        since = self.since.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ") if self.since else ""
        pid = "" if self.pid is None else str(self.pid)
        return f"{self.host}:{pid}|{self.flow_run_id or ''}|{since}"[:200]

    @classmethod
    def parse(cls, text: str) -> LeaseOwner:
        process, _, rest = text.partition("|")
        run_id, _, since = rest.partition("|")
        host, _, pid = process.rpartition(":")
        when = None
        if since:
            try:
                when = datetime.strptime(since, "%Y-%m-%dT%H:%M:%SZ").replace(tzinfo=UTC)
            except ValueError:
                when = None
        return cls(host=host, pid=int(pid) if pid.isdigit() else None, flow_run_id=run_id or None, since=when)

    def same_run(self, other: LeaseOwner) -> bool:
        """The same run: the same flow run (even resumed in another process), or the same process."""
        if self.flow_run_id or other.flow_run_id:
            return self.flow_run_id == other.flow_run_id
        return (self.host, self.pid) == (other.host, other.pid)

    def describe(self) -> str:
        """``flow run X on host H (pid P) since T`` — the words of a refusal."""
        where = f"host {self.host}" + (f" (pid {self.pid})" if self.pid is not None else "")
        who = f"flow run {self.flow_run_id} on {where}" if self.flow_run_id else f"{self.host}:{self.pid}"
        if self.flow_run_id and self.pid is None:
            who = f"flow run {self.flow_run_id} (suspended, waiting for approval)"
        return who + (f" since {self.since:%Y-%m-%d %H:%M:%S} UTC" if self.since else "")


def process_identity(flow_run_id: str | None = None) -> LeaseOwner:
    """This process (and the flow run it runs, if any) as a lease owner."""
    return LeaseOwner(host=socket.gethostname(), pid=os.getpid(), flow_run_id=flow_run_id)


#: ``run_is_over(flow_run_id)`` → True when that flow run has definitely ended (cancelled, crashed, finished):
#: its lease is then free even before it expires.  Injected by the Prefect side; the store knows no Prefect.
RunIsOver = Callable[[str], bool]


def lease_holder(record: CampaignRecord, *, run_is_over: RunIsOver | None = None) -> LeaseOwner | None:
    """The live owner of ``record``'s lease, or None when it is free (never taken, expired, or its owner gone)."""
    if not record.lock_owner or record.lock_expires_at is None:
        return None
    expires = record.lock_expires_at if record.lock_expires_at.tzinfo else record.lock_expires_at.replace(tzinfo=UTC)
    if expires <= datetime.now(UTC):
        return None
    holder = LeaseOwner.parse(record.lock_owner)
    if holder.pid is not None and _owner_is_dead(holder):
        return None
    if holder.flow_run_id and run_is_over is not None and run_is_over(holder.flow_run_id):
        return None
    return holder


def lease_refusal(record: CampaignRecord, holder: LeaseOwner) -> str:
    """The one sentence that refuses a second run of ``record``."""
    until = record.lock_expires_at
    lease = f", lease until {until:%Y-%m-%d %H:%M:%S} UTC" if until else ""
    decide = f"decide with `matloop approve {record.name} --by NAME` or the run's form in the Prefect UI"
    if holder.flow_run_id and holder.pid is None:
        since = f" since {holder.since:%Y-%m-%d %H:%M:%S} UTC" if holder.since else ""
        return (f"campaign {record.name!r} waits for approval in flow run {holder.flow_run_id} (suspended{since}"
                f"{lease}); {decide}, or cancel that flow run, before starting another run")
    if record.status == "waiting":
        return (f"campaign {record.name!r} is being run by {holder.describe()} ({lease.removeprefix(', ')}), which "
                f"waits for approval; {decide}, or stop that run first")
    return f"campaign {record.name!r} is being run by {holder.describe()} ({lease.removeprefix(', ')}); " \
           "wait for it, or stop it first"


def acquire_run_lock(
    session: Session,
    record: CampaignRecord,
    *,
    ttl: timedelta = timedelta(minutes=5),
    owner: LeaseOwner | None = None,
    run_is_over: RunIsOver | None = None,
) -> LeaseOwner:
    """Claim (or renew) the right to run ``record``; :class:`LeaseHeld` if another live run holds it.

    The lock is a lease with an expiry renewed by the running process, so a
    campaign whose process was killed becomes runnable again once the lease runs
    out (or at once for the same host and a dead pid, or a flow run Prefect says has ended).
    """
    owner = owner or process_identity()
    holder = lease_holder(record, run_is_over=run_is_over)
    if holder is not None and not holder.same_run(owner):
        raise LeaseHeld(lease_refusal(record, holder))
    since = holder.since if holder is not None and holder.pid is not None else None
    claimed = replace(owner, since=since or owner.since or datetime.now(UTC))
    record.lock_owner = claimed.encode()
    record.lock_expires_at = datetime.now(UTC) + ttl
    return claimed


def suspend_run_lock(session: Session, record: CampaignRecord, owner: LeaseOwner, ttl: timedelta) -> None:
    """Keep the lease for a flow run that suspends for approval (its process exits; the run lives on in Prefect)."""
    if record.lock_owner and LeaseOwner.parse(record.lock_owner).same_run(owner) and owner.flow_run_id:
        record.lock_owner = replace(owner, pid=None, since=datetime.now(UTC)).encode()
        record.lock_expires_at = datetime.now(UTC) + ttl


def release_run_lock(session: Session, record: CampaignRecord, owner: LeaseOwner | None = None) -> None:
    """Give the lease back, if ``owner`` (default: this process) still holds it."""
    owner = owner or process_identity()
    if record.lock_owner and LeaseOwner.parse(record.lock_owner).same_run(owner):
        record.lock_owner = None
        record.lock_expires_at = None


def _owner_is_dead(owner: LeaseOwner) -> bool:
    """True when ``owner`` names a process on this host that no longer exists."""
    if owner.host != socket.gethostname() or owner.pid is None:
        return False
    try:
        os.kill(owner.pid, 0)
    except ProcessLookupError:
        return True
    except PermissionError:
        return False
    return False
