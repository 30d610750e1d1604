"""``history --format csv`` writes text the database mostly renders itself: the same bytes as the typed rows.

The fast path (``iter_history_csv_lines`` + ``write_csv_lines``) must print exactly what ``csv.writer`` prints for
``iter_history``'s typed rows (the notebook frame's values), on both backends, whatever the stored text holds.
"""

from __future__ import annotations

import csv
import io
import os
import subprocess
import sys
from datetime import UTC, datetime

import pytest
from sqlalchemy import column, select, table
from sqlalchemy.exc import DBAPIError
from sqlalchemy.orm import Session

from agent.store import Database
from agent.store.history import HISTORY_COLUMNS, iter_history
from agent.store.history_csv import _raw_chunks, quote_field
from agent.store.models import (
    BatchItemRecord,
    BatchRecord,
    CampaignRecord,
    CandidateRecord,
    IterationRecord,
    JobRecord,
    MeasurementRecord,
)
from cli.output import write_csv, write_csv_lines
from matloop.types import Candidate
from tests.cli.conftest import build_hand_made_campaign
from tests.conftest import REPO

AWKWARD_TEXT = ["plain", "", " spaced ", "a,b", 'say "hi"', "two\nlines", "cr\rhere", "crlf\r\n", "ü — ok…",
                ",", '"', "a,\"b\"", "tab\there", "'single'", "None"]


def _written_by_csv_writer(columns: list[str], rows: list[tuple]) -> str:
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\n")
    writer.writerow(columns)
    writer.writerows(rows)
    return out.getvalue()


def test_quoted_fields_read_back_and_match_csv_writer() -> None:
    """Each awkward value quoted as the database quotes it reads back as itself, in what csv.writer writes.

    The one difference on purpose: a lone carriage return is quoted (csv.writer leaves it bare, and Python's own
    csv reader then refuses the line).
    """
    for value in AWKWARD_TEXT:
        line = ",".join([quote_field(value), "z"]) + "\n"
        assert next(csv.reader(io.StringIO(line, newline=""))) == [value, "z"], value
        if "\r" not in value.replace("\r\n", ""):
            assert line == _written_by_csv_writer(["h", "z"], [(value, "z")]).split("\n", 1)[1], value
    out = io.StringIO()
    assert write_csv_lines(out, ["a", "b"], iter(["1,2\n"] * 2500)) == 2500
    assert out.getvalue() == "a,b\n" + "1,2\n" * 2500


def _add_awkward_rows(url: str) -> None:
    """Iteration 3: text with commas, quotes and line breaks, whole-second timestamps, odd candidates."""
    db = Database(url)
    whole_second = datetime(2026, 1, 2, 3, 4, 5, tzinfo=UTC)
    with db.transaction() as s:
        campaign = s.query(CampaignRecord).filter_by(name="oer-demo").one()
        it = IterationRecord(campaign_id=campaign.id, number=3, step="dispatched")
        s.add(it)
        s.flush()
        batch = BatchRecord(campaign_id=campaign.id, iteration_id=it.id, status="dispatched", approver='Zoë "Z", PI',
                            note="ok,\nbut check\r\nthe second", decided_at=whole_second)
        s.add(batch)
        s.flush()
        long_point = Candidate.point({f"parameter_{i}": i / 7 for i in range(12)})
        mixed_point = Candidate.point({"ni_load": 0.1, "steps": 3, "solvent": 'water, "dry"', "flag": True})
        representations = [
            ("point", long_point.model_dump(mode="json")),
            ("point", mixed_point.model_dump(mode="json")),
            ("point", {"params": "not a dict"}),
            ("composition", {"kind": "composition", "composition": {"Ni": 0.5, "Fe": 0.5}}),
        ]
        for rank, (kind, representation) in enumerate(representations):
            cand = CandidateRecord(campaign_id=campaign.id, fingerprint=f"awkward-{rank}", kind=kind,
                                   representation=representation, origin="hand, made")
            s.add(cand)
            s.flush()
            item = BatchItemRecord(batch_id=batch.id, candidate_id=cand.id, rank=rank, acquisition_value=1e-7 * rank,
                                   posterior_mean=1.0, posterior_std=None, reason='"why", said who', dropped=rank == 3)
            s.add(item)
            s.flush()
            job = JobRecord(campaign_id=campaign.id, candidate_id=cand.id, batch_item_id=item.id, adapter="lab",
                            fidelity="f", idempotency_key=f"awkward-key-{rank}", status="succeeded")
            s.add(job)
            s.flush()
            for prop, value in [("overpotential", [0.5, float("inf"), 12345678901234567.0, -0.0][rank]),
                                ("band_gap", 2.0)]:
                s.add(MeasurementRecord(campaign_id=campaign.id, candidate_id=cand.id, job_id=job.id, property=prop,
                                        value=value, std=0.1 if rank else None, units=None if rank else "eV",
                                        failed=rank == 1, error="line one\nline two" if rank == 1 else None,
                                        created_at=whole_second if rank % 2 else datetime.now(UTC)))
        # a unit separator inside a value (the fast path joins values with it): that row is read value by value
        s.add(JobRecord(campaign_id=campaign.id, candidate_id=cand.id, batch_item_id=item.id, adapter="odd\x1fadapter",
                        fidelity="f", idempotency_key="awkward-key-extra", status="queued"))
    with db.engine.begin() as conn:  # a candidate written before labels were stored: described as it is read
        conn.exec_driver_sql("UPDATE candidate SET label = NULL WHERE fingerprint = 'awkward-1'")
    if db.engine.dialect.name == "sqlite":  # a timestamp stored in another format than SQLAlchemy writes
        with db.engine.begin() as conn:
            conn.exec_driver_sql("UPDATE measurement SET created_at = '2026-01-02 03:04:06' "
                                 "WHERE id = (SELECT max(id) FROM measurement)")
    db.dispose()


