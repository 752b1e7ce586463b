"""Dead letters of a unit missing from the store are the centre's (PostgreSQL only).

A batch for a unit that is not in the state store can never commit: the worker sets it aside
as a dead letter. Migration 0015's policy showed a dead letter only to a scope holding its
(named) unit, so nobody could see that one. Now the centre's scope (the root unit's) also sees
the dead letters whose unit does not exist; ``vedette_sees_centre()`` says whether the
transaction's scope holds the root.

Revision ID: 0018
Revises: 0017
"""

from __future__ import annotations

from alembic import op

revision = "0018"
down_revision: str | None = "0017"
branch_labels = None
depends_on = None

_CENTRE = """CREATE OR REPLACE FUNCTION vedette_sees_centre() RETURNS boolean
    LANGUAGE sql STABLE AS $$
    SELECT EXISTS (SELECT 1 FROM units u WHERE u.parent_id IS NULL AND vedette_sees(u.id))
    $$"""

_OLD = "EXISTS (SELECT 1 FROM units u WHERE u.name = dead_letters.unit AND vedette_sees(u.id))"
_NEW = (
    f"{_OLD} OR (vedette_sees_centre() AND NOT EXISTS "
    "(SELECT 1 FROM units u WHERE u.name = dead_letters.unit))"
)


def _policy(using: str) -> None:
    op.execute("DROP POLICY IF EXISTS vedette_unit_scope ON dead_letters")
    op.execute(
        f"CREATE POLICY vedette_unit_scope ON dead_letters USING ({using}) "
        "WITH CHECK (vedette_rls_bypass())"
    )


def upgrade() -> None:
    """``vedette_sees_centre()`` and the dead letters' new policy."""
    if op.get_bind().dialect.name != "postgresql":
        return
    op.execute(_CENTRE)
    _policy(_NEW)


def downgrade() -> None:
    """Back to 0015's policy."""
    if op.get_bind().dialect.name != "postgresql":
        return
    _policy(_OLD)
    op.execute("DROP FUNCTION IF EXISTS vedette_sees_centre()")
