"""Rules switched off per unit (the worker drops their detections for it and the units below).

Revision ID: 0011
Revises: 0010
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0011"
down_revision: str | None = "0010"
branch_labels = None
depends_on = None


def upgrade() -> None:
    """Create ``disabled_rules`` (under the unit-scope policy on PostgreSQL, as exceptions)."""
    op.create_table(
        "disabled_rules",
        sa.Column("id", sa.Integer, primary_key=True),
        sa.Column("unit_id", sa.Integer, sa.ForeignKey("units.id"), nullable=False),
        sa.Column("rule_id", sa.String(128), nullable=False),
        sa.Column("author", sa.String(160), nullable=False),
        sa.Column("reason", sa.Text, nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.UniqueConstraint("unit_id", "rule_id"),
    )
    op.create_index(op.f("ix_disabled_rules_unit_id"), "disabled_rules", ["unit_id"])
    if op.get_bind().dialect.name == "postgresql":
        op.execute("ALTER TABLE disabled_rules ENABLE ROW LEVEL SECURITY")
        op.execute("ALTER TABLE disabled_rules FORCE ROW LEVEL SECURITY")
        op.execute(
            "CREATE POLICY vedette_unit_scope ON disabled_rules "
            "USING (vedette_sees(unit_id)) WITH CHECK (vedette_sees(unit_id))"
        )


def downgrade() -> None:
    """Drop ``disabled_rules``."""
    op.drop_index(op.f("ix_disabled_rules_unit_id"), "disabled_rules")
    op.drop_table("disabled_rules")
