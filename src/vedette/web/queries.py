"""What the console's pages show, read through the caller's :class:`Scope`.

Every query here filters by ``scope.unit_ids`` (or goes through the data layer that does), so a
page never shows more than the same user would get from the API. No FastAPI here: plain
functions over a session, called from :mod:`vedette.server.routes_console`.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

from sqlalchemy import or_, select
from sqlalchemy.orm import Session, joinedload

from vedette.store.state.alerts import update_alert
from vedette.store.state.models import Alert, Unit
from vedette.store.state.positions import ingest_rates
from vedette.store.state.scope import Invalid, NotFound, Scope, require
from vedette.store.state.units import UnitInfo, list_units

LEVELS = ("informational", "low", "medium", "high", "critical")
STATUSES = ("new", "acknowledged", "in_progress", "closed")
CLOSE_REASONS = ("true_positive", "false_positive", "benign")
SORTS = {
    "newest": (Alert.id.desc(),),
    "oldest": (Alert.id.asc(),),
    "last_seen": (Alert.last_seen.desc(), Alert.id.desc()),
    "count": (Alert.count.desc(), Alert.id.desc()),
}
MAX_ROWS = 500
OVERVIEW_ROWS = 50_000


@dataclass(frozen=True, slots=True)
class QueueFilter:
    """The alert queue's filter and sort, from the page's query string."""

    status: str | None = None
    level: str | None = None
    unit: str | None = None
    search: str = ""
    sort: str = "newest"
    limit: int = 200


def level_rank(level: str) -> int:
    """Order of a level, informational lowest."""
    return LEVELS.index(level) if level in LEVELS else -1


def queue(session: Session, scope: Scope, wanted: QueueFilter) -> list[Alert]:
    """The caller's alerts matching ``wanted``; level sort is done here to rank by severity."""
    require(scope.can_read(), "read alerts")
    query = select(Alert).options(joinedload(Alert.unit)).where(Alert.unit_id.in_(scope.unit_ids))
    if wanted.status in STATUSES:
        query = query.where(Alert.status == wanted.status)
    elif wanted.status == "open":
        query = query.where(Alert.status != "closed")
    if wanted.level in LEVELS:
        query = query.where(Alert.level == wanted.level)
    if wanted.unit:
        query = query.join(Unit, Unit.id == Alert.unit_id).where(Unit.name == wanted.unit)
    if wanted.search:
        needle = f"%{wanted.search}%"
        query = query.where(
            or_(
                Alert.rule_title.ilike(needle),
                Alert.host.ilike(needle),
                Alert.rule_id.ilike(needle),
                Alert.assignee.ilike(needle),
            )
        )
    limit = max(1, min(wanted.limit, MAX_ROWS))
    if wanted.sort == "level":
        # Levels are words: rank them here over the newest rows rather than in SQL.
        rows = list(session.scalars(query.order_by(Alert.id.desc()).limit(limit)))
        return sorted(rows, key=lambda a: (-level_rank(a.level), -a.id))
    order = SORTS.get(wanted.sort, SORTS["newest"])
    return list(session.scalars(query.order_by(*order).limit(limit)))


def alerts_after(session: Session, scope: Scope, after_id: int, limit: int = 50) -> list[Alert]:
    """The caller's alerts newer than ``after_id`` (what the live stream announces)."""
    require(scope.can_read(), "read alerts")
    query = (
        select(Alert)
        .options(joinedload(Alert.unit))
        .where(Alert.unit_id.in_(scope.unit_ids), Alert.id > after_id)
        .order_by(Alert.id.asc())
        .limit(limit)
    )
    return list(session.scalars(query))


def newest_alert_id(session: Session, scope: Scope) -> int:
    """The id of the caller's newest alert (0 when none)."""
    row = session.scalars(
        select(Alert.id).where(Alert.unit_id.in_(scope.unit_ids)).order_by(Alert.id.desc()).limit(1)
    ).first()
    return int(row or 0)


