"""``matloop campaigns/show/history`` on a hand-made campaign, on both backends, in all three formats."""

from __future__ import annotations

import io
import json

import pandas as pd

from tests.cli.conftest import build_hand_made_campaign


def test_history_in_three_formats(migrated_db_url: str, cli) -> None:
    build_hand_made_campaign(migrated_db_url)

    result = cli(migrated_db_url, "history", "oer-demo", "--format", "csv")
    assert result.exit_code == 0, result.output
    frame = pd.read_csv(io.StringIO(result.stdout))
    assert len(frame) == 4  # three measured items in iteration 1, one unmeasured in iteration 2
    first = frame[frame["iteration"] == 1]
    assert set(first["approver"]) == {"alice"}
    assert set(first["model_kind"]) == {"gp"}
    failed = first[first["failed"] == True]  # noqa: E712 - pandas column
    assert len(failed) == 1 and "precursor clogged" in failed["error"].iloc[0]
    assert sorted(first["value"].dropna().round(3)) == [0.35, 0.36]

    result = cli(migrated_db_url, "history", "oer-demo", "--format", "json", "--since", "2")
    assert result.exit_code == 0
    records = json.loads(result.stdout)
    assert [r["iteration"] for r in records] == [2]
    assert records[0]["batch_status"] == "proposed" and records[0]["job_status"] is None

    result = cli(migrated_db_url, "history", "oer-demo")
    assert result.exit_code == 0
    assert "alice" in result.stdout and "explore: high std" in result.stdout


def test_property_filter(migrated_db_url: str, cli) -> None:
    build_hand_made_campaign(migrated_db_url)
    result = cli(migrated_db_url, "history", "oer-demo", "--format", "json", "--property", "band_gap")
    records = json.loads(result.stdout)
    assert all(r["property"] is None for r in records)  # nothing measured band_gap; unmeasured items remain
    assert len(records) == 1


def test_campaigns_and_show(migrated_db_url: str, cli) -> None:
    build_hand_made_campaign(migrated_db_url)
    result = cli(migrated_db_url, "campaigns", "--format", "json")
    assert result.exit_code == 0
    [row] = json.loads(result.stdout)
    assert row["name"] == "oer-demo" and row["iterations"] == 2 and row["experiments"] == 3
    result = cli(migrated_db_url, "show", "oer-demo")
    assert result.exit_code == 0 and "overpotential: minimize" in result.stdout


def test_unknown_campaign_exits_non_zero_and_lists_known(migrated_db_url: str, cli) -> None:
    build_hand_made_campaign(migrated_db_url)
    result = cli(migrated_db_url, "history", "nope")
    assert result.exit_code == 1
    assert "no campaign named 'nope'" in result.output and "oer-demo" in result.output


def test_narrow_terminal_keeps_the_main_columns_readable(migrated_db_url: str, cli, monkeypatch) -> None:
    """At 80 columns (a pipe, or a small terminal) the table keeps whole cells and says what it left out."""
    build_hand_made_campaign(migrated_db_url)
    monkeypatch.setenv("COLUMNS", "80")
    result = cli(migrated_db_url, "history", "oer-demo")
    assert result.exit_code == 0
    lines = result.stdout.splitlines()
    assert max(len(line) for line in lines if line.startswith(("┃", "│", "┏"))) <= 80
    header = next(line for line in lines if line.startswith("┃"))
    for label in ("iter", "rank", "candidate", "property", "value", "error"):
        assert label in header
    assert "precursor clogged" in result.stdout  # the failure's reason is never the column dropped
    assert "0.36" in result.stdout
    assert "left out" in result.stdout and "--format csv" in result.stdout

    listing = cli(migrated_db_url, "campaigns")
    assert listing.exit_code == 0 and "oer-demo" in listing.stdout
    assert max(len(line) for line in listing.stdout.splitlines() if line.startswith(("┃", "│", "┏"))) <= 80

    monkeypatch.setenv("COLUMNS", "300")
    wide = cli(migrated_db_url, "history", "oer-demo")
    assert "left out" not in wide.stdout and "explore: high std" in wide.stdout
    assert "alice" in wide.stdout and "acq" in wide.stdout


