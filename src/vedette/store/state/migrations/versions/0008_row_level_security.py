"""Row-level security on the unit-scoped tables (PostgreSQL only; a no-op on SQLite).

Each scoped table gets ``ENABLE`` and ``FORCE ROW LEVEL SECURITY`` and one policy: a row is
visible and writable when its unit is in the transaction's ``vedette.unit_ids`` setting (a
comma-separated list set with ``set_config(..., true)``, i.e. ``SET LOCAL``), or when the
transaction is a system one: ``vedette.bypass = 'on'`` **and** the current role is a member of
the role that ran this migration (the owner). Any role may set a custom setting, so the setting
alone grants nothing; a non-owner role (``vedette_app``, made here when the owner may create
roles) that sets it still sees only its scope, and without a scope it sees no row at all.

The audit trail is not under a policy: its records are one hash chain across units, and an
append reads the previous record whatever its unit; its reads are scoped in the repository.

Revision ID: 0008
Revises: 0007
"""

from __future__ import annotations

from alembic import op

revision = "0008"
down_revision: str | None = "0007"
branch_labels = None
depends_on = None

APP_ROLE = "vedette_app"
"""The group role the api's scoped sessions log in through (a member of it)."""

_SHARED = (
    "EXISTS (SELECT 1 FROM incident_shares s WHERE s.incident_id = {id} "
    "AND vedette_sees(s.unit_id))"
)
_ALERT_SHARED = (
    "EXISTS (SELECT 1 FROM incident_alerts ia JOIN incident_shares s "
    "ON s.incident_id = ia.incident_id WHERE ia.alert_id = alerts.id AND vedette_sees(s.unit_id))"
)

# table -> (USING: which rows a scoped transaction sees, WITH CHECK: which rows it may write)
POLICIES: dict[str, tuple[str, str]] = {
    # An alert shared in an incident is visible to the participants (read only).
    "alerts": (f"vedette_sees(unit_id) OR {_ALERT_SHARED}", "vedette_sees(unit_id)"),
    # alerts is itself under its policy, so the sub-select sees only visible alerts.
    "alert_comments": (
        "EXISTS (SELECT 1 FROM alerts a WHERE a.id = alert_id)",
        "EXISTS (SELECT 1 FROM alerts a WHERE a.id = alert_id)",
    ),
    "rule_exceptions": ("vedette_sees(unit_id)", "vedette_sees(unit_id)"),
    "tokens": ("vedette_sees(unit_id)", "vedette_sees(unit_id)"),
    "warnings": ("vedette_sees(unit_id)", "vedette_sees(unit_id)"),
    # The origin stays below every later owner, so an escalation passes its own check.
    "incidents": (
        "vedette_sees(owner_unit_id) OR vedette_sees(origin_unit_id) OR "
        + _SHARED.format(id="incidents.id"),
        "vedette_sees(owner_unit_id) OR vedette_sees(origin_unit_id) OR "
        + _SHARED.format(id="incidents.id"),
    ),
}

# Tables the api never writes: the app role may read them only.
_READ_ONLY = ("alembic_version", "positions", "partition_leases", "partition_members")


def _functions(owner: str) -> list[str]:
    quoted = owner.replace("'", "''")
    return [
        f"""CREATE OR REPLACE FUNCTION vedette_rls_bypass() RETURNS boolean
            LANGUAGE sql STABLE AS $$
            SELECT coalesce(current_setting('vedette.bypass', true), '') = 'on'
               AND pg_has_role(current_user, '{quoted}', 'MEMBER')
            $$""",
        """CREATE OR REPLACE FUNCTION vedette_sees(unit integer) RETURNS boolean
            LANGUAGE sql STABLE AS $$
            SELECT vedette_rls_bypass() OR coalesce(unit = ANY (string_to_array(
                nullif(current_setting('vedette.unit_ids', true), ''), ',')::integer[]), false)
            $$""",
    ]


_GRANTS = f"""
DO $$
BEGIN
  IF NOT EXISTS (SELECT 1 FROM pg_roles WHERE rolname = '{APP_ROLE}') THEN
    BEGIN
      CREATE ROLE {APP_ROLE} NOLOGIN;
    EXCEPTION WHEN insufficient_privilege THEN
      RAISE NOTICE 'cannot create role {APP_ROLE}: create it and grant it table rights';
    END;
  END IF;
  IF EXISTS (SELECT 1 FROM pg_roles WHERE rolname = '{APP_ROLE}') THEN
    EXECUTE format('GRANT USAGE ON SCHEMA %I TO {APP_ROLE}', current_schema());
    EXECUTE format('GRANT SELECT, INSERT, UPDATE, DELETE ON ALL TABLES IN SCHEMA %I
                    TO {APP_ROLE}', current_schema());
    EXECUTE format('GRANT USAGE, SELECT ON ALL SEQUENCES IN SCHEMA %I TO {APP_ROLE}',
                   current_schema());
    EXECUTE format('ALTER DEFAULT PRIVILEGES IN SCHEMA %I GRANT SELECT, INSERT, UPDATE, DELETE
                    ON TABLES TO {APP_ROLE}', current_schema());
    EXECUTE format('ALTER DEFAULT PRIVILEGES IN SCHEMA %I GRANT USAGE, SELECT
                    ON SEQUENCES TO {APP_ROLE}', current_schema());
    REVOKE INSERT, UPDATE, DELETE ON {", ".join(_READ_ONLY)} FROM {APP_ROLE};
  END IF;
END
$$"""


def upgrade() -> None:
    """Functions, policies and ``FORCE ROW LEVEL SECURITY``; the app role and its grants."""
    bind = op.get_bind()
    if bind.dialect.name != "postgresql":
        return
    owner = bind.exec_driver_sql("SELECT current_user").scalar_one()
    for statement in _functions(str(owner)):
        op.execute(statement)
    for table, (using, check) in POLICIES.items():
        op.execute(f"ALTER TABLE {table} ENABLE ROW LEVEL SECURITY")
        op.execute(f"ALTER TABLE {table} FORCE ROW LEVEL SECURITY")
        op.execute(
            f"CREATE POLICY vedette_unit_scope ON {table} USING ({using}) WITH CHECK ({check})"
        )
    op.execute(_GRANTS)


def downgrade() -> None:
    """Drop the policies and functions (the role and its grants stay)."""
    bind = op.get_bind()
    if bind.dialect.name != "postgresql":
        return
    for table in POLICIES:
        op.execute(f"DROP POLICY IF EXISTS vedette_unit_scope ON {table}")
        op.execute(f"ALTER TABLE {table} NO FORCE ROW LEVEL SECURITY")
        op.execute(f"ALTER TABLE {table} DISABLE ROW LEVEL SECURITY")
    op.execute("DROP FUNCTION IF EXISTS vedette_sees(integer)")
    op.execute("DROP FUNCTION IF EXISTS vedette_rls_bypass()")
