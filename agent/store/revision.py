"""The migrations' head revision read from the revision files themselves, without importing Alembic.

Every command checks the database's revision before it reads (``Database.require_current``); asking Alembic
for the head imports Alembic and builds its script directory, ~0.15 s of ``matloop history``'s start-up. The
revision files declare ``revision`` and ``down_revision`` on lines of their own, so the head (the one revision
no other revises) is read from those lines; anything this simple reading cannot settle (a file it cannot
parse, branches, no revision at all) is answered by Alembic itself, so the answer is always Alembic's
(``tests/store/test_migrations.py`` holds the two together).
"""

from __future__ import annotations

import re
from pathlib import Path

_ASSIGNMENT = re.compile(r"^(revision|down_revision)\s*(?::[^=]*)?=\s*(.+?)\s*$", re.MULTILINE)
_QUOTED = re.compile(r"""['"]([^'"]+)['"]""")


def _declared(text: str) -> tuple[str, set[str]] | None:
    """A revision file's own id and those it revises, or None when its lines do not say them plainly."""
    found = dict(m.groups() for m in _ASSIGNMENT.finditer(text))
    own, down = found.get("revision"), found.get("down_revision")
    if own is None or down is None or not re.fullmatch(r"""['"][^'"]+['"]""", own):
        return None
    if down != "None" and not re.fullmatch(r"""[(\[]?\s*(['"][^'"]+['"]\s*,?\s*)+[)\]]?""", down):
        return None
    return own[1:-1], set(_QUOTED.findall(down))


def head_revision_fast(versions: Path | None = None) -> str:
    """The head revision of the migrations in ``versions`` (the shipped ones by default), as Alembic says it.

    What the files cannot settle is asked of Alembic, about the shipped migrations.
    """
    if versions is None:
        import migrations

        versions = Path(migrations.__file__).parent / "versions"
    revisions: dict[str, set[str]] = {}
    for path in versions.glob("*.py"):
        if path.name == "__init__.py":
            continue
        declared = _declared(path.read_text(encoding="utf-8"))
        if declared is None:
            return _alembic_head()
        revisions[declared[0]] = declared[1]
    revised = set().union(*revisions.values()) if revisions else set()
    heads = [r for r in revisions if r not in revised]
    if len(heads) != 1 or not revised <= set(revisions):
        return _alembic_head()
    return heads[0]


def _alembic_head() -> str:
    from agent.store.migrate import head_revision

    return head_revision()
