"""A drafted warning is visible to its source side under row-level security (PostgreSQL only).

A draft belongs to the warned unit, but until an analyst covering the *source* alert's unit
approves it only that side may read it (``warnings.list_warnings``; its hits stay hidden in the
repository). Migration 0008's policy showed a warning to the warned unit's scope only, so the
source side saw no draft through the api's scoped sessions and could not approve it. Now a
scope also reads a draft whose source alert is of one of its own units (not merely shared with
it). Writes are unchanged: the approval widens its transaction's scope to the warned unit
(``db.widen_scope``) once the repository has checked the caller covers the source.

Revision ID: 0022
Revises: 0021
"""

from __future__ import annotations

from alembic import op

revision = "0022"
down_revision: str | None = "0021"
branch_labels = None
depends_on = None

_OLD = "vedette_sees(unit_id)"
# alerts is under its own policy: the sub-select sees the scope's and shared alerts, hence the
# unit test on the alert too.
_NEW = (
    f"{_OLD} OR (status = 'draft' AND EXISTS (SELECT 1 FROM alerts a "
    "WHERE a.id = warnings.source_alert_id AND vedette_sees(a.unit_id)))"
)


def _policy(using: str) -> None:
    op.execute("DROP POLICY IF EXISTS vedette_unit_scope ON warnings")
    op.execute(f"CREATE POLICY vedette_unit_scope ON warnings USING ({using}) WITH CHECK ({_OLD})")


def upgrade() -> None:
    """The warnings' new policy."""
    if op.get_bind().dialect.name != "postgresql":
        return
    _policy(_NEW)


def downgrade() -> None:
    """Back to 0008's policy."""
    if op.get_bind().dialect.name != "postgresql":
        return
    _policy(_OLD)
