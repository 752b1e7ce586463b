"""Early warnings: what a unit is told when another unit's attack shows in its own events.

A warning belongs to the warned unit. It names the source incident (an id the warned unit can
read only if the owner shares it), the observables that were found, the ATT&CK techniques of the
source alert, and the hits: the warned unit's own events (host, time, field, value), never the
source unit's. One warning per (warned unit, source alert): a retro-hunt run twice after a crash
does not warn twice. Status is ``new`` until a user of the unit acknowledges it.

A warning the policy holds for an analyst is a **draft**: the warned unit does not see it (nor
is notified) until a user covering the *source* alert's unit approves it, which makes it
``new``. The source side sees a draft's header and observables, and its hits only when it
covers the warned unit too (the centre): the warned unit's events stay its own.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any, Final

from sqlalchemy import (
    JSON,
    ForeignKey,
    Integer,
    String,
    Text,
    UniqueConstraint,
    and_,
    or_,
    select,
)
from sqlalchemy.orm import Mapped, Session, mapped_column

from vedette.store.state.audit import append_audit, jsonable
from vedette.store.state.db import widen_scope
from vedette.store.state.models import Alert, Base, Unit, utcnow
from vedette.store.state.scope import Invalid, NotFound, Scope, require

STATUSES: Final = ("draft", "new", "acknowledged")


class EarlyWarning(Base):
    """One warning to one unit."""

    __tablename__ = "warnings"
    __table_args__ = (UniqueConstraint("unit_id", "source_alert_id"),)
    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    unit_id: Mapped[int] = mapped_column(ForeignKey("units.id"), index=True)
    source_incident_id: Mapped[int | None] = mapped_column(Integer)
    source_alert_id: Mapped[int] = mapped_column(Integer)
    level: Mapped[str] = mapped_column(String(16))
    title: Mapped[str] = mapped_column(Text)
    observables: Mapped[list[Any]] = mapped_column(JSON, default=list)
    attack: Mapped[list[Any]] = mapped_column(JSON, default=list)
    hits: Mapped[list[Any]] = mapped_column(JSON, default=list)
    hits_total: Mapped[int] = mapped_column(Integer, default=0)
    status: Mapped[str] = mapped_column(String(16), default="new")
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    acked_at: Mapped[datetime | None] = mapped_column()
    acked_by: Mapped[str | None] = mapped_column(String(160))


def record_warning(
    session: Session,
    *,
    unit_id: int,
    source_incident_id: int | None,
    source_alert_id: int,
    level: str,
    title: str,
    observables: list[dict[str, Any]],
    attack: list[dict[str, Any]],
    hits: list[dict[str, Any]],
    hits_total: int,
    draft: bool = False,
) -> tuple[EarlyWarning, bool]:
    """Store a warning unless this unit was already warned of this alert; ``(row, created)``.
    A ``draft`` waits for an analyst's approval (:func:`approve_warning`) and is not sent."""
    existing = session.scalar(
        select(EarlyWarning).where(
            EarlyWarning.unit_id == unit_id, EarlyWarning.source_alert_id == source_alert_id
        )
    )
    if existing is not None:
        return existing, False
    row = EarlyWarning(
        unit_id=unit_id,
        source_incident_id=source_incident_id,
        source_alert_id=source_alert_id,
        level=level,
        title=title,
        observables=jsonable(observables),
        attack=jsonable(attack),
        hits=jsonable(hits),
        hits_total=hits_total,
        status="draft" if draft else "new",
    )
    session.add(row)
    session.flush()
    if not draft:
        _notify(session, row)
    append_audit(
        session,
        actor="early-warning",
        action="warning.draft" if draft else "warning.create",
        object_type="warning",
        object_id=row.id,
        unit_id=unit_id,
        before=None,
        after={
            "source_incident_id": source_incident_id,
            "observables": jsonable(observables),
            "hits_total": hits_total,
        },
    )
    return row, True


def _notify(session: Session, row: EarlyWarning) -> None:
    from vedette.store.state.notifications import enqueue

    # Notify in the warning's own transaction: the outbox row and the warning commit together.
    enqueue(
        session,
        kind="warning",
        unit_id=row.unit_id,
        level=row.level,
        object_type="warning",
        object_id=row.id,
        payload={
            "id": row.id,
            "title": row.title,
            "level": row.level,
            "source_incident": row.source_incident_id,
            "observables": row.observables or [],
            "attack": row.attack or [],
            "hits_total": row.hits_total,
        },
    )


