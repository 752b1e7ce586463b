"""Scale-out mode: leases of singleton duties (the scheduler) and live role processes.

Revision ID: 0017
Revises: 0016
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0017"
down_revision: str | None = "0016"
branch_labels = None
depends_on = None

_APP_ROLE = "vedette_app"


def upgrade() -> None:
    """Create ``duty_leases`` and ``role_members`` (read only for the api's scoped role)."""
    op.create_table(
        "duty_leases",
        sa.Column("duty", sa.String(64), nullable=False),
        sa.Column("owner", sa.String(200), nullable=True),
        sa.Column("expires_at", sa.Float, nullable=False),
        sa.Column("epoch", sa.BigInteger, nullable=False),
        sa.Column("moves", sa.BigInteger, nullable=False),
        sa.Column("takeovers", sa.BigInteger, nullable=False),
        sa.PrimaryKeyConstraint("duty", name=op.f("pk_duty_leases")),
    )
    op.create_table(
        "role_members",
        sa.Column("owner", sa.String(200), nullable=False),
        sa.Column("role", sa.String(32), nullable=False),
        sa.Column("expires_at", sa.Float, nullable=False),
        sa.Column("stats", sa.JSON, nullable=False),
        sa.PrimaryKeyConstraint("owner", name=op.f("pk_role_members")),
    )
    if op.get_bind().dialect.name == "postgresql":
        # Migration 0008's default privileges gave the app role writes on new tables: the api
        # only reads these two (its /metrics), as it reads the partition leases.
        op.execute(
            f"DO $$ BEGIN IF EXISTS (SELECT 1 FROM pg_roles WHERE rolname = '{_APP_ROLE}') THEN "
            f"REVOKE INSERT, UPDATE, DELETE ON duty_leases, role_members FROM {_APP_ROLE}; "
            "END IF; END $$"
        )


def downgrade() -> None:
    """Drop both tables."""
    op.drop_table("role_members")
    op.drop_table("duty_leases")
