"""A campaign's history as the CSV lines ``matloop history --format csv`` prints: 10^5 rows in under two seconds.

:func:`agent.store.history.iter_history` gives typed values (the notebook frame's); writing those with
``csv.writer`` costs several microseconds of Python per row (a ``datetime`` parsed from stored text only to be
printed again, 29 values examined character by character). Here the database renders the text of each row
itself: integers, booleans, missing values, a timestamp as ``str()`` of the typed UTC value, and the text
columns joined into three pieces. Python adds only what SQL spells differently from Python: the floats
(Python's shortest round-trip ``repr``, exactly what the typed rows print; SQLite would say '1' for 1.0 and
lose -0.0's sign). The candidate's label is stored with it (``agent/store/labels.py``) and quoted here by the
database; only a candidate written without one is described in Python (once). Rows are read
straight from the driver's cursor (SQLAlchemy's result rows cost a quarter of the time with 10^5 rows); on
PostgreSQL a thread reads ahead, so that the server's work overlaps Python's.

The text values of a piece come joined by a unit separator (U+001F), so that Python can tell with a few
string scans whether any value needs quotes (a comma, a quote, a line break); only such rows are quoted value
by value, and a row whose text holds a unit separator itself (or a timestamp SQLite stores in another format)
is read again, value by value. The lines are what ``csv.writer`` writes for the typed rows, byte for byte,
except that a value holding a lone carriage return is quoted (``csv.writer`` leaves it bare, and Python's own
csv reader then refuses the line); ``tests/cli/test_history_csv_text.py`` holds the two together on SQLite and
PostgreSQL.
"""

from __future__ import annotations

import queue
import threading
from collections.abc import Iterator
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import String, and_, case, cast, func, literal, or_, select, type_coerce
from sqlalchemy.engine import Connection, Dialect
from sqlalchemy.exc import DBAPIError
from sqlalchemy.orm import Session

from agent.store.history import (
    _ORDER,
    STREAM_CHUNK,
    HistoryQuery,
    _campaign_id,
    _decision,
    _decoded,
    _edited_batches,
    _fidelity,
    _history_select,
    describe_candidate,
)
from agent.store.models import (
    BatchItemRecord,
    BatchRecord,
    CandidateRecord,
    IterationRecord,
    JobRecord,
    MeasurementRecord,
    UTCDateTime,
)

#: Joins the text values of a row's piece (SQL) until Python has seen that none of them needs quotes.
UNIT = "\x1f"
#: Text values in a row's three pieces: origin (1); reason … property (9); units, failed, error, measured_at (4).
_VALUES_PER_PIECE = [1, 9, 4]
#: Separators in a row's pieces together: one fewer than the values of each piece.
_UNITS_PER_ROW = sum(_VALUES_PER_PIECE) - len(_VALUES_PER_PIECE)


def _whole(column: Any) -> Any:
    """An integer as its decimal digits ('' when missing)."""
    return func.coalesce(cast(column, String), "")


def _word(column: Any) -> Any:
    """Text as stored ('' when missing, as ``csv.writer`` writes None)."""
    return func.coalesce(column, "")


def _cat(*parts: Any) -> Any:
    """SQL: the parts joined with ``||`` (every part non-NULL text, or the whole is NULL)."""
    joined = type_coerce(parts[0], String)
    for part in parts[1:]:
        joined = joined.op("||")(type_coerce(part, String))
    return type_coerce(joined, String)


def _units(values: list[Any]) -> Any:
    """SQL: text values joined by :data:`UNIT`."""
    return _cat(*[part for value in values for part in (literal(UNIT), value)][1:])


def _timestamp_text(column: Any, dialect: Dialect) -> Any:
    """A UTC timestamp as ``str()`` of the typed value ('' when missing); NULL where SQL cannot tell it.

    SQLite stores 'YYYY-MM-DD HH:MM:SS.ffffff' (SQLAlchemy's format): the database adds the zone and drops
    zero microseconds, as ``datetime.__str__`` does; any other stored text is NULL here, and the row is read
    again through the typed column. PostgreSQL formats its own value in UTC.
    """
    if dialect.name == "sqlite":
        text = type_coerce(column, String)
        canonical = and_(func.length(text) == 26, func.substr(text, 11, 1) == " ", func.substr(text, 20, 1) == ".")
        return case((column.is_(None), ""),
                    (canonical, _cat(case((func.substr(text, 20) == ".000000", func.substr(text, 1, 19)),
                                          else_=text), literal("+00:00"))))
    if dialect.name == "postgresql":
        utc = func.timezone("UTC", column)
        whole = func.to_char(utc, "YYYY-MM-DD HH24:MI:SS")
        return func.coalesce(_cat(case((func.to_char(utc, "US") == "000000", whole),
                                       else_=func.to_char(utc, "YYYY-MM-DD HH24:MI:SS.US")), literal("+00:00")), "")
    return case((column.is_(None), ""))


