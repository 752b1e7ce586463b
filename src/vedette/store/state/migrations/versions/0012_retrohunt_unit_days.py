"""Retro-hunt progress by unit and by unit-day, beside files.

Revision ID: 0012
Revises: 0011
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0012"
down_revision: str | None = "0011"
branch_labels = None
depends_on = None

COLUMNS = ("units_done", "days_total", "days_done")


def upgrade() -> None:
    """Add ``units_done``, ``days_total`` and ``days_done`` (0 for jobs made before)."""
    with op.batch_alter_table("retrohunts") as batch:
        for name in COLUMNS:
            batch.add_column(
                sa.Column(name, sa.Integer, nullable=False, server_default=sa.text("0"))
            )


def downgrade() -> None:
    """Drop the three columns."""
    with op.batch_alter_table("retrohunts") as batch:
        for name in reversed(COLUMNS):
            batch.drop_column(name)
