"""The run lock: a second writer is refused plainly; a dead owner's lease is taken over."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from agent.spec import parse_campaign
from agent.store import Database, StoreError, UnknownCampaign
from agent.store.campaigns import (
    CampaignAlreadyExists,
    acquire_run_lock,
    get_campaign,
    refuse_existing_campaign,
    register_campaign,
    release_run_lock,
)
from agent.store.errors import LeaseHeld
from cli.campaign_files import template_text


@pytest.fixture
def db(migrated_db_url: str):
    database = Database(migrated_db_url)
    yield database
    database.dispose()


def test_register_is_idempotent_and_refuses_a_changed_spec(db: Database) -> None:
    campaign = parse_campaign(template_text("oer"))
    with db.transaction() as s:
        first = register_campaign(s, campaign).id
    with db.transaction() as s:
        assert register_campaign(s, campaign).id == first
    changed = campaign.model_copy(update={"batch_size": 4})
    with pytest.raises(StoreError, match="different spec"), db.transaction() as s:
        register_campaign(s, changed)


def test_a_new_run_under_a_stored_name_is_refused_with_how_to_continue(db: Database) -> None:
    with db.reading() as s:
        refuse_existing_campaign(s, "oer-demo", db.display_url, "pass --resume")  # nothing stored: no error
    with db.transaction() as s:
        register_campaign(s, parse_campaign(template_text("oer")))
    with pytest.raises(CampaignAlreadyExists, match=r"'oer-demo' already exists in .* \(status created\): "
                       r"pass --resume, or change `name:`"), db.reading() as s:
        refuse_existing_campaign(s, "oer-demo", db.display_url, "pass --resume")


def test_unknown_campaign_lists_known_ones(db: Database) -> None:
    with db.transaction() as s:
        register_campaign(s, parse_campaign(template_text("oer")))
    with pytest.raises(UnknownCampaign, match="known campaigns: oer-demo"), db.reading() as s:
        get_campaign(s, "nope")


def test_second_writer_is_refused_until_the_lease_expires(db: Database) -> None:
    with db.transaction() as s:
        record = register_campaign(s, parse_campaign(template_text("oer")))
        record.lock_owner = "otherhost:4242"  # a live process elsewhere
        record.lock_expires_at = datetime.now(UTC) + timedelta(minutes=5)
    # a live owner is a refusal (LeaseHeld), not a lock blip to retry (DatabaseBusy)
    with pytest.raises(LeaseHeld, match="being run by otherhost:4242"), db.transaction() as s:
        acquire_run_lock(s, get_campaign(s, "oer-demo"))
    with db.transaction() as s:
        get_campaign(s, "oer-demo").lock_expires_at = datetime.now(UTC) - timedelta(seconds=1)
    with db.transaction() as s:
        record = get_campaign(s, "oer-demo")
        owner = acquire_run_lock(s, record)
        assert record.lock_owner == owner.encode()
        release_run_lock(s, record)
        assert record.lock_owner is None


def test_a_dead_local_owner_does_not_block(db: Database) -> None:
    import socket

    with db.transaction() as s:
        record = register_campaign(s, parse_campaign(template_text("oer")))
        record.lock_owner = f"{socket.gethostname()}:999999"  # no such pid
        record.lock_expires_at = datetime.now(UTC) + timedelta(minutes=5)
    with db.transaction() as s:
        acquire_run_lock(s, get_campaign(s, "oer-demo"))


def _expiry(db: Database) -> datetime:
    with db.reading() as s:
        value = get_campaign(s, "oer-demo").lock_expires_at
    assert value is not None
    return value if value.tzinfo else value.replace(tzinfo=UTC)


def test_heartbeat_keeps_the_lease_through_a_long_wait_and_stops_when_it_is_taken(db: Database) -> None:
    import time

    from agent.store.lease import LeaseHeartbeat

    ttl = timedelta(seconds=3)
    with db.transaction() as s:
        record = register_campaign(s, parse_campaign(template_text("oer")))
        acquire_run_lock(s, record, ttl=ttl)
        campaign_id = record.id
    first = _expiry(db)
    with LeaseHeartbeat(db, campaign_id, ttl, interval=0.2) as heartbeat:
        time.sleep(4)  # longer than the lease: without the heartbeat a second process could take over
        assert heartbeat.renewals >= 3 and heartbeat.lost is None
        assert _expiry(db) > first + timedelta(seconds=2)
        with db.transaction() as s:  # a second process took the lease (e.g. after a long network split)
            record = get_campaign(s, "oer-demo")
            record.lock_owner = "otherhost:4242"
            record.lock_expires_at = datetime.now(UTC) + timedelta(minutes=5)
        deadline = time.monotonic() + 5
        while heartbeat.lost is None and time.monotonic() < deadline:
            time.sleep(0.1)
        assert heartbeat.lost is not None and "otherhost:4242" in heartbeat.lost
    with db.reading() as s:
        assert get_campaign(s, "oer-demo").lock_owner == "otherhost:4242"  # the heartbeat did not steal it back