def _quoted(column: Any, dialect: Dialect) -> Any:
    """SQL: a text column as one CSV field (see :func:`quote_field`); NULL stays NULL.

    The stored label is quoted by the database (a point's label always holds a comma), so that Python passes
    it on untouched.
    """
    find = func.strpos if dialect.name == "postgresql" else func.instr
    needs_quotes = or_(*[find(column, mark) > 0 for mark in ('"', ",", "\n", "\r")])
    return case((needs_quotes, _cat(literal('"'), func.replace(column, '"', '""'), literal('"'))), else_=column)


def _float(column: Any, dialect: Dialect) -> Any:
    """A float column: on SQLite the number or '' when missing (its values take any type), ready for ``str()``.

    PostgreSQL's typed columns cannot mix number and text: there Python writes '' for None itself.
    """
    return type_coerce(func.coalesce(column, ""), String) if dialect.name == "sqlite" else column


def _text_values(dialect: Dialect, model: Any) -> list[list[Any]]:
    """The text values of a row's three pieces: before the floats, between them, after them."""
    failed = MeasurementRecord.failed
    return [
        [_word(CandidateRecord.origin)],
        [_word(BatchItemRecord.reason),
         case((BatchItemRecord.dropped, "True"), else_="False"),  # the typed row says bool(dropped)
         _whole(model.id), _word(model.kind), _word(JobRecord.status), _word(JobRecord.adapter),
         _word(_fidelity()), _word(JobRecord.idempotency_key), _word(MeasurementRecord.property)],
        [_word(MeasurementRecord.units),
         case((failed.is_(None), ""), (failed, "True"), else_="False"),  # no measurement: empty
         _word(MeasurementRecord.error),
         _timestamp_text(MeasurementRecord.created_at, dialect)],
    ]


def _item_columns(dialect: Dialect, model: Any) -> list[Any]:
    """One row's columns: ids, the candidate, and the database's text around the floats (see the module)."""
    first, middle, last = _text_values(dialect, model)
    return [
        BatchItemRecord.id,
        MeasurementRecord.id,
        BatchRecord.id,
        CandidateRecord.id,
        _cat(_whole(BatchItemRecord.rank), literal(","), cast(CandidateRecord.id, String)),
        _quoted(CandidateRecord.label, dialect),  # NULL for a row written without its label: made here
        _units(first),
        _float(BatchItemRecord.acquisition_value, dialect),
        _float(BatchItemRecord.posterior_mean, dialect),
        _float(BatchItemRecord.posterior_std, dialect),
        _units(middle),
        _float(MeasurementRecord.value, dialect),
        _float(MeasurementRecord.std, dialect),
        _units(last),
    ]


def quote_field(text: str) -> str:
    """One CSV field: in quotes (its quotes doubled) when it holds a comma, a quote or a line break."""
    if '"' in text or "," in text or "\n" in text or "\r" in text:
        return '"' + text.replace('"', '""') + '"'
    return text


class _UtcText:
    """A timestamp column's text (see :class:`_Batches`) as ``str()`` of the typed UTC value.

    The canonical 'YYYY-MM-DD HH:MM:SS.ffffff' needs only its zone (and no zero microseconds: Python's
    ``datetime.__str__`` leaves them out); anything else goes through the column type's own reading, so the
    text is always what the typed row would have printed.
    """

    def __init__(self, dialect: Dialect) -> None:
        self._read = UTCDateTime().result_processor(dialect, None) if dialect.name == "sqlite" else None

    def __call__(self, value: Any) -> str:
        if value is None:
            return ""
        if type(value) is str and len(value) == 26 and value[10] == " " and value[19] == ".":
            return (value[:19] if value.endswith(".000000") else value) + "+00:00"
        if isinstance(value, str):
            value = self._read(value) if self._read else datetime.fromisoformat(value).replace(tzinfo=UTC)
        return str(value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC))


def _batch_timestamp(column: Any, dialect: Dialect) -> Any:
    """A batch's timestamp as text for :class:`_UtcText` (SQLite's stored text, PostgreSQL's UTC digits)."""
    if dialect.name == "sqlite":
        return type_coerce(column, String)
    if dialect.name == "postgresql":
        return func.to_char(func.timezone("UTC", column), "YYYY-MM-DD HH24:MI:SS.US")
    return column


