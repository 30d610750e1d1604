"""Alembic environment and revisions for the matloop store (run with ``matloop db upgrade``)."""
