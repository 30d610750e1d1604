"""The store: SQLAlchemy models, sessions, migrations and history queries."""

from agent.store.database import Database
from agent.store.errors import (
    DatabaseBusy,
    DatabaseMissing,
    DatabaseOutdated,
    DatabaseUnreachable,
    StoreError,
    UnknownCampaign,
    UnsupportedDatabase,
)

__all__ = ["Database", "DatabaseBusy", "DatabaseMissing", "DatabaseOutdated", "DatabaseUnreachable", "StoreError",
           "UnknownCampaign", "UnsupportedDatabase"]