class _Batches(dict[int, str]):
    """Batch id -> the CSV fields before the item's, with a comma after them: one query for the campaign's batches.

    A batch the first query did not see (written while the rows stream) is asked for on its own.
    """

    def __init__(self, connection: Connection, campaign_id: int, since: int | None, edited: set[int]) -> None:
        super().__init__()
        self.connection, self.campaign_id, self.edited = connection, campaign_id, edited
        self.stamp = _UtcText(connection.dialect)
        self._load(since=since)

    def _load(self, *, since: int | None = None, batch_id: int | None = None) -> None:
        query = (
            select(BatchRecord.id, _whole(IterationRecord.number), _word(BatchRecord.status),
                   _word(BatchRecord.approver), _word(BatchRecord.note),
                   _batch_timestamp(BatchRecord.decided_at, self.connection.dialect))
            .join(IterationRecord, IterationRecord.id == BatchRecord.iteration_id)
            .where(BatchRecord.campaign_id == self.campaign_id)
        )
        if since is not None:
            query = query.where(IterationRecord.number >= since)
        if batch_id is not None:
            query = query.where(BatchRecord.id == batch_id)
        for batch_id_, number, status, approver, note, decided in self.connection.execute(query):
            decision = _decision(status, batch_id_, self.edited)
            values = (number, str(batch_id_), status, decision, approver, note, self.stamp(decided))
            self[batch_id_] = ",".join(map(quote_field, values)) + ","

    def __missing__(self, batch_id: int) -> str:
        self._load(batch_id=batch_id)
        return self[batch_id]


class _CsvLines:
    """Raw item rows -> CSV lines in ``HISTORY_COLUMNS`` order: the database's text, the label and floats between."""

    def __init__(self, connection: Connection, campaign_id: int, batches: _Batches) -> None:
        self.connection, self.campaign_id, self.batches = connection, campaign_id, batches
        self._unlabelled: dict[int, str] = {}

    def _label_of(self, cid: int) -> str:
        """The CSV field of a candidate written without its label (read and described here, once)."""
        if cid not in self._unlabelled:
            kind, rep = self.connection.execute(
                select(CandidateRecord.kind, type_coerce(CandidateRecord.representation, String))
                .where(CandidateRecord.id == cid)
            ).one()
            self._unlabelled[cid] = quote_field(describe_candidate(kind, _decoded(rep)))
        return self._unlabelled[cid]

    def _pieces(self, item_id: int, measurement_id: int | None, first: Any, middle: Any,
                last: Any) -> tuple[str, str, str]:
        """The three pieces with their values quoted where needed (the rare rows :meth:`line` cannot take whole)."""
        pieces = [first, middle, last]
        values = [piece.split(UNIT) if isinstance(piece, str) else [] for piece in pieces]
        if [len(v) for v in values] != _VALUES_PER_PIECE:  # a unit separator in a value, or a timestamp SQL could not read
            values = self._values_again(item_id, measurement_id)
        return ",".join(map(quote_field, values[0])), ",".join(map(quote_field, values[1])), \
            ",".join(map(quote_field, values[2]))

    def _values_again(self, item_id: int, measurement_id: int | None) -> list[list[str]]:
        """One row's text values read one by one (the timestamp through its typed column)."""
        def values(model: Any) -> list[Any]:
            first, middle, last = _text_values(self.connection.dialect, model)
            return [*first, *middle, *last[:3], MeasurementRecord.created_at]

        query = _history_select(self.campaign_id, HistoryQuery(), values).where(
            BatchItemRecord.id == item_id,
            MeasurementRecord.id.is_(None) if measurement_id is None else MeasurementRecord.id == measurement_id,
        )
        row = list(self.connection.execute(query).one())
        row[-1] = "" if row[-1] is None else str(row[-1])
        return [row[:1], row[1:10], row[10:]]

    def line(self, r: Any) -> str:
        """A row whose floats come as numbers or '' (SQLite, :func:`_float`) as its CSV line."""
        item_id, measurement_id, batch_id, cid, head, label, first, acq, mean, std, middle, value, mstd, last = r
        if label is None:
            label = self._label_of(cid)
        try:
            text = first + middle + last
        except TypeError:  # a timestamp SQL could not read
            text = ","
        if '"' in text or "," in text or "\n" in text or "\r" in text or text.count(UNIT) != _UNITS_PER_ROW:
            first, middle, last = self._pieces(item_id, measurement_id, first, middle, last)
        else:
            middle, last = middle.replace(UNIT, ","), last.replace(UNIT, ",")
        return (f"{self.batches[batch_id]}{head},{label},{first},{acq},{mean},{std},{middle},{value},{mstd},"
                f"{last}\n")

    def typed_line(self, r: Any) -> str:
        """A row whose floats come as floats or None (PostgreSQL) as its CSV line."""
        r = list(r)
        for i in (7, 8, 9, 11, 12):
            if r[i] is None:
                r[i] = ""
        return self.line(r)