def related(session: Session, scope: Scope, alert: Alert, limit: int = 10) -> list[Alert]:
    """Other alerts of the caller's on the same host or from the same rule, newest first."""
    clauses = [Alert.rule_id == alert.rule_id]
    if alert.host:
        clauses.append(Alert.host == alert.host)
    query = (
        select(Alert)
        .options(joinedload(Alert.unit))
        .where(Alert.unit_id.in_(scope.unit_ids), Alert.id != alert.id, or_(*clauses))
        .order_by(Alert.id.desc())
        .limit(limit)
    )
    return list(session.scalars(query))


@dataclass(slots=True)
class BulkResult:
    """How a bulk action went: ids changed and ids refused (not found or invalid)."""

    done: list[int] = field(default_factory=list)
    refused: list[int] = field(default_factory=list)


def bulk(
    session: Session,
    scope: Scope,
    ids: list[int],
    *,
    action: str,
    reason: str | None = None,
    assignee: str | None = None,
) -> BulkResult:
    """Acknowledge, assign, close (with a reason) or reopen each alert of ``ids`` in scope."""
    require(scope.can_write_alerts(), "change alerts")
    result = BulkResult()
    for alert_id in ids:
        try:
            if action == "acknowledge":
                update_alert(session, scope, alert_id, status="acknowledged")
            elif action == "close":
                update_alert(session, scope, alert_id, status="closed", close_reason=reason)
            elif action == "reopen":
                update_alert(session, scope, alert_id, status="new")
            elif action == "assign":
                update_alert(session, scope, alert_id, assignee=assignee or None)
            else:
                raise Invalid(f"unknown action {action!r}")
            result.done.append(alert_id)
        except (NotFound, Invalid):
            result.refused.append(alert_id)
    return result


# -- overview ------------------------------------------------------------------------------


@dataclass(slots=True)
class UnitHealth:
    """A unit's ingest health as the overview shows it."""

    info: UnitInfo
    received: int
    last_received_at: datetime | None
    backlog: int
    silent: bool
    rates: tuple[float, ...] = ()
    """Events/s received over :data:`~vedette.store.state.positions.RATE_WINDOWS`."""


@dataclass(slots=True)
class Overview:
    """Counts behind the overview page for one period."""

    since: datetime
    buckets: list[tuple[datetime, Counter[str]]]
    by_level: Counter[str]
    by_unit: Counter[str]
    by_tactic: Counter[str]
    by_technique: Counter[str]
    top_rules: list[tuple[str, int]]
    top_hosts: list[tuple[str, int]]
    total: int
    open_total: int

    @property
    def peak(self) -> int:
        """The largest bucket's count (at least 1, to scale the chart)."""
        return max([sum(c.values()) for _, c in self.buckets] + [1])


