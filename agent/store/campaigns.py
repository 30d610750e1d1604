"""Campaign records: registering a spec, finding campaigns by name, and the run lock."""

from __future__ import annotations

import os
import socket
from datetime import UTC, datetime, timedelta

from sqlalchemy import select
from sqlalchemy.orm import Session

from agent.spec import Campaign
from agent.store.errors import DatabaseBusy, StoreError, UnknownCampaign
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


def process_identity() -> str:
    return f"{socket.gethostname()}:{os.getpid()}"


def acquire_run_lock(session: Session, record: CampaignRecord, *, ttl: timedelta = timedelta(minutes=5)) -> str:
    """Claim the right to run ``record``; :class:`DatabaseBusy` if a live process holds it.

    The lock is a lease with an expiry renewed by the running process, so a
    campaign whose process was killed becomes runnable again once the lease runs
    out (or at once for the same host and a dead pid).
    """
    owner = process_identity()
    now = datetime.now(UTC)
    held = record.lock_owner and record.lock_owner != owner and record.lock_expires_at and record.lock_expires_at > now
    if held and not _owner_is_dead(record.lock_owner or ""):
        raise DatabaseBusy(
            f"campaign {record.name!r} is being run by {record.lock_owner} (lease until "
            f"{record.lock_expires_at:%Y-%m-%d %H:%M:%S} UTC); stop that process or wait for its lease to expire"
        )
    record.lock_owner = owner
    record.lock_expires_at = now + ttl
    return owner


def release_run_lock(session: Session, record: CampaignRecord) -> None:
    if record.lock_owner == process_identity():
        record.lock_owner = None
        record.lock_expires_at = None


def _owner_is_dead(owner: str) -> bool:
    """True when ``owner`` names a process on this host that no longer exists."""
    host, _, pid = owner.rpartition(":")
    if host != socket.gethostname() or not pid.isdigit():
        return False
    try:
        os.kill(int(pid), 0)
    except ProcessLookupError:
        return True
    except PermissionError:
        return False
    return False
