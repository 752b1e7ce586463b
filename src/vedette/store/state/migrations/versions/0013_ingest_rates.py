"""Per-unit ingest counts in ten-second buckets (events/s on the overview).

Revision ID: 0013
Revises: 0012
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0013"
down_revision: str | None = "0012"
branch_labels = None
depends_on = None


def upgrade() -> None:
    """Create ``ingest_rates`` (under the unit-scope policy on PostgreSQL, as unit data)."""
    op.create_table(
        "ingest_rates",
        sa.Column("unit_id", sa.Integer, sa.ForeignKey("units.id"), nullable=False),
        sa.Column("bucket", sa.BigInteger, nullable=False, autoincrement=False),
        sa.Column("events", sa.BigInteger, nullable=False),
        sa.PrimaryKeyConstraint("unit_id", "bucket"),
    )
    op.create_index("ix_ingest_rates_bucket", "ingest_rates", ["bucket"])
    if op.get_bind().dialect.name == "postgresql":
        op.execute("ALTER TABLE ingest_rates ENABLE ROW LEVEL SECURITY")
        op.execute("ALTER TABLE ingest_rates FORCE ROW LEVEL SECURITY")
        op.execute(
            "CREATE POLICY vedette_unit_scope ON ingest_rates "
            "USING (vedette_sees(unit_id)) WITH CHECK (vedette_sees(unit_id))"
        )


def downgrade() -> None:
    """Drop ``ingest_rates``."""
    op.drop_index("ix_ingest_rates_bucket", "ingest_rates")
    op.drop_table("ingest_rates")
