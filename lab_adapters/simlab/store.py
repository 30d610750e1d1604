"""The lab's own state in one SQLite file: accepted experiments, their schedule and result, instrument slots.

Plain ``sqlite3`` (stdlib) because the lab is one process with one small schema and
must start anywhere with no set-up.  One connection guarded by a lock: requests
arrive on uvicorn's thread pool and the ticker thread, and serialising them makes
"accept once per idempotency key" and "evaluate once per experiment" trivially
true.  WAL journaling keeps every committed experiment across a kill -9.
"""

from __future__ import annotations

import json
import sqlite3
import threading
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

SCHEMA = """
CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS experiments (
    seq INTEGER PRIMARY KEY,
    id TEXT UNIQUE NOT NULL,
    idempotency_key TEXT UNIQUE NOT NULL,
    request_hash TEXT NOT NULL,
    request TEXT NOT NULL,
    scenario TEXT NOT NULL,
    status TEXT NOT NULL,
    submitted_at REAL NOT NULL,
    started_at REAL,
    finished_at REAL,
    schedule TEXT NOT NULL,
    planned_failure TEXT,
    result TEXT,
    error TEXT,
    executions INTEGER NOT NULL DEFAULT 0,
    updated_at REAL NOT NULL
);
CREATE INDEX IF NOT EXISTS experiments_open ON experiments (status, finished_at);
CREATE TABLE IF NOT EXISTS slots (
    instrument TEXT NOT NULL,
    slot INTEGER NOT NULL,
    free_at REAL NOT NULL,
    PRIMARY KEY (instrument, slot)
);
CREATE TABLE IF NOT EXISTS counters (name TEXT PRIMARY KEY, value INTEGER NOT NULL);
"""

OPEN_STATUSES = ("queued", "running")


@dataclass
class ExperimentRow:
    """One experiment as stored (times are Unix seconds; JSON columns decoded)."""

    seq: int
    id: str
    idempotency_key: str
    request_hash: str
    request: dict[str, Any]
    scenario: str
    status: str
    submitted_at: float
    started_at: float | None
    finished_at: float | None
    schedule: list[dict[str, Any]]
    planned_failure: dict[str, Any] | None
    result: dict[str, Any] | None
    error: str | None
    executions: int
    updated_at: float

    @classmethod
    def from_sql(cls, row: sqlite3.Row) -> ExperimentRow:
        data = dict(row)
        for column in ("request", "schedule", "planned_failure", "result"):
            if data[column] is not None:
                data[column] = json.loads(data[column])
        return cls(**data)


