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