def test_csv_is_the_typed_rows_written_by_csv_writer(migrated_db_url: str, cli) -> None:
    build_hand_made_campaign(migrated_db_url)
    _add_awkward_rows(migrated_db_url)
    for options in [(), ("--since", "3"), ("--property", "band_gap")]:
        db = Database(migrated_db_url)
        with db.reading() as session:
            prop = options[1] if options[:1] == ("--property",) else None
            since = int(options[1]) if options[:1] == ("--since",) else None
            typed = list(iter_history(session, "oer-demo", prop=prop, since_iteration=since))
        db.dispose()
        expected = io.StringIO()
        write_csv(expected, HISTORY_COLUMNS, typed)
        result = cli(migrated_db_url, "history", "oer-demo", "--format", "csv", *options)
        assert result.exit_code == 0, result.output
        assert result.stdout_bytes.decode() == expected.getvalue(), options  # .stdout would turn \r\n into \n
    assert "+00:00" in result.stdout and "2026-01-02 03:04:05+00:00" in result.stdout  # whole seconds stay short


def test_history_runs_without_the_other_commands_imports(migrated_db_url: str, cli) -> None:
    """``matloop history`` loads only its own module: not the spec's models, pandas, numpy, torch or Prefect.

    Nor Alembic: the database's revision check reads the head from the revision files
    (``agent.store.revision``).
    """
    build_hand_made_campaign(migrated_db_url)
    expected = cli(migrated_db_url, "history", "oer-demo", "--format", "csv").stdout_bytes.decode()
    script = ("import sys\nsys.argv = ['matloop', 'history', 'oer-demo', '--format', 'csv']\n"
              "from cli import main\ntry:\n    main()\nexcept SystemExit as exc:\n    assert not exc.code, exc\n"
              "heavy = sorted({m.split('.')[0] for m in sys.modules} & {'pandas', 'torch', 'botorch', "
              "'prefect', 'numpy', 'alembic'} | {m for m in sys.modules if m.startswith('agent.spec')})\n"
              "print('heavy:', heavy, file=sys.stderr)\n")
    env = {**os.environ, "MATLOOP_DATABASE_URL": migrated_db_url, "PYTHONPATH": str(REPO)}
    done = subprocess.run([sys.executable, "-c", script], env=env, cwd=REPO, capture_output=True, text=True,
                          timeout=120)
    assert done.returncode == 0, done.stderr
    assert done.stdout == expected
    assert "heavy: []" in done.stderr, done.stderr


def test_a_driver_error_while_streaming_is_sqlalchemys(migrated_db_url: str) -> None:
    """Rows read straight from the driver (in a thread): its errors still come as SQLAlchemy's (which
    ``Database.reading`` turns into one sentence), not as the driver's own."""
    db = Database(migrated_db_url)
    with Session(db.engine) as session, pytest.raises(DBAPIError, match="no_such_table") as raised:
        list(_raw_chunks(session.connection(), select(column("x")).select_from(table("no_such_table"))))
    assert isinstance(raised.value.orig, db.engine.dialect.loaded_dbapi.Error)
    db.dispose()
