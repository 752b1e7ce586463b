"""Retro-hunt jobs and critical assets.

Revision ID: 0007
Revises: 0006
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0007"
down_revision: str | None = "0006"
branch_labels = None
depends_on = None

TS = sa.DateTime(timezone=True)


def upgrade() -> None:
    """Create ``retrohunts`` and ``critical_assets``."""
    op.create_table(
        "retrohunts",
        sa.Column("id", sa.Integer, primary_key=True),
        sa.Column("owner_unit_id", sa.Integer, sa.ForeignKey("units.id"), nullable=False),
        sa.Column("kind", sa.String(16), nullable=False),
        sa.Column("title", sa.Text, nullable=False),
        sa.Column("spec", sa.JSON, nullable=False),
        sa.Column("units", sa.JSON, nullable=False),
        sa.Column("time_from", TS, nullable=True),
        sa.Column("time_to", TS, nullable=True),
        sa.Column("incident_id", sa.Integer, nullable=True),
        sa.Column("status", sa.String(16), nullable=False),
        sa.Column("progress", sa.Float, nullable=False),
        sa.Column("files_total", sa.Integer, nullable=False),
        sa.Column("files_done", sa.Integer, nullable=False),
        sa.Column("events_read", sa.Integer, nullable=False),
        sa.Column("hits", sa.Integer, nullable=False),
        sa.Column("excepted", sa.Integer, nullable=False),
        sa.Column("alert_ids", sa.JSON, nullable=False),
        sa.Column("samples", sa.JSON, nullable=False),
        sa.Column("error", sa.Text, nullable=True),
        sa.Column("cancel_requested", sa.Boolean, nullable=False),
        sa.Column("created_by", sa.String(160), nullable=False),
        sa.Column("created_at", TS, nullable=False),
        sa.Column("started_at", TS, nullable=True),
        sa.Column("finished_at", TS, nullable=True),
    )
    op.create_index(op.f("ix_retrohunts_owner_unit_id"), "retrohunts", ["owner_unit_id"])
    op.create_table(
        "critical_assets",
        sa.Column("id", sa.Integer, primary_key=True),
        sa.Column("unit_id", sa.Integer, sa.ForeignKey("units.id"), nullable=False),
        sa.Column("kind", sa.String(16), nullable=False),
        sa.Column("value", sa.String(255), nullable=False),
        sa.Column("criticality", sa.String(16), nullable=False),
        sa.Column("note", sa.Text, nullable=False),
        sa.Column("created_by", sa.String(160), nullable=False),
        sa.Column("created_at", TS, nullable=False),
        sa.UniqueConstraint("unit_id", "kind", "value"),
    )
    op.create_index(op.f("ix_critical_assets_unit_id"), "critical_assets", ["unit_id"])


def downgrade() -> None:
    """Drop both tables."""
    op.drop_table("critical_assets")
    op.drop_table("retrohunts")
