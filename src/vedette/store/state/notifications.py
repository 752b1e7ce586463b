"""Notification channels and the outbox: what is to be sent where, kept with the state.

A notification is an outbox row written in the same transaction as the object it tells of (an
alert, an incident, a warning, a bulletin), one row per channel that wants it: a channel of a
unit takes the objects of that unit and of every unit below, at or above its minimum level,
of the kinds it lists. The dispatcher claims due rows (a lease moves ``next_attempt_at`` on),
sends them outside any transaction, then marks each sent, or failed with its error and the
next try, in its own transaction. Nothing is deleted when it fails: a row waits until it is
sent or its channel is deleted.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any, Final, cast

from sqlalchemy import Table, func, insert, select, text
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from vedette.events import LEVELS
from vedette.store.state.audit import append_audit, jsonable
from vedette.store.state.channel_config import (
    CHANNEL_KINDS,
    NOTIFY_KINDS,
    ChannelConfigError,
    lease_seconds,
    parse_config,
)
from vedette.store.state.db import SCOPED
from vedette.store.state.models import (
    Alert,
    NotificationChannel,
    OutboxRow,
    Unit,
    as_utc,
    utcnow,
)
from vedette.store.state.scope import Invalid, NotFound, Scope, require

CHANNEL_NAME: Final = re.compile(r"[A-Za-z0-9_.-]{1,128}")
MAX_ERROR_CHARS: Final = 2000


@dataclass(frozen=True, slots=True)
class ChannelInfo:
    """A channel as listed (never its secret), with its outbox counts."""

    id: int
    unit: str
    kind: str
    name: str
    config: dict[str, Any]
    secret_set: bool
    min_level: str
    kinds: list[str]
    enabled: bool
    created_at: datetime
    pending: int
    failing: int
    sent: int


@dataclass(frozen=True, slots=True)
class OutboxInfo:
    """An outbox row as listed: what, where, how many tries, the last error."""

    id: int
    channel: str
    kind: str
    object_type: str
    object_id: str
    created_at: datetime
    attempts: int
    next_attempt_at: datetime
    sent_at: datetime | None
    last_error: str | None


@dataclass(frozen=True, slots=True)
class Delivery:
    """A claimed outbox row with everything a sender needs."""

    id: int
    channel_id: int
    channel_name: str
    channel_kind: str
    config: dict[str, Any]
    secret: str | None
    kind: str
    object_type: str
    object_id: str
    payload: dict[str, Any]
    attempts: int
    created_at: datetime


def level_rank(level: str) -> int:
    """Order of a level (unknown levels rank lowest, so they never pass a threshold by accident)."""
    return LEVELS.index(level) if level in LEVELS else -1


def _check_channel(kind: str, name: str, config: dict[str, Any], min_level: str,
                   kinds: Sequence[str]) -> None:  # fmt: skip
    if kind not in CHANNEL_KINDS:
        raise Invalid(f"channel kind must be one of {', '.join(CHANNEL_KINDS)}")
    if not CHANNEL_NAME.fullmatch(name):
        raise Invalid(f"channel name {name!r}: use 1-128 of A-Z a-z 0-9 _ . -")
    if min_level not in LEVELS:
        raise Invalid(f"min_level must be one of {', '.join(LEVELS)}")
    if not kinds or any(k not in NOTIFY_KINDS for k in kinds):
        raise Invalid(f"kinds must be one or more of {', '.join(NOTIFY_KINDS)}")
    try:
        parse_config(kind, config)
    except ChannelConfigError as exc:
        raise Invalid(f"{kind} channel: {exc}") from None


def add_channel(
    session: Session,
    scope: Scope | None,
    *,
    unit: str,
    kind: str,
    name: str,
    config: dict[str, Any],
    secret: str | None = None,
    min_level: str = "high",
    kinds: Sequence[str] = ("alert", "incident", "warning", "bulletin"),
    enabled: bool = True,
    actor: str | None = None,
) -> NotificationChannel:
    """Add a channel to ``unit``; admins of the unit (``scope=None``: the local operator)."""
    row = session.scalar(select(Unit).where(Unit.name == unit))
    if row is None or (scope is not None and not scope.covers(row.id)):
        raise NotFound(f"no unit {unit!r}")
    if scope is not None:
        require(scope.can_admin(), "manage notification channels")
    _check_channel(kind, name, config, min_level, kinds)
    if session.scalar(select(NotificationChannel.id).where(NotificationChannel.name == name)):
        raise Invalid(f"channel {name!r} exists")
    channel = NotificationChannel(
        unit_id=row.id,
        kind=kind,
        name=name,
        config=jsonable(config),
        secret=secret,
        min_level=min_level,
        kinds=list(dict.fromkeys(kinds)),
        enabled=enabled,
    )
    try:
        # Names are unique across units: under row-level security the check above sees the
        # scope's channels only, and the index refuses a name another unit took.
        with session.begin_nested():
            session.add(channel)
    except IntegrityError:
        raise Invalid(f"channel {name!r} exists") from None
    append_audit(
        session,
        actor=actor or (scope.actor if scope else "system"),
        action="channel.add",
        object_type="channel",
        object_id=channel.id,
        unit_id=row.id,
        before=None,
        # The secret never goes to the audit trail.
        after={
            "name": name,
            "kind": kind,
            "config": channel.config,
            "min_level": min_level,
            "kinds": channel.kinds,
            "enabled": enabled,
        },
    )
    return channel


def _scoped_channel(session: Session, scope: Scope | None, channel_id: int) -> NotificationChannel:
    channel = session.get(NotificationChannel, channel_id)
    if channel is None or (scope is not None and not scope.covers(channel.unit_id)):
        raise NotFound(f"no channel {channel_id}")
    if scope is not None:
        require(scope.can_admin(), "manage notification channels")
    return channel


def delete_channel(
    session: Session, scope: Scope | None, channel_id: int, *, actor: str | None = None
) -> int:
    """Delete a channel and its unsent notifications; returns how many were dropped."""
    channel = _scoped_channel(session, scope, channel_id)
    unsent = session.query(OutboxRow).filter(
        OutboxRow.channel_id == channel.id, OutboxRow.sent_at.is_(None)
    )
    dropped = unsent.count()
    session.query(OutboxRow).filter(OutboxRow.channel_id == channel.id).delete()
    append_audit(
        session,
        actor=actor or (scope.actor if scope else "system"),
        action="channel.delete",
        object_type="channel",
        object_id=channel.id,
        unit_id=channel.unit_id,
        before={"name": channel.name, "kind": channel.kind},
        after={"unsent_dropped": dropped},
    )
    session.delete(channel)
    session.flush()
    return dropped


def list_channels(session: Session, scope: Scope | None) -> list[ChannelInfo]:
    """The channels of the caller's units, by name, with pending, failing and sent counts."""
    query = select(NotificationChannel, Unit.name).join(
        Unit, Unit.id == NotificationChannel.unit_id
    )
    if scope is not None:
        require(scope.can_admin(), "manage notification channels")
        query = query.where(NotificationChannel.unit_id.in_(scope.unit_ids))
    rows = session.execute(query.order_by(NotificationChannel.name)).all()
    counts: dict[tuple[int, str], int] = {}
    ids = [channel.id for channel, _ in rows]
    if ids:
        for channel_id, sent, failing, n in session.execute(
            select(
                OutboxRow.channel_id,
                OutboxRow.sent_at.is_not(None),
                OutboxRow.last_error.is_not(None),
                func.count(),
            )
            .where(OutboxRow.channel_id.in_(ids))
            .group_by(
                OutboxRow.channel_id,
                OutboxRow.sent_at.is_not(None),
                OutboxRow.last_error.is_not(None),
            )
        ):
            state = "sent" if sent else ("failing" if failing else "pending")
            counts[(channel_id, state)] = counts.get((channel_id, state), 0) + int(n)
    return [
        ChannelInfo(
            id=channel.id,
            unit=unit,
            kind=channel.kind,
            name=channel.name,
            config=dict(channel.config),
            secret_set=bool(channel.secret),
            min_level=channel.min_level,
            kinds=list(channel.kinds),
            enabled=channel.enabled,
            created_at=channel.created_at,
            # Pending counts every unsent row; failing is the part of it that has failed.
            pending=counts.get((channel.id, "pending"), 0) + counts.get((channel.id, "failing"), 0),
            failing=counts.get((channel.id, "failing"), 0),
            sent=counts.get((channel.id, "sent"), 0),
        )
        for channel, unit in rows
    ]


