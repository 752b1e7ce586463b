"""User sessions in the state store: they survive a restart and are shared by every api process.

Until now a session lived in one process's memory: a restart logged every user out, and in
scale-out mode a session opened on one api was unknown to the others. A row holds the sha256
of the session token (never the token), the user, the user's unit (for row-level security),
and the idle and absolute expiries (vedette.store.state.sessions).

On PostgreSQL the table is under the unit-scope policy like every unit table (migration 0020):
a scoped transaction sees and writes the sessions of its units only.

Revision ID: 0021
Revises: 0020
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0021"
down_revision: str | None = "0020"
branch_labels = None
depends_on = None

TS = sa.DateTime(timezone=True)
_POLICY = "vedette_sees(unit_id)"


def upgrade() -> None:
    """Create ``user_sessions``; on PostgreSQL, force row-level security on it."""
    op.create_table(
        "user_sessions",
        sa.Column("id", sa.Integer, nullable=False),
        sa.Column("secret_hash", sa.String(64), nullable=False),
        sa.Column("user_id", sa.Integer, nullable=False),
        sa.Column("unit_id", sa.Integer, nullable=False),
        sa.Column("created_at", TS, nullable=False),
        sa.Column("last_seen_at", TS, nullable=False),
        sa.Column("idle_until", TS, nullable=False),
        sa.Column("expires_at", TS, nullable=False),
        sa.ForeignKeyConstraint(
            ["user_id"],
            ["users.id"],
            name=op.f("fk_user_sessions_user_id_users"),
            ondelete="CASCADE",
        ),
        sa.ForeignKeyConstraint(
            ["unit_id"], ["units.id"], name=op.f("fk_user_sessions_unit_id_units")
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_user_sessions")),
        sa.UniqueConstraint("secret_hash", name=op.f("uq_user_sessions_secret_hash")),
    )
    for column in ("user_id", "unit_id", "idle_until", "expires_at"):
        op.create_index(op.f(f"ix_user_sessions_{column}"), "user_sessions", [column])
    if op.get_bind().dialect.name == "postgresql":
        op.execute("ALTER TABLE user_sessions ENABLE ROW LEVEL SECURITY")
        op.execute("ALTER TABLE user_sessions FORCE ROW LEVEL SECURITY")
        op.execute(
            f"CREATE POLICY vedette_unit_scope ON user_sessions USING ({_POLICY})"
            f" WITH CHECK ({_POLICY})"
        )


def downgrade() -> None:
    """Drop the table (and with it its policy and indexes)."""
    op.drop_table("user_sessions")
