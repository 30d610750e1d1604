"""The CLI never shows a traceback for what a user can get wrong, and read commands never create a database."""

from __future__ import annotations

import io
import json
import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest

from agent.loop.gate import apply_decision
from agent.policy.approval import Decision
from agent.store import Database
from agent.store.events import record_event
from agent.store.models import BatchItemRecord, BatchRecord, CampaignRecord, CandidateRecord, IterationRecord
from cli.campaign_files import template_text
from tests.cli.conftest import POINTS, build_hand_made_campaign
from tests.conftest import REPO

BAD_URLS = {
    "notaurl": "'notaurl' is not a database URL matloop can use",
    "mysql://root@localhost/matloop": "(mysql is not supported)",
    "postgresql+psycopg2://u:secret@localhost/db": "(postgresql+psycopg2 is not supported)",
    "oracle://u@h/x": "(oracle is not supported)",
}
DATABASE_COMMANDS = [("campaigns",), ("show", "x"), ("history", "x"), ("db", "current"), ("db", "upgrade"),
                     ("db", "downgrade", "base"), ("approve", "x", "--by", "me")]


def _one_sentence(result, *needles: str) -> None:
    assert result.exit_code != 0
    assert "Traceback" not in result.output
    text = " ".join(result.output.split())  # rich may wrap a long sentence across lines
    for needle in needles:
        assert needle in text, result.output


@pytest.mark.parametrize("url", list(BAD_URLS))
def test_a_url_matloop_cannot_use_is_one_sentence_for_every_command(url: str, cli) -> None:
    for args in DATABASE_COMMANDS:
        result = cli(url, *args)
        _one_sentence(result, BAD_URLS[url], "give sqlite:///", "postgresql://user@host/db")
        assert result.exit_code == 1
        assert "secret" not in result.output  # a password in the URL is never printed


def test_the_console_script_refuses_a_bad_url_for_run_too(tmp_path: Path) -> None:
    """``matloop run`` opens the database before any command-level handler: the entry point's net catches it."""
    campaign = tmp_path / "oer.yaml"
    campaign.write_text(template_text("oer"))
    env = {"MATLOOP_DATA_DIR": str(tmp_path), "PATH": str(Path(sys.executable).parent), "PYTHONPATH": str(REPO),
           "MATLOOP_DATABASE_URL": "mysql://root@localhost/matloop", "PREFECT_HOME": str(tmp_path / "prefect")}
    out = subprocess.run([sys.executable, "-c", "from cli import main; main()", "run", str(campaign)], env=env,
                         capture_output=True, text=True, timeout=300)
    assert out.returncode == 1, out.stdout + out.stderr
    assert "Traceback" not in out.stderr + out.stdout
    assert "is not a database URL matloop can use" in " ".join(out.stderr.split())


@pytest.mark.parametrize("args", [("--since", "99999999999999999999"), ("--since", "-1"), ("--limit", "0"),
                                  ("--limit", "99999999999999999999"), ("--limit", "5", "--all")])
def test_out_of_range_numbers_are_refused_before_any_query(migrated_db_url: str, cli, args) -> None:
    build_hand_made_campaign(migrated_db_url)
    result = cli(migrated_db_url, "history", "oer-demo", *args)
    assert result.exit_code in (1, 2) and "Traceback" not in result.output
    assert "--since" in result.output or "--limit" in result.output


@pytest.mark.parametrize("args", [("campaigns",), ("show", "oer-demo"), ("history", "oer-demo"), ("db", "current"),
                                  ("db", "downgrade", "base"), ("approve", "oer-demo", "--by", "me")])
def test_commands_on_a_missing_sqlite_file_create_nothing(tmp_path: Path, cli, args) -> None:
    path = tmp_path / "not" / "there" / "matloop.sqlite"
    result = cli(f"sqlite:///{path}", *args)
    _one_sentence(result, f"there is no database yet at {path}", "`matloop db upgrade` creates it")
    assert result.exit_code == 1
    assert not (tmp_path / "not").exists()


def test_db_upgrade_still_creates_the_file_and_its_folders(tmp_path: Path, cli) -> None:
    path = tmp_path / "new" / "folder" / "matloop.sqlite"
    assert cli(f"sqlite:///{path}", "db", "upgrade").exit_code == 0
    assert path.is_file()
    assert cli(f"sqlite:///{path}", "campaigns").exit_code == 0


def test_a_folder_that_cannot_be_made_is_one_sentence(tmp_path: Path, cli) -> None:
    blocker = tmp_path / "a-file"
    blocker.write_text("not a folder")
    result = cli(f"sqlite:///{blocker}/sub/matloop.sqlite", "db", "upgrade")
    _one_sentence(result, f"cannot create the folder {blocker}/sub for the database")


