"""Dead letters: spool batches the worker failed on several times, set aside with the reason.

A batch whose decoding or detection raises again and again would hold its spool (or partition)
back for ever. After ``max_attempts`` the worker records it here and moves on; the batch's
records are kept (compressed) so an operator can inspect or resend them. One row per
``(source, seq)``: a worker that replays after a crash and fails again does not add a second.
``source`` is the worker's detect position name (``detect`` embedded, ``detect:p3`` scale-out).
"""

from __future__ import annotations

import zlib
from datetime import datetime
from typing import Any

from sqlalchemy import (
    BigInteger,
    Integer,
    LargeBinary,
    String,
    Text,
    UniqueConstraint,
    exists,
    or_,
    select,
)
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Mapped, Session, mapped_column
from sqlalchemy.sql.elements import ColumnElement

from vedette.store.state.models import Base, Unit, utcnow
from vedette.store.state.scope import Scope

__all__ = ["DeadLetter", "list_dead_letters", "record_dead_letter"]


class DeadLetter(Base):
    """One batch set aside after repeated failures."""

    __tablename__ = "dead_letters"
    __table_args__ = (UniqueConstraint("source", "seq"),)
    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    source: Mapped[str] = mapped_column(String(64))
    seq: Mapped[int] = mapped_column(BigInteger)
    unit: Mapped[str] = mapped_column(String(200), index=True)
    kind: Mapped[str] = mapped_column(String(32))
    records: Mapped[int] = mapped_column(Integer)
    attempts: Mapped[int] = mapped_column(Integer)
    reason: Mapped[str] = mapped_column(Text)
    payload: Mapped[bytes] = mapped_column(LargeBinary)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)


def record_dead_letter(
    session: Session,
    *,
    source: str,
    seq: int,
    unit: str,
    kind: str,
    records: list[bytes],
    attempts: int,
    reason: str,
) -> bool:
    """Set a batch aside; False when it already was (same source and seq)."""
    if session.scalar(
        select(DeadLetter.id).where(DeadLetter.source == source, DeadLetter.seq == seq)
    ):
        return False
    row = DeadLetter(
        source=source,
        seq=seq,
        unit=unit,
        kind=kind,
        records=len(records),
        attempts=attempts,
        reason=reason[:4000],
        payload=zlib.compress(b"\n".join(records)),
    )
    try:
        with session.begin_nested():
            session.add(row)
    except IntegrityError:
        return False
    return True


def list_dead_letters(session: Session, scope: Scope, *, limit: int = 100) -> list[dict[str, Any]]:
    """The dead letters of the caller's units, newest first (without their payload); the
    centre's scope (the root unit) also sees those of units missing from the store."""
    names = set(session.scalars(select(Unit.name).where(Unit.id.in_(scope.unit_ids))))
    mine: ColumnElement[bool] = DeadLetter.unit.in_(names)
    root = session.scalar(select(Unit.id).where(Unit.parent_id.is_(None)))
    if scope.covers(root):
        mine = or_(mine, ~exists().where(Unit.name == DeadLetter.unit))
    rows = session.scalars(
        select(DeadLetter).where(mine).order_by(DeadLetter.id.desc()).limit(limit)
    )
    return [
        {
            "id": r.id,
            "source": r.source,
            "seq": r.seq,
            "unit": r.unit,
            "kind": r.kind,
            "records": r.records,
            "attempts": r.attempts,
            "reason": r.reason,
            "created_at": r.created_at.isoformat(),
        }
        for r in rows
    ]
