"""Rules switched off per unit: a unit (and the units below it) gets no alert from a rule.

A row names a unit and a rule id; the worker drops that rule's detections for the unit and
every unit below it, as it drops excepted ones. Switching a rule off or back on is audited.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime

from sqlalchemy import ForeignKey, Integer, String, Text, UniqueConstraint, select
from sqlalchemy.orm import Mapped, Session, mapped_column

from vedette.store.state.audit import append_audit
from vedette.store.state.models import Base, utcnow
from vedette.store.state.scope import Invalid, Scope, require
from vedette.store.state.units import scoped_unit, unit_names, units_below

MAX_RULE_ID = 128


class DisabledRule(Base):
    """A rule switched off for a unit and the units below it."""

    __tablename__ = "disabled_rules"
    __table_args__ = (UniqueConstraint("unit_id", "rule_id"),)
    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    unit_id: Mapped[int] = mapped_column(ForeignKey("units.id"), index=True)
    rule_id: Mapped[str] = mapped_column(String(MAX_RULE_ID))
    author: Mapped[str] = mapped_column(String(160))
    reason: Mapped[str] = mapped_column(Text, default="")
    created_at: Mapped[datetime] = mapped_column(default=utcnow)


def _checked(rule_id: str) -> str:
    rule_id = rule_id.strip()
    if not rule_id or len(rule_id) > MAX_RULE_ID:
        raise Invalid("a rule id of 1 to 128 characters")
    return rule_id


def set_rule_enabled(
    session: Session,
    scope: Scope,
    *,
    unit: str,
    rule_id: str,
    enabled: bool,
    reason: str = "",
) -> bool:
    """Switch ``rule_id`` off (or back on) for one of the caller's units (analysts and admins);
    returns whether anything changed. Audited."""
    home = scoped_unit(session, scope, unit)
    require(scope.can_write_alerts(), "switch rules on or off")
    rule_id = _checked(rule_id)
    row = session.scalars(
        select(DisabledRule).where(DisabledRule.unit_id == home.id, DisabledRule.rule_id == rule_id)
    ).first()
    if enabled == (row is None):
        return False
    state = {"unit": unit, "rule_id": rule_id}
    if row is None:
        row = DisabledRule(
            unit_id=home.id, rule_id=rule_id, author=scope.actor, reason=reason[:2000]
        )
        session.add(row)
        session.flush()
    else:
        session.delete(row)
        session.flush()
    append_audit(
        session,
        actor=scope.actor,
        action="rule.enable" if enabled else "rule.disable",
        object_type="rule",
        object_id=row.id,
        unit_id=home.id,
        before={**state, "enabled": not enabled},
        after={**state, "enabled": enabled, "reason": reason[:2000]},
    )
    return True


def list_disabled(session: Session, scope: Scope) -> list[tuple[str, DisabledRule]]:
    """Rules switched off in the caller's units, as (unit name, row), by unit and rule."""
    require(scope.can_read(), "read rule settings")
    rows = list(
        session.scalars(
            select(DisabledRule)
            .where(DisabledRule.unit_id.in_(scope.unit_ids))
            .order_by(DisabledRule.unit_id, DisabledRule.rule_id)
        )
    )
    names = unit_names(session, {r.unit_id for r in rows})
    return [(names[r.unit_id], r) for r in rows]


def disabled_by_unit(session: Session) -> Mapping[str, frozenset[str]]:
    """Unit name -> rule ids switched off for it (by itself or a unit above), for the
    pipeline (unscoped)."""
    rows = list(session.scalars(select(DisabledRule)))
    out: dict[int, set[str]] = {}
    for row in rows:
        for unit_id in units_below(session, row.unit_id):
            out.setdefault(unit_id, set()).add(row.rule_id)
    names = unit_names(session, out)
    return {names[unit_id]: frozenset(rules) for unit_id, rules in out.items()}