def list_outbox(
    session: Session, scope: Scope | None, *, failing_only: bool = False, limit: int = 100
) -> list[OutboxInfo]:
    """Unsent notifications of the caller's channels, oldest first (``failing_only``: with an
    error)."""
    query = (
        select(OutboxRow, NotificationChannel.name)
        .join(NotificationChannel, NotificationChannel.id == OutboxRow.channel_id)
        .where(OutboxRow.sent_at.is_(None))
    )
    if scope is not None:
        require(scope.can_admin(), "manage notification channels")
        query = query.where(NotificationChannel.unit_id.in_(scope.unit_ids))
    if failing_only:
        query = query.where(OutboxRow.last_error.is_not(None))
    rows = session.execute(query.order_by(OutboxRow.id).limit(max(1, min(limit, 1000)))).all()
    return [
        OutboxInfo(
            id=row.id,
            channel=name,
            kind=row.kind,
            object_type=row.object_type,
            object_id=row.object_id,
            created_at=row.created_at,
            attempts=row.attempts,
            next_attempt_at=row.next_attempt_at,
            sent_at=row.sent_at,
            last_error=row.last_error,
        )
        for row, name in rows
    ]


# -- the producers' side: called inside the transaction that creates the object ---------------


def _units_up(session: Session, unit_id: int) -> set[int]:
    parents = {unit: parent for unit, parent in session.execute(select(Unit.id, Unit.parent_id))}
    found: set[int] = set()
    current: int | None = unit_id
    while current is not None and current not in found:
        found.add(current)
        current = parents.get(current)
    return found