def iter_history_csv_lines(
    session: Session, name: str, *, prop: str | None = None, since_iteration: int | None = None
) -> Iterator[str]:
    """:func:`~agent.store.history.iter_history`'s rows as CSV lines (no header; each ends with a newline).

    Streamed from the driver's cursor (server-side on PostgreSQL) in chunks of
    :data:`~agent.store.history.STREAM_CHUNK`; the session must stay open while the iterator is consumed.
    """
    campaign_id = _campaign_id(session, name)
    connection = session.connection()
    dialect = connection.dialect
    if dialect.name == "postgresql":
        # For this transaction only: walk the campaign's iterations in order along the indexes (nested loops,
        # sorting only each iteration's rows), so the first rows come at once and the server finds the rest
        # while this process formats them. Left to itself the planner hashes whole tables and sorts every row
        # first: as much server time in all, but all of it before the first row, with the client idle.
        for setting in ("enable_hashjoin", "enable_mergejoin", "enable_sort"):
            connection.exec_driver_sql(f"SET LOCAL {setting} = off")
        connection.exec_driver_sql("SET LOCAL work_mem = '64MB'")  # any sort left stays in memory
    batches = _Batches(connection, campaign_id, since_iteration, _edited_batches(session, campaign_id))
    lines = _CsvLines(connection, campaign_id, batches)
    to_line = lines.line if dialect.name == "sqlite" else lines.typed_line
    query = _history_select(
        campaign_id, HistoryQuery(prop, since_iteration), lambda model: _item_columns(dialect, model)
    ).order_by(*_ORDER)
    for chunk in _raw_chunks(connection, query):
        yield from map(to_line, chunk)


def _raw_chunks(connection: Connection, query: Any) -> Iterator[list[Any]]:
    """The query's rows as the driver gives them (plain tuples), a chunk at a time.

    Plain text and numbers need none of SQLAlchemy's result processing, and its result rows were a quarter of
    the time with 10^5 rows. Driver errors come as SQLAlchemy's (``Database.reading`` explains those).

    PostgreSQL's rows come from a server-side cursor in the session's transaction, read ahead by a thread: the
    server finds the next chunk while this process formats the last (a few chunks ahead at most, so memory
    stays bounded). SQLite's rows are read here: its driver takes Python's lock back for every row, so a
    reading thread gained nothing there.
    """
    compiled = query.compile(dialect=connection.dialect)
    params = compiled.construct_params()
    args = tuple(params[name] for name in compiled.positiontup) if compiled.positional else params
    driver = connection.connection.driver_connection
    dbapi_error = connection.dialect.loaded_dbapi.Error
    postgres = connection.dialect.name == "postgresql"
    cursor = driver.cursor(name="matloop_history_csv") if postgres else driver.cursor()
    try:
        yield from (_read_ahead if postgres else _read)(cursor, str(compiled), args)
    except dbapi_error as exc:
        raise DBAPIError.instance(str(compiled), args, exc, dbapi_error, dialect=connection.dialect) from exc
    finally:
        cursor.close()


def _read(cursor: Any, statement: str, args: Any) -> Iterator[list[Any]]:
    cursor.execute(statement, args)
    while chunk := cursor.fetchmany(STREAM_CHUNK):
        yield chunk


def _read_ahead(cursor: Any, statement: str, args: Any) -> Iterator[list[Any]]:
    """:func:`_read`'s chunks, read by a thread of their own (errors raised here)."""
    chunks: queue.Queue[list[Any] | BaseException | None] = queue.Queue(maxsize=_CHUNKS_AHEAD)
    stop = threading.Event()

    def read() -> None:
        try:
            for chunk in _read(cursor, statement, args):
                if not _put(chunks, stop, chunk):
                    return
            _put(chunks, stop, None)
        except BaseException as exc:  # noqa: BLE001 - raised again where the rows are read
            _put(chunks, stop, exc)

    reader = threading.Thread(target=read, name="matloop-history-csv", daemon=True)
    reader.start()
    try:
        while (item := chunks.get()) is not None:
            if isinstance(item, BaseException):
                raise item
            yield item
    finally:
        stop.set()
        reader.join()


#: Chunks the reading thread may hold ready (each :data:`~agent.store.history.STREAM_CHUNK` rows).
_CHUNKS_AHEAD = 2


def _put(chunks: queue.Queue[Any], stop: threading.Event, item: Any) -> bool:
    """Hand ``item`` over, unless the reader of the chunks has stopped (then nothing waits for it: False)."""
    while not stop.is_set():
        try:
            chunks.put(item, timeout=0.1)
            return True
        except queue.Full:
            continue
    return False
