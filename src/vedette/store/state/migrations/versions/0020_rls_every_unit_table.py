"""Row-level security on every table whose rows belong to a unit (PostgreSQL only).

Migrations 0008, 0010, 0011, 0013 and 0015 put most unit-scoped tables under the unit-scope
policy (``vedette_sees``: a unit of the transaction's scope, or a system transaction of the
owner). The last ones get theirs here; tests/scaleout/test_rls.py reads the schema and fails
for any table with a unit column left without ``FORCE ROW LEVEL SECURITY``.

- ``users``, ``unit_stats``: the unit's own rows.
- ``ingest_ledger``: the unit named by the row (a name: through ``units``), as dead letters.
- ``retrohunt_tasks``: the tasks of a job the scope sees (its owner's), of units in the scope.
- ``critical_assets``: the unit's own, and read only, those of a unit the scope sees an alert
  of (an alert shared with it in an incident shows its priority from its own unit's assets).
- ``incident_shares``: a participant sees its own share; the incident's owner side (owner or
  origin unit in scope) sees and writes them all. The incidents and alerts policies read this
  table, so its policy reads the incident through ``vedette_owns_incident()``, a
  ``SECURITY DEFINER`` function, which breaks the cycle.
- ``notification_channels``: the unit's own. An event of a unit notifies the channels of the
  units above it, which the scope must not read (their webhook URLs and secrets): a scoped
  transaction lists the ones to notify through ``vedette_notify_channels()`` (definer: id,
  kinds and level only, for a unit of the scope or above it), and its ``outbox`` rows may
  point at a channel of its units or of the units above them; it reads back only those of its
  own channels.
- ``audit``: read, the records of the scope's units (and the centre's scope: the records of
  no unit). Appended, also records about a unit above the scope (an escalation hands the
  incident up) or owning an incident the scope sees (a participant's comment is the owner's
  incident's record). Never updated or deleted but by a system transaction. The chain head
  is read through ``vedette_audit_head()`` (definer: a hash, whatever its unit).

Definer functions run as the owner with the bypass set for their own statements only, and
check the caller's scope with ``vedette_in_scope()`` (the scope alone, never the bypass).

Revision ID: 0020
Revises: 0019
"""

from __future__ import annotations

from alembic import op

revision = "0020"
down_revision: str | None = "0019"
branch_labels = None
depends_on = None

_PLAIN = [
    # The transaction's scope alone (no bypass): for the definer functions, which run bypassed.
    """CREATE OR REPLACE FUNCTION vedette_in_scope(unit integer) RETURNS boolean
        LANGUAGE sql STABLE AS $$
        SELECT coalesce(unit = ANY (string_to_array(
            nullif(current_setting('vedette.unit_ids', true), ''), ',')::integer[]), false)
        $$""",
    # ``unit`` is one of the scope's units or above one of them.
    """CREATE OR REPLACE FUNCTION vedette_scope_below(unit integer) RETURNS boolean
        LANGUAGE sql STABLE AS $$
        WITH RECURSIVE down(id) AS (
            SELECT unit
            UNION SELECT u.id FROM units u JOIN down d ON u.parent_id = d.id
        )
        SELECT EXISTS (SELECT 1 FROM down WHERE vedette_in_scope(down.id))
        $$""",
]

# A definer function runs as the owner; it turns the bypass on for its own statements and
# back to the caller's value before it returns (a placeholder setting cannot be in a
# function's SET clause for a non-superuser owner, so the body sets it).
_DEFINER = """CREATE OR REPLACE FUNCTION {signature} RETURNS {returns}
    LANGUAGE plpgsql VOLATILE SECURITY DEFINER SET search_path = {schema}, pg_temp AS $$
    #variable_conflict use_column
    DECLARE
        was text := current_setting('vedette.bypass', true);
        {declare}
    BEGIN
        PERFORM set_config('vedette.bypass', 'on', true);
        {body}
        PERFORM set_config('vedette.bypass', coalesce(was, ''), true);
        RETURN {result};
    END
    $$"""

# name(signature) -> (returns, declare, body, result)
_DEFINERS: dict[str, tuple[str, str, str, str]] = {
    "vedette_owns_incident(p_incident integer)": (
        "boolean",
        "answer boolean;",
        """answer := EXISTS (SELECT 1 FROM incidents i WHERE i.id = p_incident
                          AND (vedette_in_scope(i.owner_unit_id)
                               OR vedette_in_scope(i.origin_unit_id)));""",
        "answer",
    ),
    "vedette_channel_unit(p_channel integer)": (
        "integer",
        "answer integer;",
        "answer := (SELECT c.unit_id FROM notification_channels c WHERE c.id = p_channel);",
        "answer",
    ),
    # Only for a unit of the scope or above it: id, kinds and level of the enabled channels
    # of that unit and the units above it (never their addresses or secrets).
    "vedette_notify_channels(p_unit integer)": (
        "TABLE (channel_id integer, channel_kinds json, channel_min_level varchar)",
        "",
        """RETURN QUERY
            WITH RECURSIVE up(id) AS (
                SELECT p_unit WHERE vedette_scope_below(p_unit)
                UNION SELECT u.parent_id FROM units u JOIN up ON u.id = up.id
                      WHERE u.parent_id IS NOT NULL
            )
            SELECT c.id, c.kinds, c.min_level::varchar FROM notification_channels c
            WHERE c.enabled AND c.unit_id IN (SELECT up.id FROM up)
            ORDER BY c.id;""",
        "",
    ),
    # Read after the caller's advisory lock: the newest record's hash, whatever its unit.
    "vedette_audit_head()": (
        "varchar",
        "answer varchar;",
        "answer := (SELECT a.hash FROM audit a ORDER BY a.id DESC LIMIT 1);",
        "answer",
    ),
}

