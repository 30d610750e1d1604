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


def test_the_label_migration_labels_existing_candidates(db_url: str) -> None:
    """Candidates written before ``candidate.label`` existed get the label their representation gives."""
    import json

    from sqlalchemy import text

    from agent.store.labels import describe_candidate
    from matloop.types import Candidate

    upgrade(db_url, "0002")
    db = Database(db_url)
    point = Candidate.point({"ni_load": 0.123456, "solvent": 'water, "dry"'}).model_dump(mode="json")
    odd = {"params": "not a dict"}
    with db.engine.begin() as conn:
        conn.execute(text("INSERT INTO campaign (name, spec, spec_hash, status, created_at, updated_at) "
                          "VALUES ('c', '{}', 'h', 'running', '2026-01-01', '2026-01-01')"))
        campaign_id = conn.execute(text("SELECT id FROM campaign")).scalar_one()
        for fingerprint, representation in [("p", point), ("o", odd)]:
            conn.execute(text("INSERT INTO candidate (campaign_id, fingerprint, kind, representation, origin, "
                              "created_at) VALUES (:c, :f, 'point', :r, 'test', '2026-01-01')"),
                         {"c": campaign_id, "f": fingerprint, "r": json.dumps(representation)})
    upgrade(db_url)
    with db.engine.connect() as conn:
        labels = dict(conn.execute(text("SELECT fingerprint, label FROM candidate")).all())
    db.dispose()
    assert labels == {"p": describe_candidate("point", point), "o": describe_candidate("point", odd)}
    assert labels["p"] == 'ni_load=0.123, solvent=water, "dry"'


def test_a_candidate_is_stored_with_its_label(migrated_db_url: str) -> None:
    """The column's default labels every candidate as ``Candidate.label`` does, whoever writes the row."""
    from agent.spec import parse_campaign
    from agent.store.campaigns import register_campaign
    from agent.store.models import CandidateRecord
    from cli.campaign_files import template_text
    from matloop.types import Candidate

    db = Database(migrated_db_url)
    candidate = Candidate.point({f"p{i}": i / 7 for i in range(12)})
    with db.transaction() as s:
        campaign = register_campaign(s, parse_campaign(template_text("oer")))
        s.add(CandidateRecord(campaign_id=campaign.id, fingerprint=candidate.fingerprint, kind="point",
                              representation=candidate.model_dump(mode="json"), origin="test"))
    with db.reading() as s:
        stored = s.query(CandidateRecord).one()
        assert stored.label == candidate.label(max_len=80) and stored.label.endswith("…")
    db.dispose()
