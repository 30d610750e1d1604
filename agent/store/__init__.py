"""The store: SQLAlchemy models, sessions, migrations and history queries."""

from agent.store.database import Database
from agent.store.errors import DatabaseBusy, DatabaseOutdated, DatabaseUnreachable, StoreError, UnknownCampaign

__all__ = ["Database", "DatabaseBusy", "DatabaseOutdated", "DatabaseUnreachable", "StoreError", "UnknownCampaign"]
