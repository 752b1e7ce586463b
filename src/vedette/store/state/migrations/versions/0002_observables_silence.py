"""Alert observables (for early warning) and the silent-sensor flag of unit stats.

Revision ID: 0002
Revises: 0001
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0002"
down_revision: str | None = "0001"
branch_labels = None
depends_on = None


def upgrade() -> None:
    """Add ``alerts.observables`` and ``unit_stats.silent_alerted``; old rows get defaults."""
    with op.batch_alter_table("alerts") as batch:
        batch.add_column(
            sa.Column("observables", sa.JSON, nullable=False, server_default=sa.text("'[]'"))
        )
    with op.batch_alter_table("unit_stats") as batch:
        batch.add_column(
            sa.Column("silent_alerted", sa.Boolean, nullable=False, server_default=sa.false())
        )


def downgrade() -> None:
    """Drop the two columns."""
    with op.batch_alter_table("unit_stats") as batch:
        batch.drop_column("silent_alerted")
    with op.batch_alter_table("alerts") as batch:
        batch.drop_column("observables")
