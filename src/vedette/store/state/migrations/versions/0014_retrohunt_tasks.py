"""Retro-hunt tasks: one per unit and day of a job run on the work queue (scale-out mode).

Not under a row-level-security policy, like ``retrohunts``: no API reads the tasks, and a job is
scoped in the repository (its owner side).

Revision ID: 0014
Revises: 0013
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0014"
down_revision: str | None = "0013"
branch_labels = None
depends_on = None

TS = sa.DateTime(timezone=True)


def upgrade() -> None:
    """Create ``retrohunt_tasks``."""
    op.create_table(
        "retrohunt_tasks",
        sa.Column("id", sa.Integer, primary_key=True),
        sa.Column("job_id", sa.Integer, sa.ForeignKey("retrohunts.id"), nullable=False),
        sa.Column("unit_id", sa.Integer, sa.ForeignKey("units.id"), nullable=False),
        sa.Column("unit", sa.String(64), nullable=False),
        sa.Column("day", sa.String(10), nullable=False),
        sa.Column("status", sa.String(16), nullable=False),
        sa.Column("worker", sa.String(160), nullable=True),
        sa.Column("attempts", sa.Integer, nullable=False),
        sa.Column("events_read", sa.Integer, nullable=False),
        sa.Column("hits", sa.Integer, nullable=False),
        sa.Column("excepted", sa.Integer, nullable=False),
        sa.Column("error", sa.Text, nullable=True),
        sa.Column("started_at", TS, nullable=True),
        sa.Column("finished_at", TS, nullable=True),
        sa.UniqueConstraint("job_id", "unit_id", "day"),
    )
    op.create_index(op.f("ix_retrohunt_tasks_job_id"), "retrohunt_tasks", ["job_id"])


def downgrade() -> None:
    """Drop ``retrohunt_tasks``."""
    op.drop_index(op.f("ix_retrohunt_tasks_job_id"), "retrohunt_tasks")
    op.drop_table("retrohunt_tasks")