def test_run_refuses_an_existing_campaign_without_resume(migrated_db_url: str, cli, tmp_path) -> None:
    """Before any flow run starts: one plain sentence naming the fix, no Prefect traceback."""
    from cli.campaign_files import template_text

    build_hand_made_campaign(migrated_db_url)
    path = tmp_path / "oer.yaml"
    path.write_text(template_text("oer"))
    result = cli(migrated_db_url, "run", str(path))
    assert result.exit_code == 1
    assert "already exists" in result.output and f"matloop run {path} --resume" in result.output
    assert "Traceback" not in result.output


def test_columns_that_fit_keep_priority_and_table_order() -> None:
    """Columns are chosen by priority but shown in table order; an empty droppable column is not counted."""
    from cli.tables import TableLayout, columns_that_fit

    frame = pd.DataFrame({"a": ["x" * 10], "note": ["a long free text " * 4], "b": [1.5], "err": [None]})
    layout = TableLayout(order=["a", "note", "b", "err"], priority=["a", "b", "err", "note"],
                         folding={"note": 20}, always=("a",), drop_when_empty=("err",))
    assert columns_that_fit(frame, 200, layout) == ["a", "note", "b"]
    assert columns_that_fit(frame, 40, layout) == ["a", "note", "b"]  # the note folds to 20
    assert columns_that_fit(frame, 25, layout) == ["a", "b"]
    assert columns_that_fit(frame, 5, layout) == ["a"]  # always kept


def test_run_summary_names_structures_and_images_by_their_label(capsys) -> None:
    """A crystal's or image's best candidate is its formula or size, not a screenful of its data."""
    from cli.running import _print_summary
    from matloop.types import Candidate, CandidateKind

    structure = {"@class": "Structure", "formula": "BiPbNO2", "sites": [{"xyz": [0.0, 0.0, 0.0]}] * 5}
    crystal = Candidate(kind=CandidateKind.STRUCTURE, structure=structure, origin="substitution:perovskite")
    assert Candidate(kind=CandidateKind.STRUCTURE, structure=structure).label() == "BiPbNO2 (5 sites)"
    image = Candidate(kind=CandidateKind.IMAGE, image=[[0.0, 1.0]] * 64)
    for candidate, expected in [(crystal, "BiPbNO2 (perovskite)"), (image, "64×2 image, mean 0.500")]:
        result = {"campaign": "c", "status": "stopped", "objective": "y", "best": 1.0, "experiments": 3,
                  "failed": 0, "iterations": 1, "best_candidate": candidate.content, "best_kind": candidate.kind.value,
                  "best_label": candidate.label(120),
                  "recommended": {"content": None, "label": candidate.label(120), "mean": 1.0, "std": 0.1,
                                  "measured": 1.0, "iteration": 1}}
        _print_summary(result)
        out = capsys.readouterr().out
        assert f"best candidate: {expected}" in out and f"model of iteration 1): {expected}" in out
        assert "sites" not in out and "[[" not in out


def test_the_progress_display_says_once_per_wait_how_to_approve(migrated_db_url: str, capsys) -> None:
    """``matloop run`` keeps Prefect's log at WARNING, so the waiting batch is announced by the progress display."""
    from agent.spec import parse_campaign
    from agent.store import Database
    from agent.store.models import CampaignRecord
    from cli.campaign_files import template_text
    from cli.running import BudgetProgress

    build_hand_made_campaign(migrated_db_url)
    display = BudgetProgress(parse_campaign(template_text("oer")), migrated_db_url)

    def set_status(status: str) -> None:
        db = Database(migrated_db_url)
        with db.transaction() as session:
            session.query(CampaignRecord).filter_by(name="oer-demo").one().status = status
        db.dispose()

    def announcements() -> int:
        return capsys.readouterr().out.count("a batch waits for approval: `matloop approve oer-demo --by NAME`")

    set_status("waiting")
    display._update()
    display._update()
    assert announcements() == 1  # once per wait, not at every refresh
    set_status("running")
    display._update()
    set_status("waiting")
    display._update()
    assert announcements() == 1  # the next batch's wait is announced again
