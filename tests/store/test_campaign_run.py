"""One live run per campaign (agent/run.py): refusals in one sentence, even at the same instant; a lock blip
during a lease renewal does not cost the lease; a finished campaign says how to extend it; a stale run stops."""

from __future__ import annotations

import sqlite3
import threading
import time
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from sqlalchemy import event, select

from agent.run import CampaignRun, preflight
from agent.spec import Campaign, parse_campaign
from agent.store import Database, DatabaseBusy, StoreError
from agent.store.campaigns import (
    CampaignAlreadyExists,
    LeaseOwner,
    acquire_run_lock,
    get_campaign,
    register_campaign,
)
from agent.store.errors import CampaignFinished, LeaseHeld
from agent.store.events import record_event
from agent.store.lease import LeaseHeartbeat
from agent.store.models import CampaignRecord, EventRecord
from cli.campaign_files import template_text


def _spec(**overrides: Any) -> Campaign:
    spec = parse_campaign(template_text("oer"))
    return spec.model_copy(update=overrides) if overrides else spec


def _record(db: Database, name: str = "oer-demo") -> CampaignRecord:
    with db.reading() as s:
        return get_campaign(s, name)


def test_a_second_run_of_a_live_campaign_is_refused_naming_the_owner(migrated_db_url: str) -> None:
    spec = _spec()
    with CampaignRun(spec, database_url=migrated_db_url, resume=False, flow_run_id="run-a") as first:
        owner = LeaseOwner.parse(_record(first.database).lock_owner or "")
        assert owner.flow_run_id == "run-a" and owner.pid is not None and owner.since is not None
        with pytest.raises(LeaseHeld) as refused:
            with CampaignRun(spec, database_url=migrated_db_url, resume=True, flow_run_id="run-b"):
                pass
        message = str(refused.value)
        assert message.startswith("campaign 'oer-demo' is being run by flow run run-a on host ")
        assert "since" in message and message.endswith("wait for it, or stop it first") and "\n" not in message
        db = Database(migrated_db_url)  # the CLI's early check says the same, before any flow run starts
        with pytest.raises(LeaseHeld, match="being run by flow run run-a"):
            preflight(db, spec, resume=True, resume_hint="pass --resume")
        db.dispose()
    record = Database(migrated_db_url)
    assert _record(record).lock_owner is None  # given back at the end of the run
    with CampaignRun(spec, database_url=migrated_db_url, resume=True, flow_run_id="run-b"):
        pass  # and then the next run may take it
    record.dispose()


def _race(spec: Campaign, url: str, resume: bool, runs: int = 4) -> list[BaseException | str]:
    """``runs`` runs of ``spec`` registering at the same instant (threads, distinct flow run ids)."""
    barrier = threading.Barrier(runs)
    outcomes: list[BaseException | str] = []
    release = threading.Event()

    def start(run_id: str) -> None:
        barrier.wait()
        try:
            with CampaignRun(spec, database_url=url, resume=resume, flow_run_id=run_id):
                outcomes.append("ran")
                release.wait(60)  # hold the lease while the others try
        except BaseException as exc:  # noqa: BLE001 - inspected by the caller
            outcomes.append(exc)

    threads = [threading.Thread(target=start, args=(f"run-{resume}-{i}",)) for i in range(runs)]
    for thread in threads:
        thread.start()
    deadline = time.monotonic() + 90
    while sum(not isinstance(o, str) for o in outcomes) < runs - 1 and time.monotonic() < deadline:
        time.sleep(0.05)
    release.set()
    for thread in threads:
        thread.join(60)
    return outcomes


def test_two_runs_started_at_the_same_instant_on_postgres_give_one_sentence(pg_url: str) -> None:
    from agent.store.migrate import upgrade

    upgrade(pg_url)
    spec = _spec()
    for resume in (False, True):  # a new campaign registered twice at once; then an existing one resumed twice
        outcomes = _race(spec, pg_url, resume)
        assert outcomes.count("ran") == 1, outcomes
        refusals = [o for o in outcomes if not isinstance(o, str)]
        assert len(refusals) == 3
        for refusal in refusals:  # never a raw UniqueViolation with its SQL
            assert isinstance(refusal, (CampaignAlreadyExists, LeaseHeld)), repr(refusal)
            assert "\n" not in str(refusal) and "INSERT" not in str(refusal) and "psycopg" not in str(refusal)


