"""A stored candidate's short text form, as tables and ``matloop history`` show it.

The label is written once, with the candidate (a column default, :func:`label_on_insert`), because reading
it back is then free: formatting 10^5 candidates' ``.3g`` numbers on every ``history --format csv`` was a
fifth of that command's time. Rows written before the column existed are labelled by the migration that
added it, and :func:`describe_candidate` stays the one way a label is made.
"""

from __future__ import annotations

from typing import Any

#: Labels are cut here (with an ellipsis), as ``Candidate.label(max_len=80)`` cuts them.
LABEL_LENGTH = 80


def point_label(params: dict[str, Any]) -> str:
    """A point's label from its parameters, as ``Candidate.label`` writes it."""
    text = ", ".join([f"{k}={v:.3g}" if isinstance(v, float) else f"{k}={v}" for k, v in params.items()])
    return text if len(text) <= LABEL_LENGTH else text[:LABEL_LENGTH - 1] + "…"


def describe_candidate(kind: str, representation: Any) -> str:
    """A compact text form of a stored candidate for tables.

    A point (the common case) is formatted here, as ``Candidate.label`` formats it (a test holds the two
    together): building a ``Candidate`` per row, even unvalidated, was half of ``history --format csv``'s time
    with 10^5 rows.
    """
    params = representation.get("params") if isinstance(representation, dict) else None
    if kind == "point" and isinstance(params, dict):
        return point_label(params)
    from matloop.types import Candidate

    try:
        return Candidate.model_validate(representation).label(max_len=LABEL_LENGTH)
    except Exception:  # noqa: BLE001 - an old or foreign representation still gets shown
        return f"{kind}:{str(representation)[:60]}"


def label_on_insert(context: Any) -> str | None:
    """The ``candidate.label`` column's default: the label of the row being inserted (SQLAlchemy's context)."""
    values = context.get_current_parameters()
    representation = values.get("representation")
    if isinstance(representation, str):  # already serialised by a caller writing raw JSON text
        import json

        try:
            representation = json.loads(representation)
        except ValueError:
            pass
    kind = values.get("kind")
    return describe_candidate(kind, representation) if isinstance(kind, str) else None