def overview(
    session: Session, scope: Scope, *, hours: int, now: datetime | None = None
) -> Overview:
    """Alerts of the caller's units seen in the last ``hours``, counted every way the page
    draws them (by time bucket and level, unit, tactic, technique, rule, host)."""
    require(scope.can_read(), "read alerts")
    now = now or datetime.now(UTC)
    since = now - timedelta(hours=hours)
    step = timedelta(hours=1) if hours <= 48 else timedelta(days=1)
    start = _floor(since, step)
    slots = int((now - start) / step) + 1
    buckets: list[tuple[datetime, Counter[str]]] = [
        (start + i * step, Counter()) for i in range(slots)
    ]
    by_level: Counter[str] = Counter()
    by_unit: Counter[str] = Counter()
    by_tactic: Counter[str] = Counter()
    by_technique: Counter[str] = Counter()
    rules: Counter[str] = Counter()
    hosts: Counter[str] = Counter()
    open_total = 0
    rows = session.execute(
        select(
            Alert.level,
            Unit.name,
            Alert.attack,
            Alert.rule_title,
            Alert.host,
            Alert.count,
            Alert.last_seen,
            Alert.status,
        )
        .join(Unit, Unit.id == Alert.unit_id)
        .where(Alert.unit_id.in_(scope.unit_ids), Alert.last_seen >= since.replace(tzinfo=None))
        .order_by(Alert.id.desc())
        .limit(OVERVIEW_ROWS)
    ).all()
    for level, unit, attack, title, host, count, last_seen, status in rows:
        seen = last_seen if last_seen.tzinfo else last_seen.replace(tzinfo=UTC)
        index = min(max(int((seen - start) / step), 0), slots - 1)
        buckets[index][1][level] += count
        by_level[level] += count
        by_unit[unit] += count
        rules[title] += count
        if host:
            hosts[host] += count
        if status != "closed":
            open_total += 1
        for technique in attack or []:
            by_technique[str(technique.get("id"))] += count
            for tactic in technique.get("tactics") or []:
                by_tactic[str(tactic)] += count
    return Overview(
        since=since,
        buckets=buckets,
        by_level=by_level,
        by_unit=by_unit,
        by_tactic=by_tactic,
        by_technique=by_technique,
        top_rules=rules.most_common(10),
        top_hosts=hosts.most_common(10),
        total=sum(by_level.values()),
        open_total=open_total,
    )


def _floor(moment: datetime, step: timedelta) -> datetime:
    if step >= timedelta(days=1):
        return moment.replace(hour=0, minute=0, second=0, microsecond=0)
    return moment.replace(minute=0, second=0, microsecond=0)


def unit_health(
    session: Session,
    scope: Scope,
    received: dict[str, tuple[int, float]],
    now: datetime | None = None,
) -> list[UnitHealth]:
    """Each of the caller's units with received/stored counts, backlog and silence.

    A unit is silent when it has a ``silent_after`` and its last batch is older than that, or
    when it has one and has never sent anything. Events/s come from the state store's buckets
    (written by whichever process runs the worker).
    """
    now = now or datetime.now(UTC)
    out = []
    units = list_units(session, scope)
    rates = ingest_rates(session, [info.id for info in units], now)
    for info in units:
        count, last = received.get(info.name, (0, 0.0))
        last_at = datetime.fromtimestamp(last, tz=UTC) if last else info.last_received_at
        if last_at is not None and last_at.tzinfo is None:
            last_at = last_at.replace(tzinfo=UTC)
        silent = bool(
            info.silent_after_seconds
            and (last_at is None or (now - last_at).total_seconds() > info.silent_after_seconds)
        )
        out.append(
            UnitHealth(
                info=info,
                received=count,
                last_received_at=last_at,
                backlog=max(0, count - info.events_stored),
                silent=silent,
                rates=rates.get(info.id, ()),
            )
        )
    return out


def unit_tree(units: list[UnitInfo]) -> list[tuple[int, UnitInfo]]:
    """The units in tree order with their depth (roots of the caller's sight first)."""
    names = {u.name for u in units}
    children: dict[str | None, list[UnitInfo]] = {}
    for unit in units:
        parent = unit.parent if unit.parent in names else None
        children.setdefault(parent, []).append(unit)
    ordered: list[tuple[int, UnitInfo]] = []

    def walk(parent: str | None, depth: int) -> None:
        for unit in sorted(children.get(parent, []), key=lambda u: u.name):
            ordered.append((depth, unit))
            walk(unit.name, depth + 1)

    walk(None, 0)
    return ordered


def as_dict(alert: Alert) -> dict[str, Any]:
    """The fields of an alert a page or the live stream shows."""
    return {
        "id": alert.id,
        "unit": alert.unit.name,
        "rule_title": alert.rule_title,
        "level": alert.level,
        "status": alert.status,
        "host": alert.host,
        "count": alert.count,
        "last_seen": alert.last_seen,
    }
