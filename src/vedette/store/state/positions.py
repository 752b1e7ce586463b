"""Named consumer positions and per-unit ingest counters, written in the pipeline's transaction.

Nothing here commits: the pipeline commits a position together with what it produced, so a
crash replays from the last committed position and neither loses nor doubles anything.

Events received are also counted per unit in ten-second buckets of their arrival time
(``ingest_rates``, the last hour kept), so events/s per unit can be read by any process over the
same store: the api of a scale-out deployment as well as the embedded centre.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Final

from sqlalchemy import delete, select
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.orm import Session

from vedette.store.state.models import IngestRate, Position, Unit, UnitStats, as_utc

RATE_BUCKET_SECONDS: Final = 10
RATE_KEEP_SECONDS: Final = 3600
RATE_PRUNE_EVERY: Final = 300
"""Buckets older than :data:`RATE_KEEP_SECONDS` are deleted by the writes of one bucket in
this many seconds' worth (a few deletes every five minutes, not one per commit)."""
RATE_WINDOWS: Final = (60, 300)
"""The overview's events/s: over the last minute and the last five minutes."""


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


def stored_per_unit(session: Session) -> dict[str, int]:
    """Events stored per unit name since the unit began (units that stored none are left out)."""
    rows = session.execute(
        select(Unit.name, UnitStats.events_stored).join(UnitStats, UnitStats.unit_id == Unit.id)
    ).all()
    return {name: int(count) for name, count in rows if count}


def add_received(session: Session, counts: Mapping[int, tuple[int, datetime]]) -> None:
    """Add ``n`` received events per unit id at ``received_at``; a unit heard from again is
    no longer silent (its silence may raise a new alert later)."""
    for unit_id, (n, received_at) in counts.items():
        row = _stats(session, unit_id)
        row.events_received += n
        row.last_received_at = _later(row.last_received_at, received_at)
        row.silent_alerted = False
    session.flush()
    _add_rates(session, counts)


def _bucket(moment: datetime) -> int:
    seconds = int(as_utc(moment).timestamp())
    return seconds - seconds % RATE_BUCKET_SECONDS


def _add_rates(session: Session, counts: Mapping[int, tuple[int, datetime]]) -> None:
    """Add each unit's count to the bucket of its arrival time (an upsert: two workers that
    briefly share a unit while a partition changes hands add up instead of colliding)."""
    rows = [
        {"unit_id": unit_id, "bucket": _bucket(received_at), "events": n}
        for unit_id, (n, received_at) in counts.items()
        if n > 0
    ]
    if not rows:
        return
    key = [IngestRate.unit_id, IngestRate.bucket]
    if session.get_bind().dialect.name == "postgresql":
        on_pg = postgresql.insert(IngestRate).values(rows)
        session.execute(
            on_pg.on_conflict_do_update(
                index_elements=key, set_={"events": IngestRate.events + on_pg.excluded.events}
            )
        )
    else:
        on_lite = sqlite.insert(IngestRate).values(rows)
        session.execute(
            on_lite.on_conflict_do_update(
                index_elements=key, set_={"events": IngestRate.events + on_lite.excluded.events}
            )
        )
    newest = max(int(row["bucket"]) for row in rows)
    if newest % RATE_PRUNE_EVERY == 0:
        session.execute(delete(IngestRate).where(IngestRate.bucket < newest - RATE_KEEP_SECONDS))


def ingest_rates(
    session: Session,
    unit_ids: Iterable[int],
    now: datetime,
    windows: Sequence[int] = RATE_WINDOWS,
) -> dict[int, tuple[float, ...]]:
    """Events/s each of ``unit_ids`` received over each of ``windows`` (seconds) up to
    ``now``: the events of the buckets from the one holding ``now - window`` on, over the time
    since that bucket began. Units with nothing in the window are 0."""
    ids = sorted(set(unit_ids))
    now_seconds = as_utc(now).timestamp()
    starts = [_bucket(as_utc(now) - timedelta(seconds=w)) for w in windows]
    totals = {unit_id: [0] * len(windows) for unit_id in ids}
    if ids and starts:
        rows = session.execute(
            select(IngestRate.unit_id, IngestRate.bucket, IngestRate.events).where(
                IngestRate.unit_id.in_(ids), IngestRate.bucket >= min(starts)
            )
        ).all()
        for unit_id, bucket, events in rows:
            for index, start in enumerate(starts):
                if bucket >= start:
                    totals[unit_id][index] += int(events)
    return {
        unit_id: tuple(
            total / max(now_seconds - start, 1.0) for total, start in zip(sums, starts, strict=True)
        )
        for unit_id, sums in totals.items()
    }


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