def enqueue(
    session: Session,
    *,
    kind: str,
    unit_id: int,
    level: str,
    object_type: str,
    object_id: int | str,
    payload: dict[str, Any],
    now: datetime | None = None,
) -> int:
    """One outbox row per enabled channel that wants this object, written in the caller's
    transaction (never committed here).

    Call it in the transaction that creates the object, so both are committed or neither.
    Returns how many rows were written.
    """
    if kind not in NOTIFY_KINDS:
        raise Invalid(f"notification kind must be one of {', '.join(NOTIFY_KINDS)}")
    rank = level_rank(level)
    targets = [
        channel_id
        for channel_id, kinds, min_level in _channels_up(session, unit_id)
        if kind in kinds and rank >= level_rank(min_level)
    ]
    if not targets:
        return 0
    now = as_utc(now) if now else utcnow()
    body = jsonable(payload)
    # A Core INSERT without RETURNING: under row-level security a scoped transaction may write
    # a row for a channel of a unit above it but not read it back (migration 0020).
    session.execute(
        insert(cast(Table, OutboxRow.__table__)),
        [
            {
                "channel_id": channel_id,
                "kind": kind,
                "object_type": object_type,
                "object_id": str(object_id),
                "payload": body,
                "created_at": now,
                "attempts": 0,
                "next_attempt_at": now,
            }
            for channel_id in targets
        ],
    )
    return len(targets)


def _channels_up(session: Session, unit_id: int) -> list[tuple[int, list[Any], str]]:
    """``(id, kinds, min_level)`` of the enabled channels of the unit and the units above it."""
    if session.info.get(SCOPED):
        # The scope may not read the channels of the units above it (row-level security):
        # the definer function gives what a notification needs of them, nothing more.
        rows = session.execute(
            text(
                "SELECT channel_id, channel_kinds, channel_min_level"
                " FROM vedette_notify_channels(:unit)"
            ),
            {"unit": unit_id},
        ).all()
        return [(int(r[0]), list(r[1] or []), str(r[2])) for r in rows]
    channels = list(session.scalars(select(NotificationChannel).where(NotificationChannel.enabled)))
    if not channels:
        return []
    units = _units_up(session, unit_id)
    return [(c.id, list(c.kinds), c.min_level) for c in channels if c.unit_id in units]


def alert_payload(alert: Alert, unit: str) -> dict[str, Any]:
    """What a notification tells of an alert (its sample event stays in the centre)."""
    return {
        "type": "alert",
        "id": alert.id,
        "unit": unit,
        "rule_id": alert.rule_id,
        "rule_title": alert.rule_title,
        "level": alert.level,
        "alert_kind": alert.kind,
        "host": alert.host,
        "count": alert.count,
        "first_seen": alert.first_seen,
        "last_seen": alert.last_seen,
        "attack": alert.attack,
        "observables": alert.observables,
        "matched": alert.matched,
    }


