"""Alert grouping keys in a table of their own, filled from the existing alerts.

Revision ID: 0010
Revises: 0009
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

from vedette.store.state.alert_keys import key_hash, keys_of

revision = "0010"
down_revision: str | None = "0009"
branch_labels = None
depends_on = None

_ALERTS = sa.table(
    "alerts",
    sa.column("id", sa.Integer),
    sa.column("unit_id", sa.Integer),
    sa.column("kind", sa.String),
    sa.column("host", sa.String),
    sa.column("sample_event", sa.JSON),
    sa.column("observables", sa.JSON),
)


def upgrade() -> None:
    """Create ``alert_keys`` and write the keys of every alert but health ones."""
    table = op.create_table(
        "alert_keys",
        sa.Column(
            "alert_id",
            sa.Integer,
            sa.ForeignKey("alerts.id", ondelete="CASCADE"),
            primary_key=True,
        ),
        sa.Column("key", sa.String(64), primary_key=True),
        sa.Column("unit_id", sa.Integer, nullable=False),
    )
    op.create_index("ix_alert_keys_key_unit", "alert_keys", ["key", "unit_id"])
    bind = op.get_bind()
    rows = bind.execute(
        sa.select(
            _ALERTS.c.id,
            _ALERTS.c.unit_id,
            _ALERTS.c.host,
            _ALERTS.c.sample_event,
            _ALERTS.c.observables,
        ).where(_ALERTS.c.kind != "health")
    )
    batch: list[dict[str, object]] = []
    for alert_id, unit_id, host, sample, observables in rows:
        for key in sorted({key_hash(k) for k in keys_of(host, sample, observables)}):
            batch.append({"alert_id": alert_id, "key": key, "unit_id": unit_id})
    if batch:
        op.bulk_insert(table, batch)
    if bind.dialect.name == "postgresql":
        # Keys name hosts and users: under the same unit policy as the alerts (0008).
        op.execute("ALTER TABLE alert_keys ENABLE ROW LEVEL SECURITY")
        op.execute("ALTER TABLE alert_keys FORCE ROW LEVEL SECURITY")
        op.execute(
            "CREATE POLICY vedette_unit_scope ON alert_keys "
            "USING (vedette_sees(unit_id)) WITH CHECK (vedette_sees(unit_id))"
        )


def downgrade() -> None:
    """Drop ``alert_keys``."""
    op.drop_index("ix_alert_keys_key_unit", "alert_keys")
    op.drop_table("alert_keys")
