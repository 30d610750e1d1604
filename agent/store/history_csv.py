"""A campaign's history as the text ``matloop history --format csv`` prints, for 10^5+ rows in about a second.

:func:`agent.store.history.iter_history` gives typed values (the notebook frame's); written by ``csv.writer``
that took 4–5 CPU seconds for 10^5 rows, mostly in per-row Python work: a ``datetime`` parsed from the
stored text for every timestamp only to be printed again, a whole candidate's JSON decoded for its
parameters, the batch's columns fetched again for every row of it. Here the database renders what it can
render exactly as Python's ``str`` of the typed value would read (integers, booleans, missing text, a
timestamp's UTC digits, a point's parameters), each batch's columns come once per batch, and Python adds
only what SQL spells differently (floats, labels). Writing these rows gives the same bytes as writing the
typed ones (``tests/cli/test_history_csv_text.py`` holds the two together on SQLite and PostgreSQL).
"""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import String, Text, and_, case, cast, func, select, type_coerce
from sqlalchemy.engine import Connection, Dialect
from sqlalchemy.orm import Session, aliased

from agent.store.history import (
    _ORDER,
    STREAM_CHUNK,
    HistoryQuery,
    _campaign_id,
    _decision,
    _decoded,
    _edited_batches,
    _history_select,
    _point_label,
    describe_candidate,
)
from agent.store.models import (
    BatchItemRecord,
    BatchRecord,
    CandidateRecord,
    IterationRecord,
    JobRecord,
    MeasurementRecord,
    ModelVersionRecord,
    UTCDateTime,
)


def _whole(column: Any) -> Any:
    """An integer as its decimal digits ('' when missing)."""
    return func.coalesce(cast(column, String), "")


def _word(column: Any) -> Any:
    """Text as stored ('' when missing, as ``csv.writer`` writes None)."""
    return func.coalesce(column, "")


def _timestamp_text(column: Any, dialect: Dialect) -> Any:
    """A UTC timestamp column as 'YYYY-MM-DD HH:MM:SS.ffffff' text, or typed where no rendering is known.

    SQLite stores exactly that text (SQLAlchemy's storage format); PostgreSQL formats it with ``to_char`` in
    UTC. :class:`_UtcText` finishes it (zone, whole seconds) or reads anything else as the typed column does.
    """
    if dialect.name == "sqlite":
        return type_coerce(column, String)
    if dialect.name == "postgresql":
        return func.to_char(func.timezone("UTC", column), "YYYY-MM-DD HH24:MI:SS.US")
    return column


class _UtcText:
    """A timestamp column's text (see :func:`_timestamp_text`) as ``str()`` of the typed UTC value.

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


def _point_params(dialect: Dialect) -> list[Any]:
    """Two columns for the candidate: a point's parameters alone, else the whole representation (one is NULL).

    Decoding the whole stored JSON of 10^5 candidates was a sixth of the time, and a point's label needs only
    its parameters: the database picks them out (the same JSON text on SQLite, the same object on
    PostgreSQL); anything else (other kinds, JSON SQLite calls invalid) comes whole, as in the typed rows.
    """
    rep, kind = CandidateRecord.representation, CandidateRecord.kind
    if dialect.name == "sqlite":
        text = type_coerce(rep, String)
        # nested CASEs: SQLite evaluates them in order, so json_type never sees text json_valid refused
        params = case((func.json_valid(text) == 1, case(
            (and_(kind == "point", func.json_type(text, "$.params") == "object"), func.json_extract(text, "$.params"))
        )))
    elif dialect.name == "postgresql":  # as text: the driver's JSON decoding costs more than json.loads itself
        params = case((and_(kind == "point", func.jsonb_typeof(rep["params"]) == "object"),
                       cast(rep["params"], Text)))
    else:
        return [type_coerce(None, String), type_coerce(rep, String)]
    params = type_coerce(params, String)
    return [params, case((params.is_(None), type_coerce(rep, String)))]


def _item_columns(dialect: Dialect) -> list[Any]:
    """The per-row columns: the batch's own come once per batch (:func:`_batches`)."""
    failed = MeasurementRecord.failed
    return [
        BatchRecord.id,
        _whole(BatchItemRecord.rank),
        CandidateRecord.id,  # a number: the label is made once per candidate
        CandidateRecord.kind,
        *_point_params(dialect),
        _word(CandidateRecord.origin),
        BatchItemRecord.acquisition_value,  # floats stay numbers: SQL spells them unlike Python ('1' for 1.0)
        BatchItemRecord.posterior_mean,
        BatchItemRecord.posterior_std,
        _word(BatchItemRecord.reason),
        case((BatchItemRecord.dropped, "True"), else_="False"),  # the typed row says bool(dropped)
        _word(JobRecord.status),
        _word(JobRecord.adapter),
        _word(JobRecord.fidelity),
        _word(JobRecord.idempotency_key),
        _word(MeasurementRecord.property),
        MeasurementRecord.value,
        MeasurementRecord.std,
        _word(MeasurementRecord.units),
        case((failed.is_(None), ""), (failed, "True"), else_="False"),  # no measurement: empty
        _word(MeasurementRecord.error),
        _timestamp_text(MeasurementRecord.created_at, dialect),
    ]


