"""Incident priority: the highest priority among an incident's alerts (asset criticality).

An incident's priority is its severity, raised to the highest priority of the alerts it holds
(:func:`vedette.store.state.assets.priorities`: an alert's level raised by the most critical
asset it touches). A participating unit sees only what is its own: the priority of its own
units' alerts counts for it, and the asset of another unit is never named.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from vedette.events import LEVELS, level_rank
from vedette.store.state.assets import RAISE, Priority, priorities
from vedette.store.state.incidents import IncidentAlert
from vedette.store.state.models import Alert
from vedette.store.state.scope import Scope


def _bump(priority: Priority) -> int:
    return RAISE[priority.asset["criticality"]] if priority.asset else 0


def add_priorities(session: Session, scope: Scope, items: Sequence[dict[str, Any]]) -> None:
    """Set ``priority`` and ``asset`` on incident summaries (``id``, ``severity``, ``access``)."""
    ids = [int(item["id"]) for item in items]
    rows = (
        session.execute(
            select(IncidentAlert.incident_id, Alert)
            .join(Alert, Alert.id == IncidentAlert.alert_id)
            .where(IncidentAlert.incident_id.in_(ids))
        ).all()
        if ids
        else []
    )
    owners = {int(item["id"]) for item in items if item.get("access") == "owner"}
    seen = [(i, a) for i, a in rows if i in owners or scope.covers(a.unit_id)]
    found = priorities(session, [a for _, a in seen])
    best: dict[int, Priority] = {}
    for incident_id, alert in seen:
        p = found[alert.id]
        current = best.get(incident_id)
        if current is None or (p.rank, _bump(p)) > (current.rank, _bump(current)):
            best[incident_id] = p
    for item in items:
        severity = max(level_rank(str(item["severity"])), 0)
        top = best.get(int(item["id"]))
        if top is None or top.rank < severity:
            item["priority"], item["asset"] = LEVELS[severity], None
        else:
            item["priority"], item["asset"] = top.level, top.asset


def sort_by_priority(items: Sequence[dict[str, Any]]) -> list[dict[str, Any]]:
    """Highest priority first; then the more critical asset, the higher severity, the newer."""

    def key(item: dict[str, Any]) -> tuple[int, int, int, int]:
        asset = item.get("asset")
        bump = RAISE[asset["criticality"]] if asset else 0
        return (
            -level_rank(item["priority"]),
            -bump,
            -level_rank(item["severity"]),
            -int(item["id"]),
        )

    return sorted(items, key=key)
