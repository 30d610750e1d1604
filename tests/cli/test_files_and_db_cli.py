"""``matloop init``, ``validate`` and ``db``: exit codes and messages a user relies on."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

from agent.store.migrate import head_revision


def test_init_then_validate(tmp_path: Path, cli) -> None:
    path = tmp_path / "c.yaml"
    result = cli(None, "init", str(path), "--template", "oer")
    assert result.exit_code == 0 and path.exists()
    assert "# matloop campaign" in path.read_text()  # the template keeps its comments
    result = cli(None, "validate", str(path))
    assert result.exit_code == 0
    assert "valid campaign" in result.stdout and "overpotential" in result.stdout
    assert cli(None, "init", str(path)).exit_code == 1  # never overwrites without --force


def test_init_unknown_template(tmp_path: Path, cli) -> None:
    result = cli(None, "init", str(tmp_path / "c.yaml"), "--template", "nope")
    assert result.exit_code == 1 and "oer" in result.output


def test_validate_exit_2_with_field_and_line(tmp_path: Path, cli) -> None:
    path = tmp_path / "bad.yaml"
    from cli.campaign_files import template_text

    path.write_text(template_text("oer").replace("batch_size: 8", "batch_size: 8\nbach_size: 3"))
    result = cli(None, "validate", str(path))
    assert result.exit_code == 2
    assert "bach_size" in result.output and "unknown key" in result.output and "line " in result.output


def test_db_upgrade_prints_where_and_is_idempotent(sqlite_url: str, cli) -> None:
    result = cli(sqlite_url, "db", "upgrade")
    assert result.exit_code == 0, result.output
    assert "matloop.sqlite" in result.stdout and head_revision() in result.stdout
    assert "already up to date" in cli(sqlite_url, "db", "upgrade").stdout
    assert "up to date" in cli(sqlite_url, "db", "current").stdout


def test_commands_refuse_an_unmigrated_database(sqlite_url: str, cli) -> None:
    result = cli(sqlite_url, "campaigns")
    assert result.exit_code == 1 and "matloop db upgrade" in result.output


def test_unreachable_database_is_one_plain_line(cli) -> None:
    result = cli("postgresql://u:pw@127.0.0.1:1/x", "campaigns")
    assert result.exit_code == 1
    assert "cannot reach the database" in result.output and "Traceback" not in result.output


def test_default_database_is_sqlite_in_the_data_dir(tmp_path: Path) -> None:
    """The console script, as a user runs it: no configuration, a SQLite file in the data dir."""
    env = {"MATLOOP_DATA_DIR": str(tmp_path), "PATH": str(Path(sys.executable).parent)}
    out = subprocess.run([str(Path(sys.executable).parent / "matloop"), "db", "upgrade"], env=env,
                         capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    assert str(tmp_path / "matloop.sqlite") in out.stdout.replace("\n", "")