def _hold_sqlite_write_lock(path: str, seconds: float, locked: threading.Event) -> None:
    """Another process's writer holding the whole SQLite database for a moment (BEGIN EXCLUSIVE)."""
    connection = sqlite3.connect(path, timeout=1, isolation_level=None)
    try:
        connection.execute("BEGIN EXCLUSIVE")
        locked.set()
        time.sleep(seconds)
        connection.execute("COMMIT")
    finally:
        connection.close()


def test_a_database_lock_during_a_renewal_does_not_lose_the_lease(sqlite_url: str) -> None:
    """SQLite: another writer holds the whole database while renewals fail (PostgreSQL's row locks only make
    a renewal wait, which no heartbeat ever mistook for a lost lease)."""
    from agent.store.migrate import upgrade

    upgrade(sqlite_url)
    db = Database(sqlite_url)

    @event.listens_for(db.engine, "connect")
    def _short_busy_timeout(dbapi_connection: Any, _record: Any) -> None:  # fail fast on a lock (default: 10 s)
        dbapi_connection.execute("PRAGMA busy_timeout=50")

    ttl = timedelta(seconds=4)
    owner = LeaseOwner(host="testhost", pid=None, flow_run_id="run-a")  # no pid: only the expiry can free it
    with db.transaction() as s:
        record = register_campaign(s, _spec())
        acquire_run_lock(s, record, ttl=ttl, owner=owner)
        campaign_id = record.id
    path = sqlite_url.removeprefix("sqlite:///")
    with LeaseHeartbeat(db, campaign_id, ttl, interval=0.2, owner=owner) as heartbeat:
        time.sleep(0.5)
        before = heartbeat.renewals
        locked = threading.Event()
        blip = threading.Thread(target=_hold_sqlite_write_lock, args=(path, 1.5, locked))
        blip.start()
        locked.wait(5)
        blip.join()
        time.sleep(1.5)  # renewals resume after the lock goes
        assert heartbeat.failures >= 1, "the lock never met a renewal: the test did not test anything"
        assert heartbeat.lost is None
        assert heartbeat.renewals > before
    holder = LeaseOwner.parse(_record(db).lock_owner or "")
    assert holder.flow_run_id == "run-a"
    db.dispose()


def test_a_run_that_lost_its_lease_stops_at_its_next_step(migrated_db_url: str) -> None:
    with CampaignRun(_spec(), database_url=migrated_db_url, resume=False, flow_run_id="run-a") as run:
        run.renew()  # still ours
        with run.database.transaction() as s:  # another run took it (e.g. after a long network split)
            record = get_campaign(s, "oer-demo")
            record.lock_owner = LeaseOwner("otherhost", 4242, "run-b", datetime.now(UTC)).encode()
            record.lock_expires_at = datetime.now(UTC) + timedelta(minutes=5)
        with pytest.raises(LeaseHeld, match=r"^this run lost campaign 'oer-demo' and stops here .*flow run run-b"):
            run.renew()
    db = Database(migrated_db_url)
    assert LeaseOwner.parse(_record(db).lock_owner or "").flow_run_id == "run-b"  # not taken back, not released
    db.dispose()


