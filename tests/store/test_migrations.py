"""Migrations run up and down on SQLite and PostgreSQL, and match the models exactly."""

from __future__ import annotations

import pytest
from alembic import command
from sqlalchemy import inspect

from agent.store import Database, DatabaseOutdated, DatabaseUnreachable
from agent.store.migrate import alembic_config, downgrade, head_revision, upgrade
from agent.store.models import Base


def test_upgrade_downgrade_upgrade(db_url: str) -> None:
    db = Database(db_url)
    assert db.current_revision() is None
    upgrade(db_url)
    assert db.current_revision() == head_revision()
    tables = set(inspect(db.engine).get_table_names())
    assert set(Base.metadata.tables) <= tables
    downgrade(db_url, "base")
    assert set(inspect(db.engine).get_table_names()) <= {"alembic_version"}
    upgrade(db_url)
    assert db.current_revision() == head_revision()
    db.dispose()


def test_models_and_migrations_agree(migrated_db_url: str) -> None:
    """``alembic check``: autogenerate finds nothing to add."""
    command.check(alembic_config(migrated_db_url))


def test_an_unmigrated_database_is_refused_with_what_to_run(db_url: str) -> None:
    db = Database(db_url)
    with pytest.raises(DatabaseOutdated, match="matloop db upgrade"):
        db.require_current()
    db.dispose()


def test_an_older_revision_is_refused(migrated_db_url: str) -> None:
    db = Database(migrated_db_url)
    with db.engine.begin() as conn:
        conn.exec_driver_sql("UPDATE alembic_version SET version_num = '0000old'")
    with pytest.raises(DatabaseOutdated, match="is at revision 0000old"):
        db.require_current()
    db.dispose()


def test_unreachable_postgres_is_reported_plainly() -> None:
    db = Database("postgresql://someone:secret@127.0.0.1:1/nowhere")
    with pytest.raises(DatabaseUnreachable) as info:
        db.ping()
    text = str(info.value)
    assert "cannot reach the database" in text and "127.0.0.1:1" in text
    assert "secret" not in text  # passwords never reach the screen
    assert "MATLOOP_DATABASE_URL" in text
