"""The state store: units, users, tokens, alerts, exceptions, audit trail, positions.

SQLAlchemy 2 over SQLite (default) or PostgreSQL, with Alembic migrations run by
:func:`open_state`. Every repository function takes the session first and, where a caller's
rights matter, the caller's :class:`Scope` next; nothing here imports the web framework.
"""

from __future__ import annotations

# Tables defined beside their service functions, imported so that Base.metadata holds them.
from vedette.store.state import (  # noqa: F401
    assets,
    bulletins,
    deadletters,
    duties,
    incidents,
    ingest_ledger,
    leases,
    retrohunt_tasks,
    retrohunts,
    rule_switches,
    warnings,
)
from vedette.store.state.accounts import (
    AuthError,
    add_token,
    add_user,
    authenticate_password,
    authenticate_token,
    list_tokens,
    mark_token_used,
    revoke_token,
)
from vedette.store.state.alerts import (
    add_comment,
    fingerprint,
    get_alert,
    list_alerts,
    list_comments,
    record_detection,
    update_alert,
)
from vedette.store.state.audit import append_audit, list_audit, verify_chain
from vedette.store.state.db import SchemaError, SchemaTooNew, StateDB, open_state
from vedette.store.state.exceptions import (
    ActiveException,
    active_exceptions,
    add_exception,
    delete_exception,
    list_exceptions,
    matches,
)
from vedette.store.state.positions import (
    SilentUnit,
    add_received,
    add_stored,
    get_position,
    mark_silent_alerted,
    set_position,
    set_received,
    silent_units,
)
from vedette.store.state.scope import Forbidden, Invalid, NotFound, Principal, Role, Scope
from vedette.store.state.units import (
    UnitInfo,
    add_unit,
    list_units,
    scope_for,
    scoped_unit,
    set_silent_after,
    unit_by_name,
    units_below,
)

__all__ = [
    "ActiveException",
    "AuthError",
    "Forbidden",
    "Invalid",
    "NotFound",
    "Principal",
    "Role",
    "SchemaError",
    "SchemaTooNew",
    "Scope",
    "SilentUnit",
    "StateDB",
    "UnitInfo",
    "active_exceptions",
    "add_comment",
    "add_exception",
    "add_received",
    "add_stored",
    "add_token",
    "add_unit",
    "add_user",
    "append_audit",
    "authenticate_password",
    "authenticate_token",
    "delete_exception",
    "fingerprint",
    "get_alert",
    "get_position",
    "list_alerts",
    "list_audit",
    "list_comments",
    "list_exceptions",
    "list_tokens",
    "list_units",
    "mark_silent_alerted",
    "mark_token_used",
    "matches",
    "open_state",
    "record_detection",
    "revoke_token",
    "scope_for",
    "scoped_unit",
    "set_position",
    "set_received",
    "set_silent_after",
    "silent_units",
    "unit_by_name",
    "units_below",
    "update_alert",
    "verify_chain",
]
