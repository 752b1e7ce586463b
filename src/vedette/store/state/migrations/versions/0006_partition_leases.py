"""Scale-out mode: partition leases, worker membership and the ingest ledger.

Revision ID: 0006
Revises: 0005
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0006"
down_revision: str | None = "0005"
branch_labels = None
depends_on = None


def upgrade() -> None:
    """Create ``partition_leases``, ``partition_members`` and ``ingest_ledger``."""
    op.create_table(
        "partition_leases",
        sa.Column("partition", sa.Integer, nullable=False, autoincrement=False),
        sa.Column("owner", sa.String(200), nullable=True),
        sa.Column("expires_at", sa.Float, nullable=False),
        sa.Column("moves", sa.BigInteger, nullable=False),
        sa.Column("takeovers", sa.BigInteger, nullable=False),
        sa.PrimaryKeyConstraint("partition", name=op.f("pk_partition_leases")),
    )
    op.create_table(
        "partition_members",
        sa.Column("owner", sa.String(200), nullable=False),
        sa.Column("expires_at", sa.Float, nullable=False),
        sa.PrimaryKeyConstraint("owner", name=op.f("pk_partition_members")),
    )
    op.create_table(
        "ingest_ledger",
        sa.Column("unit", sa.String(200), nullable=False),
        sa.Column("key", sa.String(200), nullable=False),
        sa.Column("seq", sa.BigInteger, nullable=False),
        sa.Column("count", sa.Integer, nullable=False),
        sa.Column("created_at", sa.Float, nullable=False),
        sa.PrimaryKeyConstraint("unit", "key", name=op.f("pk_ingest_ledger")),
    )
    op.create_index(op.f("ix_ingest_ledger_created_at"), "ingest_ledger", ["created_at"])


def downgrade() -> None:
    """Drop both tables."""
    op.drop_index(op.f("ix_ingest_ledger_created_at"), table_name="ingest_ledger")
    op.drop_table("ingest_ledger")
    op.drop_table("partition_members")
    op.drop_table("partition_leases")