def _add_decided_batches(url: str) -> None:
    """Iteration 3: an edited batch (one of two dropped, then dispatched); iteration 4: a rejected batch."""
    db = Database(url)
    batch_ids = []
    with db.transaction() as s:
        campaign = s.query(CampaignRecord).filter_by(name="oer-demo").one()
        candidates = s.query(CandidateRecord).filter_by(campaign_id=campaign.id).order_by(CandidateRecord.id).all()
        for number in (3, 4):
            it = IterationRecord(campaign_id=campaign.id, number=number, step="selected")
            s.add(it)
            s.flush()
            batch = BatchRecord(campaign_id=campaign.id, iteration_id=it.id, status="proposed")
            s.add(batch)
            s.flush()
            for rank, cand in enumerate(candidates[1:3]):
                s.add(BatchItemRecord(batch_id=batch.id, candidate_id=cand.id, rank=rank, reason="exploit"))
            batch_ids.append((batch.id, candidates[1].id))
    (edited, dropped_id), (rejected, _) = batch_ids
    assert apply_decision(db, edited, Decision(approver="bob", drop=[dropped_id], note="not that one")) == "edited"
    assert apply_decision(db, rejected, Decision(approve=False, approver="carol", note="too similar")) == "rejected"
    with db.transaction() as s:
        s.get(BatchRecord, edited).status = "dispatched"  # the decision must survive the batch moving on
    db.dispose()
    assert len(POINTS) == 3


def test_history_shows_decision_note_and_dropped_in_every_format(migrated_db_url: str, cli) -> None:
    build_hand_made_campaign(migrated_db_url)
    _add_decided_batches(migrated_db_url)

    csv = cli(migrated_db_url, "history", "oer-demo", "--format", "csv")
    assert csv.exit_code == 0, csv.output
    frame = pd.read_csv(io.StringIO(csv.stdout))
    assert len(frame) == 8
    third = frame[frame["iteration"] == 3]
    assert list(third["decision"]) == ["edited", "edited"] and set(third["batch_status"]) == {"dispatched"}
    assert list(third["dropped"]) == [True, False] and set(third["note"]) == {"not that one"}
    fourth = frame[frame["iteration"] == 4]
    assert set(fourth["decision"]) == {"rejected"} and set(fourth["approver"]) == {"carol"}
    assert set(frame[frame["iteration"] == 1]["decision"]) == {"approved"}
    assert set(frame[frame["iteration"] == 2]["decision"]) == {"proposed"}

    records = json.loads(cli(migrated_db_url, "history", "oer-demo", "--format", "json", "--since", "3").stdout)
    assert [(r["iteration"], r["decision"], r["dropped"], r["note"]) for r in records] == [
        (3, "edited", True, "not that one"), (3, "edited", False, "not that one"),
        (4, "rejected", False, "too similar"), (4, "rejected", False, "too similar")]

    table = cli(migrated_db_url, "history", "oer-demo", "--since", "3")
    assert table.exit_code == 0
    for text in ("dropped", "edited", "rejected", "not that one", "too similar", "bob", "carol"):
        assert text in table.stdout, text


def test_history_table_shows_the_newest_rows_and_says_how_many_there_are(migrated_db_url: str, cli) -> None:
    build_hand_made_campaign(migrated_db_url)
    _add_decided_batches(migrated_db_url)
    result = cli(migrated_db_url, "history", "oer-demo", "--limit", "3")
    assert result.exit_code == 0
    assert "(8 rows)" in result.stdout and "showing the newest 3 of 8 rows" in result.stdout
    assert "carol" in result.stdout and "alice" not in result.stdout  # the newest: iteration 4, not 1
    everything = cli(migrated_db_url, "history", "oer-demo", "--all")
    assert "alice" in everything.stdout and "showing the newest" not in everything.stdout

    newest = json.loads(cli(migrated_db_url, "history", "oer-demo", "-f", "json", "--limit", "2").stdout)
    assert [r["iteration"] for r in newest] == [4, 4]


def test_streamed_csv_matches_the_notebook_frame(migrated_db_url: str, cli) -> None:
    """``campaign_history`` (the README's notebook API) and the streamed CSV carry the same rows and columns."""
    from agent.store.history import campaign_history

    build_hand_made_campaign(migrated_db_url)
    _add_decided_batches(migrated_db_url)
    db = Database(migrated_db_url)
    with db.reading() as session:
        frame = campaign_history(session, "oer-demo")
    db.dispose()
    streamed = pd.read_csv(io.StringIO(cli(migrated_db_url, "history", "oer-demo", "-f", "csv").stdout))
    assert list(streamed.columns) == list(frame.columns)
    for column in ("iteration", "candidate_id", "decision", "dropped", "property", "note", "approver"):
        assert streamed[column].fillna("").astype(str).tolist() == frame[column].fillna("").astype(str).tolist()


