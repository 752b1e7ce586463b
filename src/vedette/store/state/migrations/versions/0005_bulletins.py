"""Bulletins and their target units.

Revision ID: 0005
Revises: 0004
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0005"
down_revision: str | None = "0004"
branch_labels = None
depends_on = None

TS = sa.DateTime(timezone=True)


def upgrade() -> None:
    """Create ``bulletins`` and ``bulletin_targets``."""
    op.create_table(
        "bulletins",
        sa.Column("id", sa.Integer, primary_key=True),
        sa.Column("unit_id", sa.Integer, sa.ForeignKey("units.id"), nullable=False),
        sa.Column("title", sa.Text, nullable=False),
        sa.Column("text", sa.Text, nullable=False),
        sa.Column("observables", sa.JSON, nullable=False),
        sa.Column("rules", sa.JSON, nullable=False),
        sa.Column("created_by", sa.String(160), nullable=False),
        sa.Column("created_at", TS, nullable=False),
    )
    op.create_index(op.f("ix_bulletins_unit_id"), "bulletins", ["unit_id"])
    op.create_table(
        "bulletin_targets",
        sa.Column("id", sa.Integer, primary_key=True),
        sa.Column(
            "bulletin_id",
            sa.Integer,
            sa.ForeignKey("bulletins.id", ondelete="CASCADE"),
            nullable=False,
        ),
        sa.Column("unit_id", sa.Integer, sa.ForeignKey("units.id"), nullable=False),
        sa.Column("acked_at", TS, nullable=True),
        sa.Column("acked_by", sa.String(160), nullable=True),
        sa.UniqueConstraint("bulletin_id", "unit_id"),
    )
    op.create_index(op.f("ix_bulletin_targets_bulletin_id"), "bulletin_targets", ["bulletin_id"])
    op.create_index(op.f("ix_bulletin_targets_unit_id"), "bulletin_targets", ["unit_id"])


def downgrade() -> None:
    """Drop the two tables."""
    op.drop_table("bulletin_targets")
    op.drop_table("bulletins")
