"""Alembic revisions of the state store (run by ``vedette.store.state.db``, no alembic.ini)."""
