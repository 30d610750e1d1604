"""The append-only audit log."""

from __future__ import annotations

from typing import Any

from sqlalchemy.orm import Session

from agent.store.models import EventRecord


def record_event(
    session: Session,
    kind: str,
    *,
    campaign_id: int | None = None,
    iteration_id: int | None = None,
    actor: str = "matloop",
    payload: dict[str, Any] | None = None,
) -> EventRecord:
    """Append one event in the caller's transaction (so it commits with the change it describes)."""
    event = EventRecord(
        campaign_id=campaign_id, iteration_id=iteration_id, kind=kind, actor=actor, payload=payload or {}
    )
    session.add(event)
    return event
