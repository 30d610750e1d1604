"""What Prefect says about a flow run that holds (or held) a campaign: is it over, is it waiting?

The store's lease knows processes and flow run ids, not Prefect; these checks let it free the lease of a
flow run that Prefect has ended (cancelled in the UI, crashed) without waiting for the lease to expire,
while a run suspended for approval (no process, still alive in Prefect) keeps the campaign.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any
from uuid import UUID

from sqlalchemy import select

from agent.store import Database
from agent.store.models import EventRecord


def read_flow_run_state(flow_run_id: str, api_url: str | None = None) -> Any | None:
    """The run's Prefect state; None when the API cannot be reached or does not know the run."""
    from prefect.client.orchestration import get_client
    from prefect.settings import PREFECT_API_URL, temporary_settings

    def read() -> Any:
        with get_client(sync_client=True) as client:
            return client.read_flow_run(UUID(flow_run_id)).state

    if not api_url and not PREFECT_API_URL.value():
        # Only an ephemeral API would answer, started just to be asked: a suspended run always recorded the
        # API it waits on (``approval_requested``), and a local process's liveness is checked by its pid.
        return None
    try:
        if api_url and not PREFECT_API_URL.value():
            with temporary_settings(updates={PREFECT_API_URL: api_url}):
                return read()
        return read()
    except Exception:  # noqa: BLE001 - unreachable API, unknown run, malformed id: we cannot tell
        return None


def _api_url_of(db: Database, flow_run_id: str) -> str | None:
    """The API a run reported when it asked for approval (a run from another server's deployment)."""
    with db.reading() as session:
        events = session.scalars(
            select(EventRecord).where(EventRecord.kind == "approval_requested").order_by(EventRecord.id.desc())
        )
        for event in events:
            if (event.payload or {}).get("flow_run_id") == flow_run_id:
                return (event.payload or {}).get("api_url")
    return None


def prefect_run_is_over(db: Database) -> Callable[[str], bool]:
    """``run_is_over(flow_run_id)``: True only when Prefect says the run has ended (not paused, not unknown).

    An unreachable API or an unknown run counts as alive: the lease then lapses only when it expires,
    which is safer than two runs on one campaign.
    """

    def run_is_over(flow_run_id: str) -> bool:
        state = read_flow_run_state(flow_run_id, _api_url_of(db, flow_run_id))
        return state is not None and state.is_final() and not state.is_paused()

    return run_is_over
