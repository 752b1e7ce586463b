"""Alembic environment: run on the connection ``db.py`` hands over (no alembic.ini, no logging
setup). SQLite tables are altered in batch mode (copy and move), the only way SQLite can."""

from __future__ import annotations

from alembic import context
from sqlalchemy.engine import Connection

from vedette.store.state.models import Base

connection: Connection | None = context.config.attributes.get("connection")
if connection is None:  # offline SQL generation is not supported: the store migrates itself
    raise RuntimeError("the state store migrates through vedette.store.state.db.open_state")

context.configure(
    connection=connection,
    target_metadata=Base.metadata,
    render_as_batch=True,
    compare_type=True,
)
with context.begin_transaction():
    context.run_migrations()
