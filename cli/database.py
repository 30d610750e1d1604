"""``matloop db ...``: migrating and inspecting the campaign database."""

from __future__ import annotations

import typer

from agent.store import migrate
from cli.common import console, open_database, plain_store_errors

db_app = typer.Typer(help="Set up and inspect the campaign database (MATLOOP_DATABASE_URL).", no_args_is_help=True)


@db_app.command()
def upgrade(revision: str = typer.Argument("head", help="target revision")) -> None:
    """Apply the migrations (creating the database if it is a new SQLite file)."""
    db = open_database(require_current=False, create=True)
    console.print(f"database: {db.display_url}")
    with plain_store_errors():
        before = db.current_revision()
        migrate.upgrade(db.url, revision)
        after = db.current_revision()
    console.print(f"[green]✓[/] at revision {after}" + ("" if before != after else " (already up to date)"))


@db_app.command()
def downgrade(revision: str = typer.Argument(..., help="target revision, or 'base' to remove every table")) -> None:
    """Revert migrations down to REVISION."""
    db = open_database(require_current=False)
    with plain_store_errors():
        migrate.downgrade(db.url, revision)
        console.print(f"database {db.display_url} now at revision {db.current_revision()}")


@db_app.command()
def current() -> None:
    """Show the database URL and the revision it is at (and whether that is current)."""
    db = open_database(require_current=False)
    with plain_store_errors():
        rev, head = db.current_revision(), migrate.head_revision()
    state = "up to date" if rev == head else f"needs `matloop db upgrade` (head is {head})"
    console.print(f"database: {db.display_url}\nrevision: {rev or 'none'} — {state}")


def register(app: typer.Typer) -> None:
    app.add_typer(db_app, name="db")
