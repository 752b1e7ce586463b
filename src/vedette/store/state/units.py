"""Units: the tree of the organisation (the centre at the root) and the scopes it gives.

The first unit added without a parent is the centre; every later unit has a parent. A scope is
a principal's unit plus every unit below it.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import select
from sqlalchemy.orm import Session

from vedette.store.state.audit import append_audit
from vedette.store.state.db import widen_scope
from vedette.store.state.models import Unit, UnitStats, utcnow
from vedette.store.state.scope import Invalid, NotFound, Principal, Scope, require

UNIT_NAME = re.compile(r"[A-Za-z0-9_.-]{1,64}")


@dataclass(frozen=True, slots=True)
class UnitInfo:
    """A unit as listed to a caller, with its ingest counters."""

    id: int
    name: str
    parent: str | None
    silent_after_seconds: int | None
    events_received: int
    events_stored: int
    last_event_at: datetime | None
    last_received_at: datetime | None


def _children(session: Session) -> dict[int | None, list[int]]:
    tree: dict[int | None, list[int]] = {}
    for unit_id, parent_id in session.execute(select(Unit.id, Unit.parent_id)):
        tree.setdefault(parent_id, []).append(unit_id)
    return tree


def units_below(session: Session, unit_id: int) -> frozenset[int]:
    """``unit_id`` and the ids of every unit below it."""
    tree = _children(session)
    found: set[int] = set()
    todo = [unit_id]
    while todo:
        current = todo.pop()
        if current not in found:
            found.add(current)
            todo.extend(tree.get(current, ()))
    return frozenset(found)


def scope_for(session: Session, principal: Principal) -> Scope:
    """The scope of ``principal``: its unit and every unit below."""
    return Scope(principal=principal, unit_ids=units_below(session, principal.unit_id))


def unit_by_name(session: Session, name: str) -> Unit:
    """The unit called ``name`` (unscoped: for the admin command and authentication)."""
    unit = session.scalar(select(Unit).where(Unit.name == name))
    if unit is None:
        raise NotFound(f"no unit {name!r}")
    return unit


def scoped_unit(session: Session, scope: Scope, name: str) -> Unit:
    """The unit called ``name`` if the caller covers it, else :class:`NotFound`."""
    unit = session.scalar(select(Unit).where(Unit.name == name))
    if unit is None or not scope.covers(unit.id):
        raise NotFound(f"no unit {name!r}")
    return unit


def add_unit(
    session: Session,
    *,
    name: str,
    parent: str | None,
    actor: str = "system",
    silent_after_seconds: int | None = None,
    now: datetime | None = None,
) -> Unit:
    """Add a unit under ``parent`` (``None`` only for the first unit: the centre). Audited."""
    if not UNIT_NAME.fullmatch(name):
        raise Invalid(f"unit name {name!r}: use 1-64 of A-Z a-z 0-9 _ . -")
    if session.scalar(select(Unit.id).where(Unit.name == name)) is not None:
        raise Invalid(f"unit {name!r} exists")
    if silent_after_seconds is not None and silent_after_seconds <= 0:
        raise Invalid("silent_after_seconds must be positive")
    if parent is None:
        if session.scalar(select(Unit.id).where(Unit.parent_id.is_(None))) is not None:
            raise Invalid("the centre exists: a new unit needs a parent")
        parent_id = None
    else:
        parent_id = unit_by_name(session, parent).id
    unit = Unit(
        name=name,
        parent_id=parent_id,
        silent_after_seconds=silent_after_seconds,
        created_at=now or utcnow(),
    )
    session.add(unit)
    session.flush()
    if parent_id is not None:
        # A request's scope is its units and those below them, read when it began: the new
        # unit below one of them is the request's too (its audit record is about it).
        widen_scope(session, {unit.id}, under=parent_id)
    append_audit(
        session,
        actor=actor,
        action="unit.add",
        object_type="unit",
        object_id=unit.id,
        unit_id=unit.id,
        before=None,
        after={"name": name, "parent": parent, "silent_after_seconds": silent_after_seconds},
        now=now,
    )
    return unit


def set_silent_after(
    session: Session, scope: Scope, name: str, seconds: int | None, *, actor: str | None = None
) -> Unit:
    """Set (or clear, with ``None``) how long a unit may stay silent before an alert. Admins."""
    unit = scoped_unit(session, scope, name)
    require(scope.can_admin(), "change units")
    if seconds is not None and seconds <= 0:
        raise Invalid("silent_after_seconds must be positive")
    before = {"silent_after_seconds": unit.silent_after_seconds}
    unit.silent_after_seconds = seconds
    append_audit(
        session,
        actor=actor or scope.actor,
        action="unit.update",
        object_type="unit",
        object_id=unit.id,
        unit_id=unit.id,
        before=before,
        after={"silent_after_seconds": seconds},
    )
    return unit


def list_units(session: Session, scope: Scope) -> list[UnitInfo]:
    """The caller's units, by name, with their counters (zero before any event)."""
    parent = Unit.__table__.alias("parent")
    rows = session.execute(
        select(Unit, parent.c.name, UnitStats)
        .outerjoin(parent, parent.c.id == Unit.parent_id)
        .outerjoin(UnitStats, UnitStats.unit_id == Unit.id)
        .where(Unit.id.in_(scope.unit_ids))
        .order_by(Unit.name)
    ).all()
    # A unit's parent outside the scope stays unnamed: the caller does not see that unit.
    return [
        _info(unit, parent_name if scope.covers(unit.parent_id) else None, stats)
        for unit, parent_name, stats in rows
    ]


def _info(unit: Unit, parent_name: str | None, stats: UnitStats | None) -> UnitInfo:
    return UnitInfo(
        id=unit.id,
        name=unit.name,
        parent=parent_name,
        silent_after_seconds=unit.silent_after_seconds,
        events_received=stats.events_received if stats else 0,
        events_stored=stats.events_stored if stats else 0,
        last_event_at=stats.last_event_at if stats else None,
        last_received_at=stats.last_received_at if stats else None,
    )


def unit_names(session: Session, unit_ids: Iterable[int]) -> dict[int, str]:
    """Names of the given unit ids."""
    ids = list(unit_ids)
    rows = session.execute(select(Unit.id, Unit.name).where(Unit.id.in_(ids))).all()
    return {unit_id: name for unit_id, name in rows}