def test_show_reports_the_effective_approval_policy(migrated_db_url: str, cli) -> None:
    build_hand_made_campaign(migrated_db_url)
    assert "approval: auto" in cli(migrated_db_url, "show", "oer-demo").stdout

    db = Database(migrated_db_url)

    def log(kind: str, payload: dict) -> None:
        with db.transaction() as s:
            campaign = s.query(CampaignRecord).filter_by(name="oer-demo").one()
            record_event(s, kind, campaign_id=campaign.id, payload=payload)

    log("approval_override", {"policy": "manual", "spec_policy": "auto"})
    shown = " ".join(cli(migrated_db_url, "show", "oer-demo").stdout.split())
    assert "approval: manual (this run's override; the spec says auto)" in shown
    log("run_paused", {"reason": "max iterations"})
    shown = " ".join(cli(migrated_db_url, "show", "oer-demo").stdout.split())
    assert "approval: manual (the last run's override; the spec says auto)" in shown
    log("iteration_started", {})  # a later run, started without --approval
    assert "approval: auto" in cli(migrated_db_url, "show", "oer-demo").stdout
    db.dispose()


def test_the_fast_point_label_is_the_validated_one() -> None:
    """``describe_candidate`` skips validation for points; what it prints must not change because of that."""
    from agent.store.history import describe_candidate
    from matloop.types import Candidate

    for params in [{"ni_load": 0.123456, "fe_load": 1, "kind": "a", "flag": True}, {f"p{i}": i / 7 for i in range(20)}]:
        stored = Candidate.point(params).model_dump(mode="json")
        assert describe_candidate("point", stored) == Candidate.model_validate(stored).label(max_len=80)
    assert describe_candidate("point", {"params": "not a dict"}).startswith("point:")  # foreign data still shows


def test_newest_rows_of_one_property_look_past_items_measured_in_others(migrated_db_url: str, cli) -> None:
    """``--property`` hides the newest item (measured in another property only): the table still fills its rows."""
    from agent.store.models import JobRecord, MeasurementRecord

    build_hand_made_campaign(migrated_db_url)
    db = Database(migrated_db_url)
    with db.transaction() as s:
        campaign = s.query(CampaignRecord).filter_by(name="oer-demo").one()
        cand = s.query(CandidateRecord).filter_by(campaign_id=campaign.id).order_by(CandidateRecord.id).first()
        it = IterationRecord(campaign_id=campaign.id, number=3, step="dispatched")
        s.add(it)
        s.flush()
        batch = BatchRecord(campaign_id=campaign.id, iteration_id=it.id, status="dispatched", approver="dan")
        s.add(batch)
        s.flush()
        item = BatchItemRecord(batch_id=batch.id, candidate_id=cand.id, rank=0)
        s.add(item)
        s.flush()
        job = JobRecord(campaign_id=campaign.id, candidate_id=cand.id, batch_item_id=item.id, adapter="lab",
                        fidelity="f", idempotency_key="band-gap-job", status="succeeded")
        s.add(job)
        s.flush()
        s.add(MeasurementRecord(campaign_id=campaign.id, candidate_id=cand.id, job_id=job.id, property="band_gap",
                                value=1.2))
    db.dispose()
    result = cli(migrated_db_url, "history", "oer-demo", "--property", "overpotential", "--limit", "2", "-f", "json")
    rows = json.loads(result.stdout)
    assert [(r["iteration"], r["rank"]) for r in rows] == [(1, 2), (2, 0)]
    table = cli(migrated_db_url, "history", "oer-demo", "--property", "overpotential", "--limit", "2")
    assert "showing the newest 2 of 4 rows" in table.stdout and "dan" not in table.stdout


def test_markup_in_what_a_user_typed_prints_as_itself(migrated_db_url: str, tmp_path: Path, cli) -> None:
    """A campaign name or a campaign file's key such as ``[/]`` is text: rich would raise on it as markup."""
    shown = cli(migrated_db_url, "show", "[/]x[bold]")
    _one_sentence(shown, "[/]x[bold]")
    bad = tmp_path / "bad.yaml"
    bad.write_text(template_text("oer") + "\n'[/]': 1\n")
    ran = cli(migrated_db_url, "run", str(bad))
    assert ran.exit_code == 2 and "Traceback" not in ran.output
    assert "is not a valid campaign:" in ran.output and "[/]: unknown key" in ran.output, ran.output
