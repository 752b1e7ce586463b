"""Alerts: recording detections with fingerprint dedup, and the analysts' work on them.

An alert stands for every detection of one fingerprint (rule + unit + key fields) while it is
open and its detections keep coming within the dedup window; a detection after the window, or
after the alert was closed, opens a new alert. Status moves between ``new``, ``acknowledged``,
``in_progress`` and ``closed``; closing needs a reason.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any, Final

from sqlalchemy import select, update
from sqlalchemy.orm import Session, joinedload

from vedette.store.state.alert_keys import AlertKey, key_hash, keys_of, write_keys
from vedette.store.state.audit import AuditEntry, append_audit, append_audits, canonical, jsonable
from vedette.store.state.models import Alert, AlertComment, Unit, as_utc, utcnow
from vedette.store.state.scope import Invalid, NotFound, Scope, require

STATUSES: Final = ("new", "acknowledged", "in_progress", "closed")
CLOSE_REASONS: Final = ("true_positive", "false_positive", "benign")
MAX_LIMIT: Final = 1000
_IN_CHUNK: Final = 500


class _Unset:
    """Marks an argument left out (``None`` is a value: no assignee)."""


UNSET: Final = _Unset()


def fingerprint(rule_id: str, unit: str, key_fields: dict[str, Any]) -> str:
    """sha256 (hex) of the canonical JSON of the rule, the unit and the key fields."""
    body = canonical({"rule_id": rule_id, "unit": unit, "key": jsonable(key_fields)})
    return hashlib.sha256(body.encode()).hexdigest()


def record_detection(
    session: Session,
    *,
    unit_id: int,
    fingerprint: str,
    kind: str,
    rule_id: str,
    rule_title: str,
    level: str,
    when: datetime,
    host: str | None = None,
    attack: list[dict[str, Any]] | None = None,
    matched: dict[str, Any] | None = None,
    sample_event: dict[str, Any] | None = None,
    observables: list[Any] | None = None,
    n: int = 1,
    dedup_window_s: float = 3600,
) -> tuple[Alert, bool]:
    """Count ``n`` detections on the open alert of this fingerprint, or open a new one.

    Returns ``(alert, created)``. Flushes but never commits: the pipeline commits it with its
    consumed position. One writer per unit is assumed (the pipeline), so no row lock is taken.
    """
    when = as_utc(when)
    current = session.scalar(
        select(Alert)
        .where(
            Alert.unit_id == unit_id,
            Alert.fingerprint == fingerprint,
            Alert.status != "closed",
        )
        .order_by(Alert.id.desc())
        .limit(1)
    )
    if current is not None and when <= current.last_seen + timedelta(seconds=dedup_window_s):
        current.count += n
        current.last_seen = max(current.last_seen, when)
        current.first_seen = min(current.first_seen, when)
        current.updated_at = utcnow()
        if observables:
            seen = list(current.observables or [])
            added = [o for o in jsonable(observables) if o not in seen]
            if added:
                current.observables = seen + added
                _write_alert_keys(session, current, added, fresh=False)
        session.flush()
        return current, False
    alert = Alert(
        unit_id=unit_id,
        fingerprint=fingerprint,
        kind=kind,
        rule_id=rule_id,
        rule_title=rule_title,
        level=level,
        status="new",
        count=n,
        first_seen=when,
        last_seen=when,
        host=host,
        attack=jsonable(attack or []),
        matched=jsonable(matched or {}),
        sample_event=jsonable(sample_event or {}),
        observables=jsonable(observables or []),
    )
    session.add(alert)
    session.flush()
    _write_alert_keys(session, alert, alert.observables, fresh=True)
    append_audit(
        session,
        actor="pipeline",
        action="alert.create",
        object_type="alert",
        object_id=alert.id,
        unit_id=unit_id,
        before=None,
        after={"rule_id": rule_id, "level": level, "fingerprint": fingerprint, "host": host},
    )
    return alert, True


def _write_alert_keys(session: Session, alert: Alert, observables: Any, *, fresh: bool) -> None:
    """Grouping keys for incidents (vedette.store.state.alert_keys); health alerts never group."""
    if alert.kind == "health":
        return
    sample = alert.sample_event if fresh else None
    keys = keys_of(alert.host if fresh else None, sample, observables)
    write_keys(session, alert.id, alert.unit_id, keys, fresh=fresh)


@dataclass(slots=True, kw_only=True)
class DetectionFold:
    """Detections of one fingerprint folded by the caller: ``n`` of them from first to last."""

    unit_id: int
    fingerprint: str
    kind: str
    rule_id: str
    rule_title: str
    level: str
    first: datetime
    last: datetime
    n: int
    host: str | None = None
    attack: list[dict[str, Any]] | None = None
    matched: dict[str, Any] | None = None
    sample_event: dict[str, Any] | None = None
    observables: list[Any] | None = None


def record_detections(
    session: Session, folds: Sequence[DetectionFold], *, dedup_window_s: float = 3600
) -> list[Alert]:
    """:func:`record_detection` for many fingerprints at once; returns the new alerts.

    The open alerts of all the fingerprints are read with one ``IN`` query (per 500) and
    counted with one executemany UPDATE, instead of a SELECT and an UPDATE per fingerprint.
    Flushes but never commits. Fingerprints must be distinct per unit.
    """
    current: dict[tuple[int, str], tuple[int, datetime, datetime, int, str | None]] = {}
    prints = sorted({f.fingerprint for f in folds})
    units = sorted({f.unit_id for f in folds})
    for start in range(0, len(prints), _IN_CHUNK):
        rows = session.execute(
            select(
                Alert.id,
                Alert.unit_id,
                Alert.fingerprint,
                Alert.first_seen,
                Alert.last_seen,
                Alert.count,
                Alert.kind,
            )
            .where(
                Alert.unit_id.in_(units),
                Alert.fingerprint.in_(prints[start : start + _IN_CHUNK]),
                Alert.status != "closed",
            )
            .order_by(Alert.id)
        )
        for alert_id, unit_id, print_, first, last, count, kind in rows:
            # Ordered by id: the newest open alert of a fingerprint wins, as in record_detection.
            current[(unit_id, print_)] = (alert_id, as_utc(first), as_utc(last), count, kind)
    window = timedelta(seconds=dedup_window_s)
    updates: list[dict[str, Any]] = []
    grown: list[DetectionFold] = []
    fresh: list[DetectionFold] = []
    now = utcnow()
    for fold in folds:
        first, last = as_utc(fold.first), as_utc(fold.last)
        found = current.get((fold.unit_id, fold.fingerprint))
        if found is not None and first <= found[2] + window:
            alert_id, seen_first, seen_last, count, _kind = found
            updates.append(
                {
                    "id": alert_id,
                    "count": count + fold.n,
                    "first_seen": min(seen_first, first),
                    "last_seen": max(seen_last, last),
                    "updated_at": now,
                }
            )
            if fold.observables:
                grown.append(fold)
            continue
        fresh.append(fold)
    created = _open_alerts(session, fresh)
    if updates:
        session.execute(update(Alert), updates)
    if grown:
        _grow_observables(session, grown, current)
    session.flush()
    return created


def _open_alerts(session: Session, folds: list[DetectionFold]) -> list[Alert]:
    """New alerts for ``folds``, their grouping keys and their audit records, in few round
    trips: a first burst of detections (a new rule set, an intrusion) opens hundreds at once."""
    if not folds:
        return []
    alerts = [
        Alert(
            unit_id=fold.unit_id,
            fingerprint=fold.fingerprint,
            kind=fold.kind,
            rule_id=fold.rule_id,
            rule_title=fold.rule_title,
            level=fold.level,
            status="new",
            count=fold.n,
            first_seen=as_utc(fold.first),
            last_seen=max(as_utc(fold.first), as_utc(fold.last)),
            host=fold.host,
            attack=jsonable(fold.attack or []),
            matched=jsonable(fold.matched or {}),
            sample_event=jsonable(fold.sample_event or {}),
            observables=jsonable(fold.observables or []),
        )
        for fold in folds
    ]
    session.add_all(alerts)
    session.flush()  # the ids, for the keys and the audit records
    keys = [
        AlertKey(alert_id=alert.id, key=digest, unit_id=alert.unit_id)
        for alert in alerts
        if alert.kind != "health"  # health alerts never group
        for digest in sorted(
            {key_hash(k) for k in keys_of(alert.host, alert.sample_event, alert.observables)}
        )
    ]
    if keys:
        session.add_all(keys)
    append_audits(
        session,
        [
            AuditEntry(
                actor="pipeline",
                action="alert.create",
                object_type="alert",
                object_id=alert.id,
                unit_id=alert.unit_id,
                before=None,
                after={
                    "rule_id": alert.rule_id,
                    "level": alert.level,
                    "fingerprint": alert.fingerprint,
                    "host": alert.host,
                },
            )
            for alert in alerts
        ],
    )
    return alerts


def _grow_observables(
    session: Session,
    grown: list[DetectionFold],
    current: dict[tuple[int, str], tuple[int, datetime, datetime, int, str | None]],
) -> None:
    """Add new observables to open alerts: one read of their lists, writes only where one grew."""
    by_id = {current[(f.unit_id, f.fingerprint)][0]: f for f in grown}
    changed: list[dict[str, Any]] = []
    ids = sorted(by_id)
    for start in range(0, len(ids), _IN_CHUNK):
        rows = session.execute(
            select(Alert.id, Alert.unit_id, Alert.kind, Alert.observables).where(
                Alert.id.in_(ids[start : start + _IN_CHUNK])
            )
        )
        for alert_id, unit_id, kind, observables in rows:
            seen = list(observables or [])
            added = [o for o in jsonable(by_id[alert_id].observables) if o not in seen]
            if not added:
                continue
            changed.append({"id": alert_id, "observables": seen + added})
            if kind != "health":
                write_keys(session, alert_id, unit_id, keys_of(None, None, added))
    if changed:
        session.execute(update(Alert), changed)


def encode_cursor(last_id: int) -> str:
    """The opaque cursor that resumes a listing after alert ``last_id``."""
    return base64.urlsafe_b64encode(f"a1:{last_id}".encode()).decode().rstrip("=")


def decode_cursor(cursor: str) -> int:
    """The alert id inside a cursor; :class:`Invalid` when it is not one of ours."""
    try:
        raw = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4)).decode()
        tag, _, value = raw.partition(":")
        if tag != "a1":
            raise ValueError(tag)
        return int(value)
    except (ValueError, UnicodeDecodeError, binascii.Error) as exc:
        raise Invalid("bad cursor") from exc


def list_alerts(
    session: Session,
    scope: Scope,
    *,
    status: str | None = None,
    level: str | None = None,
    rule_id: str | None = None,
    unit: str | None = None,
    limit: int = 100,
    cursor: str | None = None,
) -> tuple[list[Alert], str | None]:
    """A page of the caller's alerts, newest first, and the cursor of the next page (or None).

    A ``unit`` the caller does not cover gives an empty page, as an unknown one does.
    """
    require(scope.can_read(), "read alerts")
    if status is not None and status not in STATUSES:
        raise Invalid(f"status must be one of {', '.join(STATUSES)}")
    limit = max(1, min(limit, MAX_LIMIT))
    query = select(Alert).options(joinedload(Alert.unit)).where(Alert.unit_id.in_(scope.unit_ids))
    if status is not None:
        query = query.where(Alert.status == status)
    if level is not None:
        query = query.where(Alert.level == level)
    if rule_id is not None:
        query = query.where(Alert.rule_id == rule_id)
    if unit is not None:
        query = query.join(Unit, Unit.id == Alert.unit_id).where(Unit.name == unit)
    if cursor:
        query = query.where(Alert.id < decode_cursor(cursor))
    rows = list(session.scalars(query.order_by(Alert.id.desc()).limit(limit + 1)))
    if len(rows) > limit:
        return rows[:limit], encode_cursor(rows[limit - 1].id)
    return rows, None


def get_alert(session: Session, scope: Scope, alert_id: int) -> Alert:
    """One of the caller's alerts; :class:`NotFound` for any other id."""
    require(scope.can_read(), "read alerts")
    alert = session.get(Alert, alert_id, options=[joinedload(Alert.unit)])
    if alert is None or not scope.covers(alert.unit_id):
        raise NotFound(f"no alert {alert_id}")
    return alert


