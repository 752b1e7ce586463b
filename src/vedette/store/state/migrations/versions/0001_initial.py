"""Initial schema: units, users, tokens, alerts, comments, exceptions, audit, positions, stats.

Revision ID: 0001
Revises:
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0001"
down_revision: str | None = None
branch_labels = None
depends_on = None

TS = sa.DateTime(timezone=True)


def upgrade() -> None:
    """Create every table of the first version."""
    op.create_table(
        "units",
        sa.Column("id", sa.Integer, primary_key=True),
        sa.Column("name", sa.String(64), nullable=False),
        sa.Column("parent_id", sa.Integer, sa.ForeignKey("units.id"), nullable=True),
        sa.Column("silent_after_seconds", sa.Integer, nullable=True),
        sa.Column("created_at", TS, nullable=False),
        sa.UniqueConstraint("name"),
    )
    op.create_index(op.f("ix_units_parent_id"), "units", ["parent_id"])
    op.create_table(
        "users",
        sa.Column("id", sa.Integer, primary_key=True),
        sa.Column("name", sa.String(128), nullable=False),
        sa.Column("unit_id", sa.Integer, sa.ForeignKey("units.id"), nullable=False),
        sa.Column("role", sa.String(16), nullable=False),
        sa.Column("password_hash", sa.String(255), nullable=False),
        sa.Column("locale", sa.String(16), nullable=False),
        sa.Column("disabled", sa.Boolean, nullable=False),
        sa.Column("failed_logins", sa.Integer, nullable=False),
        sa.Column("locked_until", TS, nullable=True),
        sa.Column("created_at", TS, nullable=False),
        sa.UniqueConstraint("name"),
    )
    op.create_index(op.f("ix_users_unit_id"), "users", ["unit_id"])
    op.create_table(
        "tokens",
        sa.Column("id", sa.Integer, primary_key=True),
        sa.Column("unit_id", sa.Integer, sa.ForeignKey("units.id"), nullable=False),
        sa.Column("role", sa.String(16), nullable=False),
        sa.Column("name", sa.String(128), nullable=False),
        sa.Column("secret_hash", sa.String(64), nullable=False),
        sa.Column("prefix", sa.String(16), nullable=False),
        sa.Column("created_at", TS, nullable=False),
        sa.Column("revoked_at", TS, nullable=True),
        sa.Column("last_used_at", TS, nullable=True),
        sa.UniqueConstraint("secret_hash"),
    )
    op.create_index(op.f("ix_tokens_unit_id"), "tokens", ["unit_id"])
    op.create_table(
        "alerts",
        sa.Column("id", sa.Integer, primary_key=True),
        sa.Column("unit_id", sa.Integer, sa.ForeignKey("units.id"), nullable=False),
        sa.Column("fingerprint", sa.String(64), nullable=False),
        sa.Column("kind", sa.String(32), nullable=False),
        sa.Column("rule_id", sa.String(128), nullable=False),
        sa.Column("rule_title", sa.Text, nullable=False),
        sa.Column("level", sa.String(16), nullable=False),
        sa.Column("status", sa.String(16), nullable=False),
        sa.Column("close_reason", sa.String(32), nullable=True),
        sa.Column("assignee", sa.String(128), nullable=True),
        sa.Column("count", sa.Integer, nullable=False),
        sa.Column("first_seen", TS, nullable=False),
        sa.Column("last_seen", TS, nullable=False),
        sa.Column("host", sa.String(255), nullable=True),
        sa.Column("attack", sa.JSON, nullable=False),
        sa.Column("matched", sa.JSON, nullable=False),
        sa.Column("sample_event", sa.JSON, nullable=False),
        sa.Column("created_at", TS, nullable=False),
        sa.Column("updated_at", TS, nullable=False),
    )
    op.create_index(
        "ix_alerts_unit_fingerprint_status", "alerts", ["unit_id", "fingerprint", "status"]
    )
    op.create_index(op.f("ix_alerts_rule_id"), "alerts", ["rule_id"])
    op.create_table(
        "alert_comments",
        sa.Column("id", sa.Integer, primary_key=True),
        sa.Column(
            "alert_id",
            sa.Integer,
            sa.ForeignKey("alerts.id", ondelete="CASCADE"),
            nullable=False,
        ),
        sa.Column("author", sa.String(128), nullable=False),
        sa.Column("text", sa.Text, nullable=False),
        sa.Column("created_at", TS, nullable=False),
    )
    op.create_index(op.f("ix_alert_comments_alert_id"), "alert_comments", ["alert_id"])
    op.create_table(
        "rule_exceptions",
        sa.Column("id", sa.Integer, primary_key=True),
        sa.Column("unit_id", sa.Integer, sa.ForeignKey("units.id"), nullable=False),
        sa.Column("rule_id", sa.String(128), nullable=True),
        sa.Column("conditions", sa.JSON, nullable=False),
        sa.Column("author", sa.String(128), nullable=False),
        sa.Column("reason", sa.Text, nullable=False),
        sa.Column("expires_at", TS, nullable=True),
        sa.Column("created_at", TS, nullable=False),
    )
    op.create_index(op.f("ix_rule_exceptions_unit_id"), "rule_exceptions", ["unit_id"])
    op.create_table(
        "audit",
        sa.Column("id", sa.Integer, primary_key=True),
        sa.Column("at", TS, nullable=False),
        sa.Column("actor", sa.String(160), nullable=False),
        sa.Column("unit_id", sa.Integer, nullable=True),
        sa.Column("action", sa.String(64), nullable=False),
        sa.Column("object_type", sa.String(32), nullable=False),
        sa.Column("object_id", sa.String(64), nullable=False),
        sa.Column("before", sa.JSON, nullable=True),
        sa.Column("after", sa.JSON, nullable=True),
        sa.Column("prev_hash", sa.String(64), nullable=False),
        sa.Column("hash", sa.String(64), nullable=False),
    )
    op.create_index(op.f("ix_audit_unit_id"), "audit", ["unit_id"])
    op.create_table(
        "positions",
        sa.Column("name", sa.String(128), primary_key=True),
        sa.Column("value", sa.BigInteger, nullable=False),
    )
    op.create_table(
        "unit_stats",
        sa.Column("unit_id", sa.Integer, sa.ForeignKey("units.id"), primary_key=True),
        sa.Column("events_received", sa.BigInteger, nullable=False),
        sa.Column("events_stored", sa.BigInteger, nullable=False),
        sa.Column("last_event_at", TS, nullable=True),
        sa.Column("last_received_at", TS, nullable=True),
    )


def downgrade() -> None:
    """Drop everything (a fresh store only)."""
    for table in (
        "unit_stats",
        "positions",
        "audit",
        "rule_exceptions",
        "alert_comments",
        "alerts",
        "tokens",
        "users",
        "units",
    ):
        op.drop_table(table)
