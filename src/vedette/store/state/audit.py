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
from dataclasses import dataclass
from datetime import UTC, date, datetime
from enum import Enum
from typing import Any

from sqlalchemy import insert, select, text
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


@dataclass(slots=True, frozen=True, kw_only=True)
class AuditEntry:
    """One record to append (see :func:`append_audits`)."""

    actor: str
    action: str
    object_type: str
    object_id: str | int
    unit_id: int | None
    before: dict[str, Any] | None
    after: dict[str, Any] | None


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
    prev = _chain_end(session)
    ids = _new_ids(session, 1)
    record = AuditRecord(
        id=ids[0] if ids else None,
        at=_aware(now or utcnow()),
        actor=actor,
        unit_id=unit_id,
        action=action,
        object_type=object_type,
        object_id=str(object_id),
        before=jsonable(before) if before is not None else None,
        after=jsonable(after) if after is not None else None,
        prev_hash=prev,
    )
    record.hash = _record_hash(record)
    session.add(record)
    session.flush()
    return record


def append_audits(
    session: Session, entries: Sequence[AuditEntry], *, now: datetime | None = None
) -> None:
    """Append records in order, chained to the trail's end, in the caller's transaction: one
    lock and one read of the chain's end for all (a storm of new alerts must not pay a round
    trip per record), then one executemany INSERT. The ids follow the chain, which
    :func:`verify_chain` walks: taken in order from the sequence on PostgreSQL, given in order
    by SQLite to rows an executemany inserts one after the other."""
    if not entries:
        return
    prev = _chain_end(session)
    ids = _new_ids(session, len(entries))
    at = _aware(now or utcnow())
    rows: list[dict[str, Any]] = []
    for n, entry in enumerate(entries):
        record = AuditRecord(
            at=at,
            actor=entry.actor,
            unit_id=entry.unit_id,
            action=entry.action,
            object_type=entry.object_type,
            object_id=str(entry.object_id),
            before=jsonable(entry.before) if entry.before is not None else None,
            after=jsonable(entry.after) if entry.after is not None else None,
            prev_hash=prev,
        )
        prev = _record_hash(record)
        row = {c: getattr(record, c) for c in _COLUMNS} | {"hash": prev}
        if ids:
            row["id"] = ids[n]
        rows.append(row)
    session.execute(insert(AuditRecord), rows)


_COLUMNS: tuple[str, ...] = (
    "at", "actor", "unit_id", "action", "object_type", "object_id", "before", "after", "prev_hash",
)  # fmt: skip


def _aware(moment: datetime) -> datetime:
    # Hash the time as the database will give it back (microseconds, UTC).
    return moment.astimezone(UTC) if moment.tzinfo else moment.replace(tzinfo=UTC)


def _chain_end(session: Session) -> str:
    """The last record's hash; appends are serialised from here to the transaction's end, on
    PostgreSQL by the advisory lock taken here, on SQLite by the write transaction held."""
    if session.get_bind().dialect.name == "postgresql":
        session.execute(text("SELECT pg_advisory_xact_lock(:key)"), {"key": _PG_LOCK_KEY})
        # Row-level security (migration 0020): a scoped transaction reads only its units'
        # records, so the chain's head comes from a definer function.
        prev = session.scalar(text("SELECT vedette_audit_head()"))
    else:
        prev = session.scalar(select(AuditRecord.hash).order_by(AuditRecord.id.desc()).limit(1))
    return str(prev or GENESIS)


def _new_ids(session: Session, count: int) -> list[int]:
    """PostgreSQL: ``count`` record ids, in order, taken under the chain's lock. A record may be
    about a unit the scoped transaction cannot read (the owner of an incident it takes part in),
    so the INSERT must not need RETURNING, which would read it back. SQLite: none needed."""
    if session.get_bind().dialect.name != "postgresql":
        return []
    ids = session.scalars(
        text("SELECT nextval(pg_get_serial_sequence('audit', 'id')) FROM generate_series(1, :n)"),
        {"n": count},
    )
    return sorted(int(i) for i in ids)


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
