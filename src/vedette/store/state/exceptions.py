"""Rule exceptions: detections that are not to become alerts, kept outside the rules.

An exception belongs to a unit and covers it and the units below; it may name a rule (or apply
to every rule) and field conditions ``{field: value | [values]}``, all of which must hold:
strings compare case-insensitively, a list means any of its values. It has an author, a
reason and an optional expiry, so a rule update keeps it.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import or_, select
from sqlalchemy.orm import Session

from vedette.store.state.audit import append_audit
from vedette.store.state.models import RuleException, as_utc, utcnow
from vedette.store.state.scope import Invalid, NotFound, Scope, require
from vedette.store.state.units import scoped_unit, unit_names, units_below


@dataclass(frozen=True, slots=True)
class ActiveException:
    """An exception as the pipeline uses it: detached from the session, units resolved."""

    id: int
    unit_names: frozenset[str]
    rule_id: str | None
    conditions: Mapping[str, Any]


def _check_conditions(conditions: Mapping[str, Any]) -> dict[str, Any]:
    checked: dict[str, Any] = {}
    for field, value in conditions.items():
        if not isinstance(field, str) or not field:
            raise Invalid("a condition names a field")
        values = value if isinstance(value, list) else [value]
        if not values or not all(isinstance(v, str | int | float | bool) for v in values):
            raise Invalid(f"condition {field!r}: a value or a non-empty list of values")
        checked[field] = value
    return checked


def add_exception(
    session: Session,
    scope: Scope,
    *,
    unit: str,
    rule_id: str | None,
    conditions: Mapping[str, Any],
    reason: str,
    expires_at: datetime | None = None,
    actor: str | None = None,
) -> RuleException:
    """Add an exception for one of the caller's units (analysts and admins). Audited."""
    home = scoped_unit(session, scope, unit)
    require(scope.can_write_alerts(), "manage exceptions")
    checked = _check_conditions(conditions)
    if rule_id is None and not checked:
        raise Invalid("an exception names a rule, field conditions or both")
    if not reason.strip():
        raise Invalid("an exception needs a reason")
    author = actor or scope.actor
    row = RuleException(
        unit_id=home.id,
        rule_id=rule_id,
        conditions=checked,
        author=author,
        reason=reason,
        expires_at=expires_at,
    )
    session.add(row)
    session.flush()
    append_audit(
        session,
        actor=author,
        action="exception.add",
        object_type="exception",
        object_id=row.id,
        unit_id=home.id,
        before=None,
        after=_state(row, unit),
    )
    return row


def _state(row: RuleException, unit: str) -> dict[str, Any]:
    return {
        "unit": unit,
        "rule_id": row.rule_id,
        "conditions": row.conditions,
        "reason": row.reason,
        "expires_at": row.expires_at,
    }


def list_exceptions(
    session: Session, scope: Scope, *, include_expired: bool = False, now: datetime | None = None
) -> list[RuleException]:
    """Exceptions of the caller's units, oldest first."""
    require(scope.can_read(), "read exceptions")
    query = select(RuleException).where(RuleException.unit_id.in_(scope.unit_ids))
    if not include_expired:
        query = query.where(_unexpired(now or utcnow()))
    return list(session.scalars(query.order_by(RuleException.id)))


def delete_exception(
    session: Session, scope: Scope, exception_id: int, *, actor: str | None = None
) -> None:
    """Delete one of the caller's exceptions (analysts and admins). Audited with its content."""
    row = session.get(RuleException, exception_id)
    if row is None or not scope.covers(row.unit_id):
        raise NotFound(f"no exception {exception_id}")
    require(scope.can_write_alerts(), "manage exceptions")
    name = unit_names(session, [row.unit_id])[row.unit_id]
    append_audit(
        session,
        actor=actor or scope.actor,
        action="exception.delete",
        object_type="exception",
        object_id=row.id,
        unit_id=row.unit_id,
        before=_state(row, name),
        after=None,
    )
    session.delete(row)
    session.flush()


def _unexpired(now: datetime) -> Any:
    return or_(RuleException.expires_at.is_(None), RuleException.expires_at > as_utc(now))


def active_exceptions(session: Session, now: datetime) -> list[ActiveException]:
    """Every unexpired exception of every unit, for the pipeline (unscoped)."""
    rows = list(session.scalars(select(RuleException).where(_unexpired(now))))
    below: dict[int, frozenset[int]] = {}
    for row in rows:
        if row.unit_id not in below:
            below[row.unit_id] = units_below(session, row.unit_id)
    names = unit_names(session, set().union(*below.values())) if below else {}
    return [
        ActiveException(
            id=row.id,
            unit_names=frozenset(names[i] for i in below[row.unit_id]),
            rule_id=row.rule_id,
            conditions=dict(row.conditions),
        )
        for row in rows
    ]


def _norm(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    return str(value).casefold()


def matches(
    exception: ActiveException, unit_name: str, rule_id: str, fields: Mapping[str, Any]
) -> bool:
    """True when the exception covers this detection: unit, rule and every field condition."""
    if unit_name not in exception.unit_names:
        return False
    if exception.rule_id is not None and exception.rule_id != rule_id:
        return False
    for field, wanted in exception.conditions.items():
        if field not in fields:
            return False
        actual = fields[field]
        have = {_norm(v) for v in (actual if isinstance(actual, list | tuple) else [actual])}
        want = {_norm(v) for v in (wanted if isinstance(wanted, list) else [wanted])}
        if not have & want:
            return False
    return True
