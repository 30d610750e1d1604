"""Opening the campaign database, and turning driver errors into plain ones.

One :class:`Database` per process wraps an engine and a session factory.  Every
step of the loop writes inside :meth:`Database.transaction`, so a step either
commits whole or leaves no trace (DESIGN.md: "every write of a step happens in
one transaction").
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from sqlalchemy import create_engine, event, inspect, text
from sqlalchemy.engine import Engine, make_url
from sqlalchemy.exc import DBAPIError, OperationalError
from sqlalchemy.orm import Session, sessionmaker

from agent.store.errors import (
    DatabaseBusy,
    DatabaseMissing,
    DatabaseOutdated,
    DatabaseUnreachable,
    UnsupportedDatabase,
)
from matloop.settings import database_url_problem, get_settings


def redact(url: str) -> str:
    """The URL without its password, for messages."""
    try:
        return make_url(url).render_as_string(hide_password=True)
    except Exception:  # noqa: BLE001 - a malformed URL is shown as given
        return url


def _sqlite_pragmas(dbapi_connection, _record) -> None:  # type: ignore[no-untyped-def]
    cursor = dbapi_connection.cursor()
    cursor.execute("PRAGMA foreign_keys=ON")
    cursor.execute("PRAGMA journal_mode=WAL")  # readers (history, UI) never block the running campaign
    cursor.execute("PRAGMA busy_timeout=10000")
    cursor.close()


def _sqlite_scratch(dbapi_connection, _record) -> None:  # type: ignore[no-untyped-def]
    """A scratch database's commits hand their pages to the operating system without waiting for the disk.

    SQLite's ``synchronous=OFF`` keeps every committed transaction through a crash of the process (a SIGKILL
    included: the pages are the kernel's by then); only an operating-system crash or a power cut can lose or
    corrupt the file. That is no loss for a database that lives in a temporary folder and is removed when its
    user is done (the ask/tell API's default), and it takes the disk flush (milliseconds each, a dozen per
    ask) out of every commit.
    """
    cursor = dbapi_connection.cursor()
    cursor.execute("PRAGMA synchronous=OFF")
    cursor.close()


def sqlite_file(url: str) -> Path | None:
    """The file behind a SQLite URL (``None`` for other backends and in-memory databases)."""
    parsed = make_url(url)
    if parsed.get_backend_name() != "sqlite" or not parsed.database or parsed.database == ":memory:":
        return None
    if parsed.database.startswith("file:"):  # a SQLite URI (?uri=true): the store never writes these itself
        return None
    return Path(parsed.database).expanduser()


def make_engine(url: str, *, create: bool = True, scratch: bool = False, **engine_options: Any) -> Engine:
    """An engine for ``url``; SQLite files get their directory created (when ``create``) and safe pragmas.

    ``scratch=True`` marks a SQLite file that outlives no operating-system crash anyway (a temporary one):
    its commits skip the disk flush (see :func:`_sqlite_scratch`). Other backends ignore it.

    With ``create=False`` a missing SQLite file is refused before connecting: SQLite would otherwise create it
    (and its directories would have been made here), so a mistyped path for a read-only command such as
    ``matloop campaigns`` left an empty database behind and answered "no campaigns".
    """
    problem = database_url_problem(url)
    if problem:
        raise UnsupportedDatabase(problem)
    parsed = make_url(url)
    if parsed.get_backend_name() == "sqlite":
        path = sqlite_file(url)
        if path is not None and not create and not path.is_file():
            raise DatabaseMissing(
                f"there is no database yet at {path}; `matloop db upgrade` creates it "
                "(and `matloop run CAMPAIGN.yaml` does too), or point MATLOOP_DATABASE_URL at an existing one"
            )
        if path is not None and create:
            try:
                path.parent.mkdir(parents=True, exist_ok=True)
            except OSError as exc:
                raise DatabaseUnreachable(
                    f"cannot create the folder {path.parent} for the database: {exc.strerror or exc}. "
                    "Check MATLOOP_DATABASE_URL (or MATLOOP_DATA_DIR) and the folder's permissions."
                ) from None
        engine = create_engine(url, connect_args={"timeout": 10}, **engine_options)
        event.listen(engine, "connect", _sqlite_pragmas)
        if scratch:
            event.listen(engine, "connect", _sqlite_scratch)
        return engine
    if parsed.drivername == "postgresql":
        url = parsed.set(drivername="postgresql+psycopg").render_as_string(hide_password=False)
    return create_engine(url, pool_pre_ping=True, connect_args={"connect_timeout": 10}, **engine_options)


def explain(exc: BaseException, url: str) -> Exception:
    """Translate a driver error into a :class:`StoreError` a person can act on."""
    message = str(getattr(exc, "orig", exc)).strip().splitlines()[0] if str(exc) else type(exc).__name__
    lowered = message.lower()
    if "locked" in lowered or "could not obtain lock" in lowered or "deadlock" in lowered:
        return DatabaseBusy(
            f"the database {redact(url)} is busy: another matloop process is writing to it ({message}). "
            "Wait for it to finish, or stop it."
        )
    return DatabaseUnreachable(
        f"cannot reach the database {redact(url)}: {message}. "
        "Check MATLOOP_DATABASE_URL and that the server is running."
    )


class Database:
    """An engine plus a session factory, for one database URL."""

    def __init__(self, url: str | None = None, *, create: bool = True, scratch: bool = False) -> None:
        """``create=False`` is the read path: a missing SQLite file is :class:`DatabaseMissing`, never created.
        ``scratch=True``: a temporary SQLite file, removed by its user (see :func:`make_engine`)."""
        self.url = url or get_settings().resolved_database_url
        self.engine = make_engine(self.url, create=create, scratch=scratch)
        self._sessions = sessionmaker(self.engine, expire_on_commit=False)

    @property
    def display_url(self) -> str:
        return redact(self.url)

    def _translated(self, exc: BaseException) -> Exception | None:
        """The plain error for a driver error that means the server is gone or busy (None for other errors).

        An :class:`OperationalError` is always the server's state (down, restarting, locked); another
        :class:`DBAPIError` only when SQLAlchemy found the connection dead (``connection_invalidated``): a
        constraint violation stays what it is.
        """
        if isinstance(exc, OperationalError) or (isinstance(exc, DBAPIError) and exc.connection_invalidated):
            return explain(exc, self.url)
        return None

    @staticmethod
    def _end(session: Session, *, rollback: bool) -> None:
        """Roll back (when asked) and close ``session`` without ever raising a driver error.

        Ending a session talks to the server too (a ``ROLLBACK``, also when closing a read); if the server went
        away after the work was done, that raised ``consuming input failed`` past the caller's error handling,
        a raw driver error the outage retries do not know.  Nothing is lost by not rolling back on a dead
        connection (the server drops an unfinished transaction with it), so the session's connections are
        invalidated instead: the pool opens fresh ones once the server is back.
        """
        try:
            if rollback:
                session.rollback()
            session.close()
        except DBAPIError:
            session.invalidate()

    @contextlib.contextmanager
    def transaction(self) -> Iterator[Session]:
        """A session whose work commits together at the end, or not at all."""
        with self._session(commit=True) as session:
            yield session

    @contextlib.contextmanager
    def reading(self) -> Iterator[Session]:
        """A session for queries; nothing it does is committed."""
        with self._session(commit=False) as session:
            yield session

    @contextlib.contextmanager
    def _session(self, *, commit: bool) -> Iterator[Session]:
        """One session, committed at the end when ``commit``; a failure is rolled back and raised as its plain error.

        Once the block is done (and committed), ending the session can no longer lose or fail the work: a server
        gone since the last query does not undo what was read or written, so it is not an error here (the next
        read or write meets it).
        """
        session = self._sessions()
        try:
            yield session
            if commit:
                session.commit()
        except BaseException as exc:
            self._end(session, rollback=commit)
            plain = self._translated(exc)
            if plain is not None:
                raise plain from exc
            raise
        self._end(session, rollback=False)

    def ping(self) -> None:
        """Raise :class:`DatabaseUnreachable` unless a connection can be made."""
        try:
            with self.engine.connect() as conn:
                conn.execute(text("SELECT 1"))
        except (OperationalError, DBAPIError) as exc:
            raise explain(exc, self.url) from exc

    def current_revision(self) -> str | None:
        """The Alembic revision the database is at (None when never migrated)."""
        self.ping()
        try:
            with self.engine.connect() as conn:
                if not inspect(conn).has_table("alembic_version"):
                    return None
                return conn.execute(text("SELECT version_num FROM alembic_version")).scalar()
        except (OperationalError, DBAPIError) as exc:  # gone again since the ping
            raise explain(exc, self.url) from exc

    def require_current(self) -> None:
        """Refuse to work on a database that is not at this matloop's head revision."""
        from agent.store.revision import head_revision_fast  # Alembic's answer, without importing Alembic

        current, head = self.current_revision(), head_revision_fast()
        if current != head:
            state = "has never been set up" if current is None else f"is at revision {current}"
            raise DatabaseOutdated(
                f"the database {self.display_url} {state}, but this matloop needs revision {head}. "
                "Run `matloop db upgrade`."
            )

    def dispose(self) -> None:
        self.engine.dispose()
