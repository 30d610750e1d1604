"""The run lock: a second writer is refused plainly; a dead owner's lease is taken over."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from agent.cli.campaign_files import template_text
from agent.spec import parse_campaign
from agent.store import Database, DatabaseBusy, StoreError, UnknownCampaign
from agent.store.campaigns import acquire_run_lock, get_campaign, register_campaign, release_run_lock


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
    with pytest.raises(DatabaseBusy, match="being run by otherhost:4242"), db.transaction() as s:
        acquire_run_lock(s, get_campaign(s, "oer-demo"))
    with db.transaction() as s:
        get_campaign(s, "oer-demo").lock_expires_at = datetime.now(UTC) - timedelta(seconds=1)
    with db.transaction() as s:
        record = get_campaign(s, "oer-demo")
        owner = acquire_run_lock(s, record)
        assert record.lock_owner == owner
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