def warning_out(row: EarlyWarning, unit: str, *, hits: bool = True) -> dict[str, Any]:
    """The API shape of a warning (``hits=False``: a draft seen by the source side only)."""
    return {
        "id": row.id,
        "unit": unit,
        "title": row.title,
        "level": row.level,
        "observables": row.observables or [],
        "attack": row.attack or [],
        "hits": (row.hits or []) if hits else [],
        "hits_total": row.hits_total,
        "source_incident": row.source_incident_id,
        "created_at": row.created_at,
        "status": row.status,
        "acked_at": row.acked_at,
        "acked_by": row.acked_by,
    }


def list_warnings(
    session: Session, scope: Scope, *, status: str | None = None, limit: int = 100
) -> list[dict[str, Any]]:
    """The warnings of the caller's units, newest first."""
    require(scope.can_read(), "read warnings")
    if status is not None and status not in STATUSES:
        raise Invalid(f"status must be one of {', '.join(STATUSES)}")
    units = scope.unit_ids
    query = (
        select(EarlyWarning, Unit.name)
        .join(Unit, Unit.id == EarlyWarning.unit_id)
        .outerjoin(Alert, Alert.id == EarlyWarning.source_alert_id)
        .where(
            or_(
                and_(EarlyWarning.status != "draft", EarlyWarning.unit_id.in_(units)),
                and_(EarlyWarning.status == "draft", Alert.unit_id.in_(units)),
            )
        )
    )
    if status is not None:
        query = query.where(EarlyWarning.status == status)
    rows = session.execute(query.order_by(EarlyWarning.id.desc()).limit(max(1, min(limit, 1000))))
    return [warning_out(row, name, hits=scope.covers(row.unit_id)) for row, name in rows]


def _source_unit(session: Session, row: EarlyWarning) -> int | None:
    alert = session.get(Alert, row.source_alert_id)
    return alert.unit_id if alert is not None else None


def approve_warning(session: Session, scope: Scope, warning_id: int) -> dict[str, Any]:
    """Send a drafted warning to its unit (a caller covering the source alert's unit).
    Audited; the unit is notified in the same transaction. Anything but a draft the caller
    may approve (a sent warning included) is :class:`NotFound`."""
    require(scope.can_read(), "read warnings")
    row = session.get(EarlyWarning, warning_id)
    source = None if row is None else _source_unit(session, row)
    if row is None or row.status != "draft" or not scope.covers(source):
        raise NotFound(f"no drafted warning {warning_id}")
    require(scope.can_write_alerts(), "approve warnings")
    # Sending it writes the warned unit's rows (the warning, its notifications, the audit
    # record about it), which the caller's scope does not hold: checked above, so widened.
    widen_scope(session, {row.unit_id})
    row.status = "new"
    _notify(session, row)
    append_audit(
        session,
        actor=scope.actor,
        action="warning.approve",
        object_type="warning",
        object_id=row.id,
        unit_id=row.unit_id,
        before={"status": "draft"},
        after={"status": "new"},
    )
    session.flush()
    unit = session.get(Unit, row.unit_id)
    return warning_out(row, unit.name if unit else "", hits=scope.covers(row.unit_id))


def ack_warning(session: Session, scope: Scope, warning_id: int) -> dict[str, Any]:
    """Acknowledge one of the caller's warnings (again is a no-op). Audited."""
    require(scope.can_read(), "read warnings")
    row = session.get(EarlyWarning, warning_id)
    if row is None or not scope.covers(row.unit_id) or row.status == "draft":
        raise NotFound(f"no warning {warning_id}")  # a draft is not the unit's yet
    require(scope.can_write_alerts(), "acknowledge warnings")
    if row.status != "acknowledged":
        row.status = "acknowledged"
        row.acked_at = utcnow()
        row.acked_by = scope.actor
        append_audit(
            session,
            actor=scope.actor,
            action="warning.ack",
            object_type="warning",
            object_id=row.id,
            unit_id=row.unit_id,
            before={"status": "new"},
            after={"status": "acknowledged"},
        )
        session.flush()
    unit = session.get(Unit, row.unit_id)
    return warning_out(row, unit.name if unit else "")
