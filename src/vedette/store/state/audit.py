"""The append-only audit trail: who did what, when, before and after, hash-chained.

Each record's ``hash`` is ``sha256(prev_hash + canonical JSON of the record)``, the first
record's ``prev_hash`` being 64 zeros, so editing, removing or reordering a record shows in
:func:`verify_chain`. Appends share the caller's transaction (the write and its record commit or
fail together) and are serialised so two writers never fork the chain: on PostgreSQL by a
transaction-scoped advisory lock, on SQLite by the database write lock (``BEGIN IMMEDIATE``).
There is deliberately no update or delete function.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Sequence
from datetime import UTC, date, datetime
from enum import Enum
from typing import Any

from sqlalchemy import select, text
from sqlalchemy.orm import Session

from vedette.store.state.models import AuditRecord, utcnow
from vedette.store.state.scope import Scope, require

GENESIS = "0" * 64
# Any fixed number: the key of the advisory lock that serialises appends on PostgreSQL.
_PG_LOCK_KEY = 0x7665646574746501


def jsonable(value: Any) -> Any:
    """``value`` with datetimes as ISO text and enums as values, ready for a JSON column."""
    if isinstance(value, datetime):
        aware = value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)
        return aware.isoformat()
    if isinstance(value, date):
        return value.isoformat()
    if isinstance(value, Enum):
        return value.value
    if isinstance(value, dict):
        return {str(k): jsonable(v) for k, v in value.items()}
    if isinstance(value, list | tuple | set | frozenset):
        return [jsonable(v) for v in value]
    return value


def canonical(value: Any) -> str:
    """Canonical JSON: sorted keys, no spaces, UTF-8 text."""
    return json.dumps(value, sort_keys=True, separators=(",", ":"), ensure_ascii=False)


def _record_hash(record: AuditRecord) -> str:
    body = {
        "at": jsonable(record.at),
        "actor": record.actor,
        "unit_id": record.unit_id,
        "action": record.action,
        "object_type": record.object_type,
        "object_id": record.object_id,
        "before": record.before,
        "after": record.after,
    }
    return hashlib.sha256((record.prev_hash + canonical(body)).encode()).hexdigest()


def append_audit(
    session: Session,
    *,
    actor: str,
    action: str,
    object_type: str,
    object_id: str | int,
    unit_id: int | None,
    before: dict[str, Any] | None,
    after: dict[str, Any] | None,
    now: datetime | None = None,
) -> AuditRecord:
    """Append one record in the caller's transaction (flushed, not committed)."""
    record_id: int | None = None
    if session.get_bind().dialect.name == "postgresql":
        session.execute(text("SELECT pg_advisory_xact_lock(:key)"), {"key": _PG_LOCK_KEY})
        # Row-level security (migration 0020): a scoped transaction reads only its units'
        # records, so the chain's head comes from a definer function; and its record may be
        # about a unit it cannot read (the owner of an incident it takes part in), so the id
        # is taken first and the INSERT needs no RETURNING (which would have to read it back).
        prev = session.scalar(text("SELECT vedette_audit_head()"))
        record_id = session.scalar(text("SELECT nextval(pg_get_serial_sequence('audit', 'id'))"))
    else:
        prev = session.scalar(select(AuditRecord.hash).order_by(AuditRecord.id.desc()).limit(1))
    record = AuditRecord(
        id=record_id,
        at=now or utcnow(),
        actor=actor,
        unit_id=unit_id,
        action=action,
        object_type=object_type,
        object_id=str(object_id),
        before=jsonable(before) if before is not None else None,
        after=jsonable(after) if after is not None else None,
        prev_hash=prev or GENESIS,
    )
    # Hash the time as the database will give it back (microseconds, UTC).
    record.at = record.at.astimezone(UTC) if record.at.tzinfo else record.at.replace(tzinfo=UTC)
    record.hash = _record_hash(record)
    session.add(record)
    session.flush()
    return record


def verify_chain(session: Session, *, batch: int = 1000) -> tuple[bool, int | None]:
    """Walk the trail in id order; ``(True, None)`` when intact, else ``(False, first bad id)``."""
    prev = GENESIS
    last_id = 0
    while True:
        rows = session.scalars(
            select(AuditRecord)
            .where(AuditRecord.id > last_id)
            .order_by(AuditRecord.id)
            .limit(batch)
            .execution_options(populate_existing=True)
        ).all()
        if not rows:
            return True, None
        for row in rows:
            if row.prev_hash != prev or _record_hash(row) != row.hash:
                return False, row.id
            prev = row.hash
            last_id = row.id


def list_audit(
    session: Session, scope: Scope, *, limit: int = 100, before_id: int | None = None
) -> Sequence[AuditRecord]:
    """Newest records about the caller's units (admins only)."""
    require(scope.can_admin(), "read the audit trail")
    query = select(AuditRecord).where(AuditRecord.unit_id.in_(scope.unit_ids))
    if before_id is not None:
        query = query.where(AuditRecord.id < before_id)
    return session.scalars(query.order_by(AuditRecord.id.desc()).limit(max(1, limit))).all()
