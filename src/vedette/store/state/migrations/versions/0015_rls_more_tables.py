"""Row-level security on more unit-scoped tables (PostgreSQL only; a no-op on SQLite).

Migration 0008 put the alerts, exceptions, tokens, warnings and incidents under the unit-scope
policy; these tables held per-unit rows without one (their reads were scoped in the repository
only). Each gets ``ENABLE`` and ``FORCE ROW LEVEL SECURITY`` and one policy, with the same
meaning as 0008's (``vedette_sees``: a unit of the transaction's scope, or a system
transaction of the owner):

- ``bulletins``: its publisher's unit, or a bulletin addressed to one of the scope's units
  (read only for them); ``bulletin_targets``: the target's unit (a publisher's targets are the
  units below it, so in its scope);
- ``retrohunts``: the job's owner unit;
- ``incident_alerts``, ``incident_tasks``, ``incident_comments``: rows of an incident the
  transaction sees (its policy: owner, origin or a unit it is shared with);
- ``dead_letters``: the unit named by the row (a name, not an id: through ``units``).

Not here, and why (docs/scale-out.md): the audit trail (one hash chain across units: an
append reads the previous record, and verifying walks every record), notification channels
and the outbox (a unit's event notifies the channels of the units above it, from the caller's
transaction), ``incident_shares`` (read by the incidents and alerts policies themselves),
critical assets (an alert shared in an incident shows its priority from its own unit's
assets), users, unit counters, and ``retrohunt_tasks`` (0014: no API reads them, the workers'
system transactions write them).

Revision ID: 0015
Revises: 0014
"""

from __future__ import annotations

from alembic import op

revision = "0015"
down_revision: str | None = "0014"
branch_labels = None
depends_on = None

_OF_INCIDENT = "EXISTS (SELECT 1 FROM incidents i WHERE i.id = incident_id)"
_TO_ME = (
    "EXISTS (SELECT 1 FROM bulletin_targets t WHERE t.bulletin_id = bulletins.id "
    "AND vedette_sees(t.unit_id))"
)

# table -> (USING: which rows a scoped transaction sees, WITH CHECK: which rows it may write)
POLICIES: dict[str, tuple[str, str]] = {
    # bulletin_targets' own policy does not look at bulletins: no cycle between the two.
    "bulletins": (f"vedette_sees(unit_id) OR {_TO_ME}", "vedette_sees(unit_id)"),
    "bulletin_targets": ("vedette_sees(unit_id)", "vedette_sees(unit_id)"),
    "retrohunts": ("vedette_sees(owner_unit_id)", "vedette_sees(owner_unit_id)"),
    # incidents is under its own policy, so the sub-select sees only visible incidents.
    "incident_alerts": (_OF_INCIDENT, _OF_INCIDENT),
    "incident_tasks": (_OF_INCIDENT, _OF_INCIDENT),
    "incident_comments": (_OF_INCIDENT, _OF_INCIDENT),
    "dead_letters": (
        "EXISTS (SELECT 1 FROM units u WHERE u.name = dead_letters.unit AND vedette_sees(u.id))",
        "vedette_rls_bypass()",
    ),
}


def upgrade() -> None:
    """The policies and ``FORCE ROW LEVEL SECURITY`` (0008's functions and grants stay)."""
    if op.get_bind().dialect.name != "postgresql":
        return
    for table, (using, check) in POLICIES.items():
        op.execute(f"ALTER TABLE {table} ENABLE ROW LEVEL SECURITY")
        op.execute(f"ALTER TABLE {table} FORCE ROW LEVEL SECURITY")
        op.execute(
            f"CREATE POLICY vedette_unit_scope ON {table} USING ({using}) WITH CHECK ({check})"
        )


def downgrade() -> None:
    """Drop the policies."""
    if op.get_bind().dialect.name != "postgresql":
        return
    for table in POLICIES:
        op.execute(f"DROP POLICY IF EXISTS vedette_unit_scope ON {table}")
        op.execute(f"ALTER TABLE {table} NO FORCE ROW LEVEL SECURITY")
        op.execute(f"ALTER TABLE {table} DISABLE ROW LEVEL SECURITY")
