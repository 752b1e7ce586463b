"""Rule tuning for the console: the noisiest rules per unit over a period, and an exception
drafted from what that rule's alerts have in common (the analyst confirms it before it is kept).
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from sqlalchemy import func, or_, select
from sqlalchemy.orm import Session

from vedette.store.state.models import Alert
from vedette.store.state.scope import Scope, require
from vedette.store.state.units import scoped_unit, unit_names

SAMPLES = 200
"""Alerts of one rule and unit whose sample events the draft compares (the newest)."""
MAX_VALUE = 200
# Values that differ on every event by nature: never worth an exception condition.
_VOLATILE = re.compile(r"time|date|guid|recordid|processid|logonid|threadid|^pid$|^ppid$", re.I)


@dataclass(frozen=True, slots=True)
class NoisyRule:
    """One rule in one unit: how many alerts and detections it raised in the period."""

    unit: str
    rule_id: str
    rule_title: str
    level: str
    alerts: int
    detections: int


def noisiest(session: Session, scope: Scope, *, hours: int, limit: int = 50) -> list[NoisyRule]:
    """Rules by detections (then alerts) per unit of the caller, over the last ``hours``
    (alerts seen or raised in that time)."""
    require(scope.can_read(), "read alerts")
    since = datetime.now(UTC) - timedelta(hours=hours)
    detections = func.sum(Alert.count)
    rows = session.execute(
        select(
            Alert.unit_id,
            Alert.rule_id,
            func.max(Alert.rule_title),
            func.max(Alert.level),
            func.count(Alert.id),
            detections,
        )
        .where(
            Alert.unit_id.in_(scope.unit_ids),
            # Seen in the period by event time, or raised in it (old logs sent late).
            or_(Alert.last_seen >= since, Alert.created_at >= since),
        )
        .group_by(Alert.unit_id, Alert.rule_id)
        .order_by(detections.desc(), func.count(Alert.id).desc(), Alert.rule_id)
        .limit(limit)
    ).all()
    names = unit_names(session, {r[0] for r in rows})
    return [
        NoisyRule(names[u], rule, title, level, int(n), int(d or 0))
        for u, rule, title, level, n, d in rows
    ]


def draft_conditions(session: Session, scope: Scope, *, unit: str, rule_id: str) -> dict[str, str]:
    """Field -> value shared by the sample events of every recent alert of ``rule_id`` in
    ``unit`` (top-level scalar fields, volatile ones left out); empty when none."""
    require(scope.can_read(), "read alerts")
    home = scoped_unit(session, scope, unit)
    samples = session.scalars(
        select(Alert.sample_event)
        .where(Alert.unit_id == home.id, Alert.rule_id == rule_id)
        .order_by(Alert.last_seen.desc())
        .limit(SAMPLES)
    ).all()
    common: dict[str, str] | None = None
    for sample in samples:
        values = {k: _text(v) for k, v in (sample or {}).items() if _usable(k, v)}
        common = (
            values if common is None else {k: v for k, v in common.items() if values.get(k) == v}
        )
    return dict(sorted((common or {}).items()))


def _usable(key: str, value: Any) -> bool:
    if not isinstance(value, str | int | float | bool) or _VOLATILE.search(key):
        return False
    return 0 < len(_text(value)) <= MAX_VALUE


def _text(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    return str(value)


def parse_conditions(text: str) -> dict[str, str]:
    """``field = value`` lines (as the draft form shows them) -> conditions; blank lines skip."""
    out: dict[str, str] = {}
    for line in text.splitlines():
        if not line.strip():
            continue
        field, sep, value = line.partition("=")
        if not sep or not field.strip():
            raise ValueError(line)
        out[field.strip()] = value.strip()
    return out