def _state(alert: Alert) -> dict[str, Any]:
    return {"status": alert.status, "close_reason": alert.close_reason, "assignee": alert.assignee}


def update_alert(
    session: Session,
    scope: Scope,
    alert_id: int,
    *,
    status: str | None = None,
    close_reason: str | None = None,
    assignee: str | _Unset | None = UNSET,
    actor: str | None = None,
) -> Alert:
    """Change status, close reason or assignee (``assignee=None`` unassigns). Audited.

    Closing needs a ``close_reason``; a reason without closing is refused; reopening clears it.
    """
    alert = get_alert(session, scope, alert_id)
    require(scope.can_write_alerts(), "change alerts")
    if status is not None and status not in STATUSES:
        raise Invalid(f"status must be one of {', '.join(STATUSES)}")
    if close_reason is not None and close_reason not in CLOSE_REASONS:
        raise Invalid(f"close_reason must be one of {', '.join(CLOSE_REASONS)}")
    new_status = status or alert.status
    if new_status == "closed" and alert.status != "closed" and close_reason is None:
        raise Invalid("closing an alert needs a close_reason")
    if close_reason is not None and new_status != "closed":
        raise Invalid("close_reason is only for status closed")
    before = _state(alert)
    alert.status = new_status
    if new_status == "closed":
        alert.close_reason = close_reason or alert.close_reason
    else:
        alert.close_reason = None
    if not isinstance(assignee, _Unset):
        alert.assignee = assignee
    after = _state(alert)
    if after != before:
        alert.updated_at = utcnow()
        append_audit(
            session,
            actor=actor or scope.actor,
            action="alert.update",
            object_type="alert",
            object_id=alert.id,
            unit_id=alert.unit_id,
            before=before,
            after=after,
        )
    session.flush()
    return alert


def add_comment(
    session: Session, scope: Scope, alert_id: int, *, text: str, actor: str | None = None
) -> AlertComment:
    """Comment on one of the caller's alerts (analysts and admins). Audited."""
    alert = get_alert(session, scope, alert_id)
    require(scope.can_write_alerts(), "comment on alerts")
    if not text.strip():
        raise Invalid("an empty comment")
    author = actor or scope.actor
    comment = AlertComment(alert_id=alert.id, author=author, text=text)
    session.add(comment)
    session.flush()
    append_audit(
        session,
        actor=author,
        action="alert.comment",
        object_type="alert",
        object_id=alert.id,
        unit_id=alert.unit_id,
        before=None,
        after={"comment_id": comment.id, "text": text},
    )
    return comment


def list_comments(session: Session, scope: Scope, alert_id: int) -> Sequence[AlertComment]:
    """Comments of one of the caller's alerts, oldest first."""
    alert = get_alert(session, scope, alert_id)
    query = select(AlertComment).where(AlertComment.alert_id == alert.id)
    return session.scalars(query.order_by(AlertComment.id)).all()
