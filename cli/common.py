"""What every CLI command shares: consoles, opening the database, and plain error exits."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator

import typer
from rich.console import Console
from rich.markup import escape

from agent.store import Database, StoreError

console = Console(soft_wrap=True)  # paths and URLs are never broken across lines
err_console = Console(stderr=True, soft_wrap=True)  # error lines stay whole for grep

EXIT_INVALID = 2  # the user's input (a campaign file) is invalid
EXIT_FAILURE = 1  # something the user can fix (database, unknown campaign)


def fail(message: str, code: int = EXIT_FAILURE) -> typer.Exit:
    """Print ``error: MESSAGE`` and return the exit to raise; the message is text, never markup.

    Messages carry what a user typed (a campaign name, a path, a URL): ``[/]`` in one must print as itself, not
    end a style (rich raises on an unmatched closing tag) or restyle the terminal.
    """
    err_console.print(f"[bold red]error:[/] {escape(message)}", highlight=False)
    return typer.Exit(code)


@contextlib.contextmanager
def plain_store_errors() -> Iterator[None]:
    """Show a :class:`StoreError` as one plain sentence and exit non-zero, never as a traceback."""
    try:
        yield
    except StoreError as exc:
        raise fail(str(exc)) from None


def open_database(*, require_current: bool = True, create: bool = False) -> Database:
    """The configured database, checked to be reachable and (by default) fully migrated.

    Only ``matloop db upgrade`` passes ``create=True``: every other command reads (or decides on) what is
    already there, so a missing SQLite file is reported with how to create it instead of being created empty.
    """
    with plain_store_errors():
        db = Database(create=create)
        if require_current:
            db.require_current()
        else:
            db.ping()
    return db
