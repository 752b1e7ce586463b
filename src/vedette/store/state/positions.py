"""Named consumer positions and per-unit ingest counters, written in the pipeline's transaction.

Nothing here commits: the pipeline commits a position together with what it produced, so a
crash replays from the last committed position and neither loses nor doubles anything.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy import select
from sqlalchemy.orm import Session

from vedette.store.state.models import Position, Unit, UnitStats, as_utc


@dataclass(frozen=True, slots=True)
class SilentUnit:
    """A unit that sent events and then went quiet past its threshold."""

    unit_id: int
    name: str
    last_received_at: datetime
    silent_after_seconds: int


def get_position(session: Session, name: str) -> int:
    """The stored position ``name``, 0 when never set."""
    value = session.scalar(select(Position.value).where(Position.name == name))
    return int(value) if value is not None else 0


def set_position(session: Session, name: str, value: int) -> None:
    """Store position ``name`` (insert or update; flushed, not committed)."""
    row = session.get(Position, name, with_for_update=True)
    if row is None:
        session.add(Position(name=name, value=value))
    else:
        row.value = value
    session.flush()


def _stats(session: Session, unit_id: int) -> UnitStats:
    row = session.get(UnitStats, unit_id, with_for_update=True)
    if row is None:
        row = UnitStats(unit_id=unit_id, events_received=0, events_stored=0, silent_alerted=False)
        session.add(row)
    return row


def _later(current: datetime | None, new: datetime | None) -> datetime | None:
    if new is None:
        return current
    new = as_utc(new)
    return new if current is None or new > current else current


def add_stored(session: Session, counts: Mapping[int, tuple[int, datetime | None]]) -> None:
    """Add ``n`` stored events per unit id and keep the latest event time seen."""
    for unit_id, (n, last_event_at) in counts.items():
        row = _stats(session, unit_id)
        row.events_stored += n
        row.last_event_at = _later(row.last_event_at, last_event_at)
    session.flush()


def add_received(session: Session, counts: Mapping[int, tuple[int, datetime]]) -> None:
    """Add ``n`` received events per unit id at ``received_at``; a unit heard from again is
    no longer silent (its silence may raise a new alert later)."""
    for unit_id, (n, received_at) in counts.items():
        row = _stats(session, unit_id)
        row.events_received += n
        row.last_received_at = _later(row.last_received_at, received_at)
        row.silent_alerted = False
    session.flush()


set_received = add_received  # the name the server design notes use


def silent_units(session: Session, now: datetime) -> list[SilentUnit]:
    """Units with a silence threshold that have sent events, have been quiet longer than the
    threshold, and have not been alerted for it yet."""
    now = as_utc(now)
    rows = session.execute(
        select(Unit.id, Unit.name, Unit.silent_after_seconds, UnitStats.last_received_at)
        .join(UnitStats, UnitStats.unit_id == Unit.id)
        .where(
            Unit.silent_after_seconds.is_not(None),
            UnitStats.last_received_at.is_not(None),
            UnitStats.silent_alerted.is_(False),
        )
        .order_by(Unit.id)
    ).all()
    return [
        SilentUnit(unit_id=uid, name=name, last_received_at=last, silent_after_seconds=after)
        for uid, name, after, last in rows
        if after is not None and last is not None and now - last > timedelta(seconds=after)
    ]


def mark_silent_alerted(session: Session, unit_id: int) -> None:
    """Record that the unit's silence has been alerted (until it is heard from again)."""
    _stats(session, unit_id).silent_alerted = True
    session.flush()
