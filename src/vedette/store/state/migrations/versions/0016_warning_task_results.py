"""Early-warning searches on the work queue: a task keeps what it found (``retrohunt_tasks.found``).

A job of kind ``warning`` (the coordinator's search of an alert's observables, scale-out mode)
is split into (unit, day) tasks like a retro-hunt; each task's hits, hit count and observables
found are kept on its row until the coordinator drafts the warnings from them.

Revision ID: 0016
Revises: 0015
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0016"
down_revision: str | None = "0015"
branch_labels = None
depends_on = None


def upgrade() -> None:
    """Add ``retrohunt_tasks.found``."""
    with op.batch_alter_table("retrohunt_tasks") as batch:
        batch.add_column(sa.Column("found", sa.JSON, nullable=True))


def downgrade() -> None:
    """Drop ``retrohunt_tasks.found``."""
    with op.batch_alter_table("retrohunt_tasks") as batch:
        batch.drop_column("found")