class LabStore:
    """Typed access to the lab's SQLite file (``":memory:"`` for a throw-away lab)."""

    def __init__(self, path: Path | str = ":memory:") -> None:
        self.path = str(path)
        if self.path != ":memory:":
            Path(self.path).parent.mkdir(parents=True, exist_ok=True)
        self._conn = sqlite3.connect(self.path, check_same_thread=False, isolation_level=None)
        self._conn.row_factory = sqlite3.Row
        self.lock = threading.RLock()
        with self.lock:
            if self.path != ":memory:":
                self._conn.execute("PRAGMA journal_mode=WAL")
                self._conn.execute("PRAGMA synchronous=FULL")
            self._conn.executescript(SCHEMA)

    def close(self) -> None:
        with self.lock:
            self._conn.close()

    @contextmanager
    def transaction(self) -> Iterator[sqlite3.Connection]:
        """One atomic write: everything inside commits together or not at all."""
        with self.lock:
            self._conn.execute("BEGIN IMMEDIATE")
            try:
                yield self._conn
            except BaseException:
                self._conn.execute("ROLLBACK")
                raise
            self._conn.execute("COMMIT")

    # -- meta and counters ---------------------------------------------------------------------

    def meta(self, key: str, default: str) -> str:
        """The stored value of ``key``, storing ``default`` the first time (so it survives restarts)."""
        with self.transaction() as conn:
            row = conn.execute("SELECT value FROM meta WHERE key = ?", (key,)).fetchone()
            if row is not None:
                return str(row["value"])
            conn.execute("INSERT INTO meta (key, value) VALUES (?, ?)", (key, default))
            return default

    def bump(self, conn: sqlite3.Connection, name: str, by: int = 1) -> None:
        conn.execute(
            "INSERT INTO counters (name, value) VALUES (?, ?) ON CONFLICT(name) DO UPDATE SET value = value + ?",
            (name, by, by),
        )

    def counters(self) -> dict[str, int]:
        with self.lock:
            return {r["name"]: int(r["value"]) for r in self._conn.execute("SELECT name, value FROM counters")}

    # -- instrument slots ----------------------------------------------------------------------

    def slot_free_times(self, conn: sqlite3.Connection, instrument: str, capacity: int) -> list[float]:
        """When each of the instrument's ``capacity`` slots is next free (0 for never used)."""
        rows = {
            r["slot"]: float(r["free_at"])
            for r in conn.execute("SELECT slot, free_at FROM slots WHERE instrument = ?", (instrument,))
        }
        return [rows.get(slot, 0.0) for slot in range(capacity)]

    def reserve_slot(self, conn: sqlite3.Connection, instrument: str, slot: int, free_at: float) -> None:
        conn.execute(
            "INSERT INTO slots (instrument, slot, free_at) VALUES (?, ?, ?) "
            "ON CONFLICT(instrument, slot) DO UPDATE SET free_at = excluded.free_at",
            (instrument, slot, free_at),
        )

    # -- experiments ---------------------------------------------------------------------------

    def next_seq(self, conn: sqlite3.Connection) -> int:
        return int(conn.execute("SELECT COALESCE(MAX(seq), 0) + 1 FROM experiments").fetchone()[0])

    def insert(self, conn: sqlite3.Connection, row: ExperimentRow) -> None:
        conn.execute(
            "INSERT INTO experiments (seq, id, idempotency_key, request_hash, request, scenario, status, "
            "submitted_at, started_at, finished_at, schedule, planned_failure, result, error, executions, updated_at) "
            "VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
            (
                row.seq,
                row.id,
                row.idempotency_key,
                row.request_hash,
                json.dumps(row.request),
                row.scenario,
                row.status,
                row.submitted_at,
                row.started_at,
                row.finished_at,
                json.dumps(row.schedule),
                json.dumps(row.planned_failure) if row.planned_failure is not None else None,
                json.dumps(row.result) if row.result is not None else None,
                row.error,
                row.executions,
                row.updated_at,
            ),
        )

    def by_key(self, conn: sqlite3.Connection, key: str) -> ExperimentRow | None:
        row = conn.execute("SELECT * FROM experiments WHERE idempotency_key = ?", (key,)).fetchone()
        return ExperimentRow.from_sql(row) if row else None

    def get(self, experiment_id: str) -> ExperimentRow | None:
        with self.lock:
            row = self._conn.execute("SELECT * FROM experiments WHERE id = ?", (experiment_id,)).fetchone()
        return ExperimentRow.from_sql(row) if row else None

    def due(self, now: float) -> list[ExperimentRow]:
        """Open experiments whose state must change by ``now`` (started or finished)."""
        with self.lock:
            rows = self._conn.execute(
                "SELECT * FROM experiments WHERE (status = 'queued' AND started_at <= ?) "
                "OR (status IN ('queued', 'running') AND finished_at <= ?) ORDER BY finished_at, seq",
                (now, now),
            ).fetchall()
        return [ExperimentRow.from_sql(r) for r in rows]

    def set_running(self, conn: sqlite3.Connection, experiment_id: str, now: float) -> None:
        conn.execute(
            "UPDATE experiments SET status = 'running', updated_at = ? WHERE id = ? AND status = 'queued'",
            (now, experiment_id),
        )

    def finish(
        self,
        conn: sqlite3.Connection,
        experiment_id: str,
        *,
        status: str,
        result: dict[str, Any] | None,
        error: str | None,
        now: float,
        executed: bool,
    ) -> bool:
        """Move an open experiment to a terminal status; False if it was no longer open (nothing changes)."""
        cursor = conn.execute(
            "UPDATE experiments SET status = ?, result = ?, error = ?, executions = executions + ?, updated_at = ?, "
            "finished_at = CASE WHEN ? THEN finished_at ELSE ? END "
            "WHERE id = ? AND status IN ('queued', 'running')",
            (
                status,
                json.dumps(result) if result is not None else None,
                error,
                1 if executed else 0,
                now,
                1 if executed else 0,
                now,
                experiment_id,
            ),
        )
        return cursor.rowcount == 1

    def page(
        self,
        *,
        status: str | None = None,
        since: float | None = None,
        ids: Sequence[str] | None = None,
        after_seq: int = 0,
        limit: int = 100,
    ) -> list[ExperimentRow]:
        """Up to ``limit`` experiments after ``after_seq``, in submission order."""
        rows, _ = self.bounded_page(status=status, since=since, ids=ids, after_seq=after_seq, limit=limit)
        return rows

    def bounded_page(
        self,
        *,
        status: str | None = None,
        since: float | None = None,
        ids: Sequence[str] | None = None,
        after_seq: int = 0,
        limit: int = 100,
        max_bytes: int | None = None,
    ) -> tuple[list[ExperimentRow], bool]:
        """Up to ``limit`` experiments after ``after_seq`` in submission order, and whether more follow.

        ``max_bytes`` also bounds the page by the stored size of the requests and results it
        carries (at least one row is always returned, so paging never stalls).  The sizes are
        read first, so a page of large experiments is never loaded whole only to be cut.
        """
        clauses, params = ["seq > ?"], [after_seq]
        if status is not None:
            clauses.append("status = ?")
            params.append(status)
        if since is not None:
            clauses.append("submitted_at >= ?")
            params.append(since)
        if ids is not None:
            clauses.append(f"id IN ({','.join('?' * len(ids))})")
            params.extend(ids)
        where = " AND ".join(clauses)
        with self.lock:
            sizes = self._conn.execute(
                "SELECT length(CAST(request AS BLOB)) + COALESCE(length(CAST(result AS BLOB)), 0) AS size "
                f"FROM experiments WHERE {where} ORDER BY seq LIMIT ?",
                (*params, limit + 1),
            ).fetchall()
            total, kept = 0, 0
            for row in sizes[:limit]:
                total += int(row["size"])
                if kept and max_bytes is not None and total > max_bytes:
                    break
                kept += 1
            rows = self._conn.execute(
                f"SELECT * FROM experiments WHERE {where} ORDER BY seq LIMIT ?", (*params, kept)
            ).fetchall()
        return [ExperimentRow.from_sql(r) for r in rows], kept < len(sizes)

    def summary(self) -> dict[str, Any]:
        with self.lock:
            by_status = {
                r["status"]: int(r["n"])
                for r in self._conn.execute("SELECT status, COUNT(*) AS n FROM experiments GROUP BY status")
            }
            agg = self._conn.execute(
                "SELECT COUNT(*) AS n, COALESCE(SUM(executions), 0) AS total, COALESCE(MAX(executions), 0) AS most "
                "FROM experiments"
            ).fetchone()
        return {
            "experiments": int(agg["n"]),
            "by_status": by_status,
            "executions_total": int(agg["total"]),
            "executions_max_per_experiment": int(agg["most"]),
        }

    def instrument_load(self, instrument: str, now: float) -> tuple[int, int]:
        """(steps running now, steps waiting to start) on ``instrument`` among open experiments."""
        busy = waiting = 0
        with self.lock:
            rows = self._conn.execute("SELECT schedule FROM experiments WHERE status IN ('queued', 'running')")
            for r in rows:
                for step in json.loads(r["schedule"]):
                    if step["instrument"] != instrument:
                        continue
                    if step["start"] <= now < step["end"]:
                        busy += 1
                    elif step["start"] > now:
                        waiting += 1
        return busy, waiting