def test_a_finished_campaign_says_so_and_a_raised_budget_extends_it(migrated_db_url: str) -> None:
    spec = _spec()
    with CampaignRun(spec, database_url=migrated_db_url, resume=False) as run, run.database.transaction() as s:
        record = get_campaign(s, spec.name)
        record.status, record.stop_reason = "stopped", "budget spent: 88 of 88 experiments"
    for resume in (True, False):
        with pytest.raises(CampaignFinished) as refused:
            with CampaignRun(spec, database_url=migrated_db_url, resume=resume, resume_hint="pass --resume"):
                pass
        assert str(refused.value) == (
            "campaign 'oer-demo' is finished (budget spent: 88 of 88 experiments); to go on, raise its `budget:` "
            "(in the campaign file or the inline spec) and pass --resume")
    bigger = spec.model_copy(update={"budget": spec.budget.model_copy(update={"max_experiments": 120})})
    with pytest.raises(CampaignAlreadyExists):  # a new budget still needs --resume
        with CampaignRun(bigger, database_url=migrated_db_url, resume=False):
            pass
    with pytest.raises(StoreError, match="different spec"):  # anything else changed is still refused
        with CampaignRun(bigger.model_copy(update={"batch_size": 4}), database_url=migrated_db_url, resume=True):
            pass
    with CampaignRun(bigger, database_url=migrated_db_url, resume=True) as run:
        record = _record(run.database)
        assert record.status == "paused" and record.spec["budget"]["max_experiments"] == 120
        with run.database.reading() as s:
            kinds = set(s.scalars(select(EventRecord.kind).where(EventRecord.campaign_id == record.id)))
        assert {"campaign_extended", "spec_changed", "run_started"} <= kinds


def test_a_resumed_run_that_no_longer_owns_the_campaign_fails_instead_of_waiting_again(migrated_db_url: str) -> None:
    spec = _spec()
    with CampaignRun(spec, database_url=migrated_db_url, resume=False, flow_run_id="run-a") as run:
        with run.database.transaction() as s:  # run-a asked for approval of batch 7, then suspended
            record_event(s, "approval_requested", campaign_id=run.campaign_id,
                         payload={"batch": 7, "flow_run_id": "run-a", "key": "k", "api_url": None})
    # ... and while it was suspended, its lease lapsed and run-b took the campaign and asked its own question
    with CampaignRun(spec, database_url=migrated_db_url, resume=True, flow_run_id="run-b") as run:
        with run.database.transaction() as s:
            record_event(s, "approval_requested", campaign_id=run.campaign_id,
                         payload={"batch": 8, "flow_run_id": "run-b", "key": "k", "api_url": None})
    # run-a resumes (its decision arrived): it must fail in one sentence, not suspend again on batch 8
    with pytest.raises(LeaseHeld) as refused:
        with CampaignRun(spec, database_url=migrated_db_url, resume=False, flow_run_id="run-a"):
            pass
    assert str(refused.value) == (
        "this flow run run-a no longer owns campaign 'oer-demo': it waited for approval of batch 7, but the campaign "
        "moved on (flow run run-b waits for it now); its decision is not applied here")
    # run-b, resumed after its own suspension, continues even though resume=False (its own campaign)
    with CampaignRun(spec, database_url=migrated_db_url, resume=False, flow_run_id="run-b"):
        pass


def test_database_busy_and_lease_held_are_different_errors() -> None:
    assert not issubclass(LeaseHeld, DatabaseBusy) and not issubclass(DatabaseBusy, LeaseHeld)
    from flows.campaign import is_transient

    assert is_transient(DatabaseBusy("locked for a moment")) and not is_transient(LeaseHeld("run by another run"))


def test_a_campaign_stored_before_a_new_setting_is_the_same_campaign(migrated_db_url: str) -> None:
    """Stored before ``budget.currency`` and ``on_failure`` existed (another hash): still finished, still extensible."""
    from matloop.types import stable_hash

    spec = _spec()
    with CampaignRun(spec, database_url=migrated_db_url, resume=False) as run, run.database.transaction() as s:
        record = get_campaign(s, spec.name)
        old = spec.model_dump(mode="json")
        for key in ("currency", "on_failure"):
            del old["budget"][key]
        record.spec, record.spec_hash = old, stable_hash(old, length=64)
        record.status, record.stop_reason = "stopped", "budget spent: 88 of 88 experiments"
    with pytest.raises(CampaignFinished):
        with CampaignRun(spec, database_url=migrated_db_url, resume=True):
            pass
    bigger = spec.model_copy(update={"budget": spec.budget.model_copy(update={"max_experiments": 120})})
    with CampaignRun(bigger, database_url=migrated_db_url, resume=True) as run:
        assert _record(run.database).status == "paused"
