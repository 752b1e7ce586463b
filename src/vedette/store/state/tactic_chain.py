"""ATT&CK tactic chains on one host: alerts that progress along the kill chain.

Alerts below the level that opens an incident stay alerts on their own, yet execution, then
credential access, then lateral movement on one host within the grouping window is an
intrusion however low each rule's level. :func:`tactic_chain` finds the longest chain of
distinct tactics, in kill-chain order and in time order (``first_seen``, then id), through the
new alert and the unit's other alerts on the same host in the window (open ones, in no
incident); the grouping (:func:`vedette.store.state.incidents.group_alert`) opens an incident
when it is long enough.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import timedelta
from typing import Final

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from vedette.store.state.models import Alert

KILL_CHAIN: Final = (
    "reconnaissance",
    "resource-development",
    "initial-access",
    "execution",
    "persistence",
    "privilege-escalation",
    "defense-evasion",
    "credential-access",
    "discovery",
    "lateral-movement",
    "collection",
    "command-and-control",
    "exfiltration",
    "impact",
)
"""The ATT&CK Enterprise tactics (short names) in kill-chain order."""
_STAGE: Final = {name: index for index, name in enumerate(KILL_CHAIN)}
MAX_ALERTS: Final = 500
"""Alerts of one host and window looked at (the newest)."""


def stages(alert: Alert) -> set[int]:
    """The kill-chain stages of an alert's ATT&CK techniques."""
    found: set[int] = set()
    for technique in alert.attack or []:
        if isinstance(technique, dict):
            for tactic in technique.get("tactics") or []:
                if tactic in _STAGE:
                    found.add(_STAGE[tactic])
    return found


def longest_chain(alerts: Sequence[Alert], through: int) -> list[str]:
    """The longest chain of strictly later tactics over ``alerts`` (time order), one tactic
    per alert, that passes through the alert with id ``through``; its tactics in order."""
    staged = [(a.id, sorted(stages(a))) for a in alerts]
    # best ending at / starting from (alert index, stage): (length, previous/next link)
    fwd: dict[tuple[int, int], tuple[int, tuple[int, int] | None]] = {}
    for i, (_, mine) in enumerate(staged):
        for s in mine:
            prev = max(
                ((fwd[k][0], k) for k in fwd if k[0] < i and k[1] < s),
                default=(0, None),
                key=lambda item: item[0],
            )
            fwd[(i, s)] = (prev[0] + 1, prev[1])
    bwd: dict[tuple[int, int], tuple[int, tuple[int, int] | None]] = {}
    for i in range(len(staged) - 1, -1, -1):
        for s in staged[i][1]:
            nxt = max(
                ((bwd[k][0], k) for k in bwd if k[0] > i and k[1] > s),
                default=(0, None),
                key=lambda item: item[0],
            )
            bwd[(i, s)] = (nxt[0] + 1, nxt[1])
    best: list[str] = []
    for i, (alert_id, mine) in enumerate(staged):
        if alert_id != through:
            continue
        for s in mine:
            if fwd[(i, s)][0] + bwd[(i, s)][0] - 1 <= len(best):
                continue
            head: list[int] = []
            link: tuple[int, int] | None = (i, s)
            while link is not None:
                head.append(link[1])
                link = fwd[link][1]
            tail: list[int] = []
            link = bwd[(i, s)][1]
            while link is not None:
                tail.append(link[1])
                link = bwd[link][1]
            best = [KILL_CHAIN[x] for x in [*reversed(head), *tail]]
    return best


def tactic_chain(
    session: Session, alert: Alert, window: timedelta, min_tactics: int
) -> list[str] | None:
    """The tactics of a chain of at least ``min_tactics`` through ``alert`` on its host (see
    the module doc), or None."""
    if min_tactics < 2 or not alert.host or not stages(alert):
        return None
    from vedette.store.state.incidents import IncidentAlert  # incidents imports this module

    held = select(IncidentAlert.alert_id)
    others = session.scalars(
        select(Alert)
        .where(
            Alert.unit_id == alert.unit_id,
            func.lower(Alert.host) == alert.host.lower(),
            Alert.id != alert.id,
            Alert.kind != "health",
            Alert.status != "closed",
            Alert.last_seen >= alert.first_seen - window,
            Alert.first_seen <= alert.last_seen + window,
            Alert.id.not_in(held),
        )
        .order_by(Alert.id.desc())
        .limit(MAX_ALERTS)
    ).all()
    ordered = sorted([alert, *others], key=lambda a: (a.first_seen, a.id))
    chain = longest_chain(ordered, alert.id)
    return chain if len(chain) >= min_tactics else None
