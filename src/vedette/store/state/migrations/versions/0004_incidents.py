"""Incidents (alerts, shares, tasks, comments) and early warnings.

Revision ID: 0004
Revises: 0003
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0004"
down_revision: str | None = "0003"
branch_labels = None
depends_on = None

TS = sa.DateTime(timezone=True)


def _incident_fk() -> sa.Column[int]:
    return sa.Column(
        "incident_id",
        sa.Integer,
        sa.ForeignKey("incidents.id", ondelete="CASCADE"),
        nullable=False,
    )


def upgrade() -> None:
    """Create ``incidents``, ``incident_alerts``, ``incident_shares``, ``incident_tasks``,
    ``incident_comments`` and ``warnings``."""
    op.create_table(
        "incidents",
        sa.Column("id", sa.Integer, primary_key=True),
        sa.Column("owner_unit_id", sa.Integer, sa.ForeignKey("units.id"), nullable=False),
        sa.Column("origin_unit_id", sa.Integer, sa.ForeignKey("units.id"), nullable=False),
        sa.Column("title", sa.Text, nullable=False),
        sa.Column("severity", sa.String(16), nullable=False),
        sa.Column("status", sa.String(16), nullable=False),
        sa.Column("assignee", sa.String(128), nullable=True),
        sa.Column("created_by", sa.String(160), nullable=False),
        sa.Column("created_at", TS, nullable=False),
        sa.Column("updated_at", TS, nullable=False),
    )
    op.create_index(op.f("ix_incidents_owner_unit_id"), "incidents", ["owner_unit_id"])
    op.create_index(op.f("ix_incidents_origin_unit_id"), "incidents", ["origin_unit_id"])
    op.create_table(
        "incident_alerts",
        sa.Column(
            "alert_id",
            sa.Integer,
            sa.ForeignKey("alerts.id", ondelete="CASCADE"),
            primary_key=True,
        ),
        _incident_fk(),
        sa.Column("added_by", sa.String(160), nullable=False),
        sa.Column("added_at", TS, nullable=False),
    )
    op.create_index(op.f("ix_incident_alerts_incident_id"), "incident_alerts", ["incident_id"])
    op.create_table(
        "incident_shares",
        sa.Column("id", sa.Integer, primary_key=True),
        _incident_fk(),
        sa.Column("unit_id", sa.Integer, sa.ForeignKey("units.id"), nullable=False),
        sa.Column("alert_ids", sa.JSON, nullable=False),
        sa.Column("observables", sa.JSON, nullable=False),
        sa.Column("added_by", sa.String(160), nullable=False),
        sa.Column("added_at", TS, nullable=False),
        sa.UniqueConstraint("incident_id", "unit_id"),
    )
    op.create_index(op.f("ix_incident_shares_incident_id"), "incident_shares", ["incident_id"])
    op.create_index(op.f("ix_incident_shares_unit_id"), "incident_shares", ["unit_id"])
    op.create_table(
        "incident_tasks",
        sa.Column("id", sa.Integer, primary_key=True),
        _incident_fk(),
        sa.Column("unit_id", sa.Integer, sa.ForeignKey("units.id"), nullable=False),
        sa.Column("title", sa.Text, nullable=False),
        sa.Column("assignee", sa.String(128), nullable=True),
        sa.Column("due_at", TS, nullable=True),
        sa.Column("status", sa.String(16), nullable=False),
        sa.Column("created_by", sa.String(160), nullable=False),
        sa.Column("created_at", TS, nullable=False),
        sa.Column("updated_at", TS, nullable=False),
    )
    op.create_index(op.f("ix_incident_tasks_incident_id"), "incident_tasks", ["incident_id"])
    op.create_table(
        "incident_comments",
        sa.Column("id", sa.Integer, primary_key=True),
        _incident_fk(),
        sa.Column("unit_id", sa.Integer, sa.ForeignKey("units.id"), nullable=False),
        sa.Column("author", sa.String(160), nullable=False),
        sa.Column("text", sa.Text, nullable=False),
        sa.Column("shared", sa.Boolean, nullable=False),
        sa.Column("created_at", TS, nullable=False),
    )
    op.create_index(op.f("ix_incident_comments_incident_id"), "incident_comments", ["incident_id"])
    op.create_table(
        "warnings",
        sa.Column("id", sa.Integer, primary_key=True),
        sa.Column("unit_id", sa.Integer, sa.ForeignKey("units.id"), nullable=False),
        sa.Column("source_incident_id", sa.Integer, nullable=True),
        sa.Column("source_alert_id", sa.Integer, nullable=False),
        sa.Column("level", sa.String(16), nullable=False),
        sa.Column("title", sa.Text, nullable=False),
        sa.Column("observables", sa.JSON, nullable=False),
        sa.Column("attack", sa.JSON, nullable=False),
        sa.Column("hits", sa.JSON, nullable=False),
        sa.Column("hits_total", sa.Integer, nullable=False),
        sa.Column("status", sa.String(16), nullable=False),
        sa.Column("created_at", TS, nullable=False),
        sa.Column("acked_at", TS, nullable=True),
        sa.Column("acked_by", sa.String(160), nullable=True),
        sa.UniqueConstraint("unit_id", "source_alert_id"),
    )
    op.create_index(op.f("ix_warnings_unit_id"), "warnings", ["unit_id"])


def downgrade() -> None:
    """Drop the tables, children first."""
    for table in (
        "warnings",
        "incident_comments",
        "incident_tasks",
        "incident_shares",
        "incident_alerts",
        "incidents",
    ):
        op.drop_table(table)
