"""Bulletins: a unit (usually the centre) tells the units below it what to look for.

A bulletin has a title, a text, observables and rules to enable, and its target units. Each
target acknowledges it once; the publishing side sees which targets have not. Only units the
publisher's scope covers can be targets (the centre covers every unit), and a target unit sees
the bulletin and its own acknowledgement, never the other targets.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from typing import Any

from sqlalchemy import JSON, ForeignKey, Integer, String, Text, UniqueConstraint, or_, select
from sqlalchemy.orm import Mapped, Session, mapped_column

from vedette.store.state.audit import append_audit, jsonable
from vedette.store.state.models import Base, Unit, utcnow
from vedette.store.state.scope import Invalid, NotFound, Scope, require


class Bulletin(Base):
    """What a unit publishes to the units below it."""

    __tablename__ = "bulletins"
    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    unit_id: Mapped[int] = mapped_column(ForeignKey("units.id"), index=True)
    title: Mapped[str] = mapped_column(Text)
    text: Mapped[str] = mapped_column(Text)
    observables: Mapped[list[Any]] = mapped_column(JSON, default=list)
    rules: Mapped[list[Any]] = mapped_column(JSON, default=list)
    created_by: Mapped[str] = mapped_column(String(160))
    created_at: Mapped[datetime] = mapped_column(default=utcnow)


class BulletinTarget(Base):
    """One target unit of a bulletin and its acknowledgement."""

    __tablename__ = "bulletin_targets"
    __table_args__ = (UniqueConstraint("bulletin_id", "unit_id"),)
    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    bulletin_id: Mapped[int] = mapped_column(
        ForeignKey("bulletins.id", ondelete="CASCADE"), index=True
    )
    unit_id: Mapped[int] = mapped_column(ForeignKey("units.id"), index=True)
    acked_at: Mapped[datetime | None] = mapped_column()
    acked_by: Mapped[str | None] = mapped_column(String(160))


def publish_bulletin(
    session: Session,
    scope: Scope,
    *,
    title: str,
    text: str = "",
    observables: Sequence[dict[str, str]] = (),
    rules: Sequence[str] = (),
    units: Sequence[str] | None = None,
) -> Bulletin:
    """Publish to ``units`` (default: every unit the caller covers but its own). Audited."""
    require(scope.can_write_alerts(), "publish bulletins")
    if not title.strip():
        raise Invalid("a bulletin needs a title")
    rows = session.execute(select(Unit.id, Unit.name).where(Unit.id.in_(scope.unit_ids))).all()
    mine = {name: unit_id for unit_id, name in rows}
    if units is None:
        targets = [uid for uid in mine.values() if uid != scope.principal.unit_id]
    else:
        unknown = [u for u in units if u not in mine]
        if unknown:
            raise NotFound(f"no unit {unknown[0]!r}")
        targets = sorted({mine[u] for u in units})
    if not targets:
        raise Invalid("a bulletin needs at least one target unit")
    bulletin = Bulletin(
        unit_id=scope.principal.unit_id,
        title=title.strip(),
        text=text,
        observables=jsonable(list(observables)),
        rules=list(rules),
        created_by=scope.actor,
    )
    session.add(bulletin)
    session.flush()
    from vedette.store.state.notifications import enqueue

    for unit_id in targets:
        session.add(BulletinTarget(bulletin_id=bulletin.id, unit_id=unit_id))
        # A bulletin has no level of its own: it is sent as "high", past the default filter.
        enqueue(
            session,
            kind="bulletin",
            unit_id=unit_id,
            level="high",
            object_type="bulletin",
            object_id=bulletin.id,
            payload={
                "id": bulletin.id,
                "title": bulletin.title,
                "text": text,
                "observables": jsonable(list(observables)),
                "rules": list(rules),
            },
        )
    append_audit(
        session,
        actor=scope.actor,
        action="bulletin.publish",
        object_type="bulletin",
        object_id=bulletin.id,
        unit_id=scope.principal.unit_id,
        before=None,
        after={"title": bulletin.title, "targets": targets},
    )
    session.flush()
    return bulletin


def list_bulletins(session: Session, scope: Scope, *, limit: int = 100) -> list[dict[str, Any]]:
    """Bulletins to the caller's units (with their acknowledgement) and those the caller's
    units published (with every target's acknowledgement: who has not, too)."""
    require(scope.can_read(), "read bulletins")
    to_me = select(BulletinTarget.bulletin_id).where(BulletinTarget.unit_id.in_(scope.unit_ids))
    rows = session.scalars(
        select(Bulletin)
        .where(or_(Bulletin.unit_id.in_(scope.unit_ids), Bulletin.id.in_(to_me)))
        .order_by(Bulletin.id.desc())
        .limit(max(1, min(limit, 1000)))
    ).all()
    names = {uid: name for uid, name in session.execute(select(Unit.id, Unit.name))}
    out = []
    for bulletin in rows:
        publisher = scope.covers(bulletin.unit_id)
        query = select(BulletinTarget).where(BulletinTarget.bulletin_id == bulletin.id)
        if not publisher:
            query = query.where(BulletinTarget.unit_id.in_(scope.unit_ids))
        targets = [
            {
                "unit": names.get(t.unit_id),
                "acked_at": t.acked_at,
                "acked_by": t.acked_by,
                "status": "acknowledged" if t.acked_at else "pending",
            }
            for t in session.scalars(query.order_by(BulletinTarget.unit_id))
        ]
        out.append(
            {
                "id": bulletin.id,
                "from_unit": names.get(bulletin.unit_id),
                "title": bulletin.title,
                "text": bulletin.text,
                "observables": bulletin.observables or [],
                "rules": bulletin.rules or [],
                "created_by": bulletin.created_by if publisher else None,
                "created_at": bulletin.created_at,
                "targets": targets,
                "pending": [t["unit"] for t in targets if t["status"] == "pending"],
            }
        )
    return out


def ack_bulletin(
    session: Session, scope: Scope, bulletin_id: int, *, unit: str | None = None
) -> list[str]:
    """Acknowledge for the caller's targeted units (or just ``unit``); the units acknowledged."""
    require(scope.can_read(), "read bulletins")
    query = select(BulletinTarget).where(
        BulletinTarget.bulletin_id == bulletin_id, BulletinTarget.unit_id.in_(scope.unit_ids)
    )
    targets = list(session.scalars(query))
    if not targets:
        raise NotFound(f"no bulletin {bulletin_id}")
    require(scope.can_write_alerts(), "acknowledge bulletins")
    names = {
        uid: name
        for uid, name in session.execute(
            select(Unit.id, Unit.name).where(Unit.id.in_([t.unit_id for t in targets]))
        )
    }
    if unit is not None:
        targets = [t for t in targets if names.get(t.unit_id) == unit]
        if not targets:
            raise NotFound(f"bulletin {bulletin_id} is not for unit {unit!r}")
    done = []
    for target in targets:
        if target.acked_at is None:
            target.acked_at = utcnow()
            target.acked_by = scope.actor
            append_audit(
                session,
                actor=scope.actor,
                action="bulletin.ack",
                object_type="bulletin",
                object_id=bulletin_id,
                unit_id=target.unit_id,
                before={"status": "pending"},
                after={"status": "acknowledged"},
            )
        done.append(names[target.unit_id])
    session.flush()
    return sorted(done)