def enqueue_for_alert(session: Session, alert: Alert) -> int:
    """Notify the channels that want a newly created alert, in the alert's own transaction."""
    # The common case (no channel at all) costs one indexed read per new alert.
    if session.scalar(select(NotificationChannel.id).where(NotificationChannel.enabled)) is None:
        return 0
    unit = session.scalar(select(Unit.name).where(Unit.id == alert.unit_id)) or str(alert.unit_id)
    return enqueue(
        session,
        kind="alert",
        unit_id=alert.unit_id,
        level=alert.level,
        object_type="alert",
        object_id=alert.id,
        payload=alert_payload(alert, unit),
    )


# -- the dispatcher's side ---------------------------------------------------------------------


def due_count(session: Session, now: datetime) -> int:
    """How many unsent rows are due now (a cheap read before taking the write lock)."""
    return int(
        session.scalar(
            select(func.count())
            .select_from(OutboxRow)
            .where(OutboxRow.sent_at.is_(None), OutboxRow.next_attempt_at <= as_utc(now))
        )
        or 0
    )


def claim_due(session: Session, now: datetime, *, limit: int = 50) -> list[Delivery]:
    """Claim up to ``limit`` due rows: each one's ``next_attempt_at`` moves past its lease, so
    another dispatcher skips it and a crash mid-send makes it due again later."""
    now = as_utc(now)
    rows = session.execute(
        select(OutboxRow, NotificationChannel)
        .join(NotificationChannel, NotificationChannel.id == OutboxRow.channel_id)
        .where(OutboxRow.sent_at.is_(None), OutboxRow.next_attempt_at <= now)
        .order_by(OutboxRow.next_attempt_at, OutboxRow.id)
        .limit(limit)
        .with_for_update(skip_locked=True, of=OutboxRow)
    ).all()
    claimed: list[Delivery] = []
    for row, channel in rows:
        try:
            lease = lease_seconds(parse_config(channel.kind, channel.config))
        except ChannelConfigError:
            lease = 60.0
        row.next_attempt_at = now + timedelta(seconds=lease)
        claimed.append(
            Delivery(
                id=row.id,
                channel_id=channel.id,
                channel_name=channel.name,
                channel_kind=channel.kind,
                config=dict(channel.config),
                secret=channel.secret,
                kind=row.kind,
                object_type=row.object_type,
                object_id=row.object_id,
                payload=dict(row.payload),
                attempts=row.attempts,
                created_at=row.created_at,
            )
        )
    session.flush()
    return claimed


def mark_sent(session: Session, outbox_id: int, now: datetime | None = None) -> bool:
    """Record that the receiver acknowledged; False when the row was gone or already sent."""
    row = session.get(OutboxRow, outbox_id)
    if row is None or row.sent_at is not None:
        return False
    row.sent_at = as_utc(now) if now else utcnow()
    row.attempts += 1
    row.last_error = None
    session.flush()
    return True


def mark_failed(
    session: Session, outbox_id: int, error: str, next_attempt_at: datetime
) -> int | None:
    """Record a failed try and when to try again; the row's attempt count, or None if gone."""
    row = session.get(OutboxRow, outbox_id)
    if row is None or row.sent_at is not None:
        return None
    row.attempts += 1
    row.last_error = error[:MAX_ERROR_CHARS]
    row.next_attempt_at = as_utc(next_attempt_at)
    session.flush()
    return row.attempts


def defer(session: Session, outbox_ids: Sequence[int], until: datetime) -> None:
    """Put claimed rows back for ``until`` without counting a try (their channel just failed)."""
    if outbox_ids:
        session.query(OutboxRow).filter(
            OutboxRow.id.in_(list(outbox_ids)), OutboxRow.sent_at.is_(None)
        ).update({OutboxRow.next_attempt_at: as_utc(until)}, synchronize_session=False)


def pending_by_channel(session: Session) -> dict[str, int]:
    """Unsent rows per channel name (for metrics)."""
    rows = session.execute(
        select(NotificationChannel.name, func.count(OutboxRow.id))
        .outerjoin(
            OutboxRow,
            (OutboxRow.channel_id == NotificationChannel.id) & OutboxRow.sent_at.is_(None),
        )
        .group_by(NotificationChannel.name)
    ).all()
    return {name: int(n) for name, n in rows}
