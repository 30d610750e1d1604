"""The head revision read without Alembic is Alembic's own, for the shipped migrations and for made-up chains."""

from __future__ import annotations

from pathlib import Path

import pytest

from agent.store.migrate import head_revision
from agent.store.revision import head_revision_fast


def test_the_shipped_head_is_alembics() -> None:
    assert head_revision_fast() == head_revision()


def _revision(folder: Path, own: str, down: str) -> None:
    (folder / f"{own}_step.py").write_text(
        f'"""step {own}"""\n\nrevision: str = "{own}"\ndown_revision: str | None = {down}\n'
        "branch_labels = None\n\n\ndef upgrade() -> None:\n    pass\n"
    )


def test_a_chain_gives_its_last_revision(tmp_path: Path) -> None:
    _revision(tmp_path, "0001", "None")
    _revision(tmp_path, "0003", "'0002'")
    _revision(tmp_path, "0002", '"0001"')
    (tmp_path / "__init__.py").write_text("")
    assert head_revision_fast(tmp_path) == "0003"
    _revision(tmp_path, "0004", "('0003', '0002')")  # a merge revision names several
    assert head_revision_fast(tmp_path) == "0004"


@pytest.mark.parametrize("down", ["'0001'", "REVISION"])
def test_what_the_files_cannot_settle_is_asked_of_alembic(tmp_path: Path, down: str) -> None:
    """Two heads, or a down revision that is not written plainly: Alembic answers (here: the shipped head)."""
    _revision(tmp_path, "0001", "None")
    _revision(tmp_path, "0002", "'0001'")
    _revision(tmp_path, "0003", down)
    assert head_revision_fast(tmp_path) == head_revision()