class _Batches(dict[int, tuple[tuple[str, ...], tuple[str, ...]]]):
    """Batch id -> (the columns before the item's, the model version's two): one query for the campaign's batches.

    A batch the first query did not see (written while the rows stream) is asked for on its own.
    """

    def __init__(self, connection: Connection, campaign_id: int, since: int | None, edited: set[int]) -> None:
        super().__init__()
        self.connection, self.campaign_id, self.edited = connection, campaign_id, edited
        self.stamp = _UtcText(connection.dialect)
        self._load(since=since)

    def _load(self, *, since: int | None = None, batch_id: int | None = None) -> None:
        model = aliased(ModelVersionRecord)
        query = (
            select(BatchRecord.id, _whole(IterationRecord.number), _word(BatchRecord.status),
                   _word(BatchRecord.approver), _word(BatchRecord.note),
                   _timestamp_text(BatchRecord.decided_at, self.connection.dialect), _whole(model.id),
                   _word(model.kind))
            .join(IterationRecord, IterationRecord.id == BatchRecord.iteration_id)
            .outerjoin(model, model.id == IterationRecord.model_version_id)
            .where(BatchRecord.campaign_id == self.campaign_id)
        )
        if since is not None:
            query = query.where(IterationRecord.number >= since)
        if batch_id is not None:
            query = query.where(BatchRecord.id == batch_id)
        for batch_id_, number, status, approver, note, decided, mv_id, mv_kind in self.connection.execute(query):
            decision = _decision(status, batch_id_, self.edited)
            self[batch_id_] = ((number, str(batch_id_), status, decision, approver, note, self.stamp(decided)),
                               (mv_id, mv_kind))

    def __missing__(self, batch_id: int) -> tuple[tuple[str, ...], tuple[str, ...]]:
        self._load(batch_id=batch_id)
        return self[batch_id]


class _CsvRows:
    """Raw item rows -> history rows of text, in ``HISTORY_COLUMNS`` order."""

    def __init__(self, batches: _Batches) -> None:
        self.batches = batches
        self.stamp = batches.stamp
        self._last: tuple[int, str] | None = None  # rows come grouped by item: describe each candidate once

    def __call__(self, r: Any) -> tuple[str, ...]:
        (batch_id, rank, cid, kind, params, rep, origin, acq, mean, std, reason, dropped, jstatus, adapter, fidelity,
         key, mprop, value, mstd, units, failed, error, measured) = r
        if self._last is None or self._last[0] != cid:
            label = describe_candidate(kind, _decoded(rep)) if params is None else _point_label(_decoded(params))
            self._last = (cid, label)
        batch, model = self.batches[batch_id]
        return (*batch, rank, str(cid), self._last[1], origin, "" if acq is None else str(acq),
                "" if mean is None else str(mean), "" if std is None else str(std), reason, dropped, *model, jstatus,
                adapter, fidelity, key, mprop, "" if value is None else str(value), "" if mstd is None else str(mstd),
                units, failed, error, self.stamp(measured))


def iter_history_csv(
    session: Session, name: str, *, prop: str | None = None, since_iteration: int | None = None
) -> Iterator[tuple[str, ...]]:
    """:func:`~agent.store.history.iter_history`'s rows with every value the text CSV prints for it (None as '').

    Streamed from a server-side cursor in chunks of :data:`~agent.store.history.STREAM_CHUNK`; the session must
    stay open while the iterator is consumed.
    """
    campaign_id = _campaign_id(session, name)
    connection = session.connection()
    if connection.dialect.name == "postgresql":
        # for this transaction only: the sort of 10^5 rows fits in memory instead of spilling to disk (the default
        # 4 MB did; the 40 MB external merge was a quarter of the server's time)
        connection.exec_driver_sql("SET LOCAL work_mem = '64MB'")
    batches = _Batches(connection, campaign_id, since_iteration, _edited_batches(session, campaign_id))
    to_row = _CsvRows(batches)
    query = _history_select(
        campaign_id, HistoryQuery(prop, since_iteration), lambda _model: _item_columns(connection.dialect)
    ).order_by(*_ORDER)
    result = connection.execution_options(yield_per=STREAM_CHUNK).execute(query)
    for chunk in result.partitions():
        yield from map(to_row, chunk)
