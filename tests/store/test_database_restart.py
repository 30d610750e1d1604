"""PostgreSQL restarted under an open session: what reaches the loop is :class:`DatabaseUnreachable`, never a raw
driver error.

Ending a session talks to the server (a ``ROLLBACK``, even when closing a read); a server that went away after the
session's last query made that raise ``psycopg.OperationalError: consuming input failed`` past
:meth:`Database.transaction` / :meth:`Database.reading`, a campaign run ended on it instead of riding the restart
out (agent/loop/outage.py and the flow's step retries know only the plain errors). A real server of this test's
own is stopped abruptly (``pg_ctl -m immediate``, every connection dropped) and started again for each case.
"""

from __future__ import annotations

from typing import Any

import pytest
from sqlalchemy import text

from agent.loop.outage import read_through_outage, through_outage
from agent.store import Database, DatabaseUnreachable
from tests.support.postgres import start_postgres


@pytest.fixture(scope="module")
def server() -> Any:
    try:
        pg = start_postgres()
    except (FileNotFoundError, RuntimeError) as exc:
        pytest.skip(f"no PostgreSQL server can be started here: {exc}")
    yield pg
    pg.stop()


@pytest.fixture
def db(server: Any) -> Any:
    database = Database(server.create_database("restart"))
    with database.transaction() as session:
        session.execute(text("CREATE TABLE t (x integer)"))
    yield database
    database.dispose()


def _rows(db: Database) -> list[int]:
    return read_through_outage(db, lambda s: list(s.execute(text("SELECT x FROM t ORDER BY x")).scalars()),
                               delays=(0.5, 1, 2, 4))


def test_a_read_done_before_the_restart_keeps_its_answer(server: Any, db: Database) -> None:
    with db.reading() as session:
        answer = session.execute(text("SELECT 41 + 1")).scalar_one()
        server.outage(1.0)  # the session's connection dies with the server; its close must not raise
    assert answer == 42
    assert _rows(db) == []  # and the next read works on a fresh connection


def test_a_write_cut_off_before_its_commit_is_plainly_unreachable_and_left_no_trace(server: Any, db: Database) -> None:
    with pytest.raises(DatabaseUnreachable, match="cannot reach the database"):
        with db.transaction() as session:
            session.execute(text("INSERT INTO t VALUES (1)"))
            server.outage(1.0)
    assert _rows(db) == []  # the uncommitted row went with the server

    def write() -> None:
        with db.transaction() as session:
            session.execute(text("INSERT INTO t VALUES (2)"))

    through_outage(write, delays=(0.5, 1, 2, 4))  # retried as a step is: the write goes through once it is back
    assert _rows(db) == [2]


def test_a_query_on_a_connection_the_restart_killed_is_plainly_unreachable(server: Any, db: Database) -> None:
    with pytest.raises(DatabaseUnreachable):
        with db.reading() as session:
            session.execute(text("SELECT 1")).scalar_one()
            server.outage(1.0)
            session.execute(text("SELECT 2")).scalar_one()  # same transaction, dead connection
    assert _rows(db) == []


def test_a_run_ending_while_the_database_restarts_waits_and_releases_its_lease(
    server: Any, caplog: pytest.LogCaptureFixture
) -> None:
    """The end of a run (its lease released) met a restart in the 3-campaign soak: it logged the driver's traceback
    and left the lease to lapse. It now waits for the database briefly and releases it."""
    from sqlalchemy import select

    from agent.run import CampaignRun
    from agent.store.migrate import upgrade
    from agent.store.models import CampaignRecord
    from tests.loop.conftest import branin_spec

    url = server.create_database("end")
    upgrade(url)
    probe = Database(url)
    run = CampaignRun(branin_spec(name="ends-in-outage"), database_url=url, resume=False, flow_run_id="run-a")
    run.__enter__()
    with server.down_for(3.0):
        run.__exit__(None, None, None)  # the run's work is done; its end meets the outage
    with probe.reading() as session:
        record = session.scalar(select(CampaignRecord).where(CampaignRecord.name == "ends-in-outage"))
    probe.dispose()
    assert record is not None and record.lock_owner is None  # released, not left to lapse
    assert "could not record the end of the run" not in caplog.text


def _run_on_a_fresh_database(server: Any, database: str, name: str, flow_run_id: str) -> Any:
    """A :class:`CampaignRun` of a small campaign on a new, migrated database of ``server``; enter it to start."""
    from agent.run import CampaignRun
    from agent.store.migrate import upgrade
    from tests.loop.conftest import branin_spec

    url = server.create_database(database)
    upgrade(url)
    return CampaignRun(branin_spec(name=name), database_url=url, resume=False, flow_run_id=flow_run_id)


def test_a_run_summarised_while_the_database_restarts_waits_for_it(server: Any) -> None:
    """The flow's last reads and writes (pausing the campaign, its summary) come after the last step, outside the
    step retries: in the soak a restart just then ended a cleanly stopped campaign's run Failed, with the driver's
    traceback. Both now wait for the database as a read between two steps does."""
    with _run_on_a_fresh_database(server, "summary", "summarised-in-outage", "run-b") as run:
        with server.down_for(3.0):
            run.record_paused("max_iterations reached")
        with server.down_for(3.0):
            summary = run.summary()
    assert summary.status == "paused" and summary.experiments == 0


def test_an_approval_override_written_while_the_database_restarts_waits_for_it(server: Any) -> None:
    """A run started with another approval policy than its file's records that first, before the loop's step
    retries: a restart just then must be waited for, not end the run's start with ``DatabaseUnreachable``."""
    from agent.store.models import EventRecord

    with _run_on_a_fresh_database(server, "override", "overridden-in-outage", "run-c") as run:
        with server.down_for(3.0):
            run.record_approval_override("auto", "manual")
        with run.database.reading() as session:
            events = session.query(EventRecord).filter_by(campaign_id=run.campaign_id, kind="approval_override").all()
            payloads = [e.payload for e in events]
    assert payloads and all(p == {"policy": "auto", "spec_policy": "manual"} for p in payloads)