_UNIT = "vedette_sees(unit_id)"
_NAMED = "EXISTS (SELECT 1 FROM units u WHERE u.name = ingest_ledger.unit AND vedette_sees(u.id))"
_JOB = "EXISTS (SELECT 1 FROM retrohunts r WHERE r.id = job_id)"
_SHARE = "vedette_rls_bypass() OR vedette_owns_incident(incident_id)"

# table -> (USING: which rows a scoped transaction sees, WITH CHECK: which rows it may write)
POLICIES: dict[str, tuple[str, str]] = {
    "users": (_UNIT, _UNIT),
    "unit_stats": (_UNIT, _UNIT),
    "ingest_ledger": (_NAMED, _NAMED),
    "retrohunt_tasks": (_JOB, f"{_JOB} AND {_UNIT}"),
    # alerts is under its own policy: the sub-select sees the scope's and shared alerts only.
    "critical_assets": (
        f"{_UNIT} OR EXISTS (SELECT 1 FROM alerts a WHERE a.unit_id = critical_assets.unit_id)",
        _UNIT,
    ),
    "incident_shares": (f"{_UNIT} OR {_SHARE}", _SHARE),
    "notification_channels": (_UNIT, _UNIT),
    # notification_channels is under its own policy: the sub-select sees the scope's only.
    "outbox": (
        "EXISTS (SELECT 1 FROM notification_channels c WHERE c.id = channel_id)",
        "vedette_rls_bypass() OR vedette_scope_below(vedette_channel_unit(channel_id))",
    ),
}

_AUDIT_READ = "vedette_sees(unit_id) OR (unit_id IS NULL AND vedette_sees_centre())"
# incidents is under its own policy: the sub-select sees the scope's and shared incidents.
_AUDIT_APPEND = (
    "vedette_rls_bypass() OR vedette_scope_below(unit_id)"
    " OR (unit_id IS NULL AND vedette_sees_centre())"
    " OR EXISTS (SELECT 1 FROM incidents i WHERE i.owner_unit_id = audit.unit_id)"
)
_AUDIT_POLICIES = {
    "vedette_audit_read": f"FOR SELECT USING ({_AUDIT_READ})",
    "vedette_audit_append": f"FOR INSERT WITH CHECK ({_AUDIT_APPEND})",
    "vedette_audit_system_update": "FOR UPDATE USING (vedette_rls_bypass())",
    "vedette_audit_system_delete": "FOR DELETE USING (vedette_rls_bypass())",
}
_DROPPED_FUNCTIONS = (
    "vedette_audit_head()",
    "vedette_notify_channels(integer)",
    "vedette_channel_unit(integer)",
    "vedette_owns_incident(integer)",
    "vedette_scope_below(integer)",
    "vedette_in_scope(integer)",
)


def upgrade() -> None:
    """The functions, then the policies and ``FORCE ROW LEVEL SECURITY``."""
    bind = op.get_bind()
    if bind.dialect.name != "postgresql":
        return
    schema = str(bind.exec_driver_sql("SELECT current_schema()").scalar_one())
    quoted = '"' + schema.replace('"', '""') + '"'
    for statement in _PLAIN:
        op.execute(statement)
    for signature, (returns, declare, body, result) in _DEFINERS.items():
        op.execute(
            _DEFINER.format(
                signature=signature,
                returns=returns,
                schema=quoted,
                declare=declare,
                body=body,
                result=result,
            )
        )
    for table, (using, check) in POLICIES.items():
        op.execute(f"ALTER TABLE {table} ENABLE ROW LEVEL SECURITY")
        op.execute(f"ALTER TABLE {table} FORCE ROW LEVEL SECURITY")
        op.execute(
            f"CREATE POLICY vedette_unit_scope ON {table} USING ({using}) WITH CHECK ({check})"
        )
    op.execute("ALTER TABLE audit ENABLE ROW LEVEL SECURITY")
    op.execute("ALTER TABLE audit FORCE ROW LEVEL SECURITY")
    for name, body in _AUDIT_POLICIES.items():
        op.execute(f"CREATE POLICY {name} ON audit {body}")


def downgrade() -> None:
    """Drop the policies and the functions."""
    if op.get_bind().dialect.name != "postgresql":
        return
    for name in _AUDIT_POLICIES:
        op.execute(f"DROP POLICY IF EXISTS {name} ON audit")
    for table in [*POLICIES, "audit"]:
        if table in POLICIES:
            op.execute(f"DROP POLICY IF EXISTS vedette_unit_scope ON {table}")
        op.execute(f"ALTER TABLE {table} NO FORCE ROW LEVEL SECURITY")
        op.execute(f"ALTER TABLE {table} DISABLE ROW LEVEL SECURITY")
    for function in _DROPPED_FUNCTIONS:
        op.execute(f"DROP FUNCTION IF EXISTS {function}")
