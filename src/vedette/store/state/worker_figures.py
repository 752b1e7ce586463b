"""Counters of the scale-out worker processes, in the state store for the api's /metrics.

A worker process counts in memory (events through detection, detections by level, alerts,
errors, lag, ...); the api, which scrapes, runs no worker. Each worker publishes its totals
since it started in its ``role_members`` row (role ``worker``) every few seconds, and the api
sums the rows. A process's counts must not leave the sum when it stops or dies (Prometheus
would read the drop as a counter reset): a worker that stops folds its row into the
``worker:retired`` row, in one transaction, and the row of a worker that died is folded by the
next worker that publishes once it has been expired for :data:`FORGET_SECONDS`. What a killed
worker counted after its last publication is lost from the sum (the next owner of its
partitions redoes that work and counts it). Gauges (the lag) are read from live workers only.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, Final

from sqlalchemy import select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from vedette.store.state.duties import RoleMember

__all__ = ["RETIRED", "WORKER", "WorkerTotals", "publish", "retire", "totals"]

WORKER: Final = "worker"
"""The role of the rows the worker processes publish."""
RETIRED: Final = "worker:retired"
"""Owner (and role) of the row the stopped and dead workers' counts are folded into."""
FORGET_SECONDS: Final = 600.0
"""A dead worker's row is folded this long after it expired."""
GAUGES: Final = ("lag_seconds",)


@dataclass(slots=True)
class WorkerTotals:
    """The workers' counters summed: plain ones, per-key ones, and the live workers' gauges."""

    counters: dict[str, int] = field(default_factory=dict)
    by_key: dict[str, dict[str, int]] = field(default_factory=dict)
    gauges: dict[str, float] = field(default_factory=dict)
    live: int = 0


def _fold(into: dict[str, Any], figures: Mapping[str, Any]) -> None:
    """Add ``figures``' counters (ints, and dicts of ints) to ``into``; gauges are skipped."""
    for name, value in figures.items():
        if name in GAUGES:
            continue
        if isinstance(value, dict):
            inner = into.setdefault(name, {})
            if isinstance(inner, dict):
                for key, count in value.items():
                    if isinstance(count, int):
                        inner[str(key)] = int(inner.get(str(key), 0)) + count
        elif isinstance(value, int) and not isinstance(value, bool):
            into[name] = int(into.get(name, 0)) + value


def _retired(session: Session) -> RoleMember:
    """The retired row, locked until commit (made first when missing)."""
    row = session.get(RoleMember, RETIRED, with_for_update=True)
    if row is not None:
        return row
    try:
        with session.begin_nested():
            session.add(RoleMember(owner=RETIRED, role=RETIRED, expires_at=0.0, stats={}))
    except IntegrityError:
        pass  # another worker made it first
    row = session.get(RoleMember, RETIRED, with_for_update=True, populate_existing=True)
    assert row is not None
    return row


def _fold_rows(session: Session, rows: list[RoleMember]) -> None:
    if not rows:
        return
    retired = _retired(session)
    summed = dict(retired.stats or {})
    for row in rows:
        _fold(summed, row.stats or {})
        session.delete(row)
    retired.stats = summed


def publish(
    session: Session, owner: str, now: float, ttl: float, figures: Mapping[str, Any]
) -> None:
    """This worker is alive for ``ttl`` more seconds with these totals; the rows of workers
    dead for long are folded into the retired row (flushed, not committed)."""
    member = session.get(RoleMember, owner)
    if member is None:
        session.add(RoleMember(owner=owner, role=WORKER, expires_at=now + ttl, stats=dict(figures)))
    else:
        member.expires_at = now + ttl
        member.stats = dict(figures)
    dead = list(
        session.scalars(
            select(RoleMember)
            .where(RoleMember.role == WORKER, RoleMember.expires_at < now - FORGET_SECONDS)
            .with_for_update(skip_locked=True)
        )
    )
    _fold_rows(session, dead)
    session.flush()


def retire(session: Session, owner: str, figures: Mapping[str, Any]) -> None:
    """This worker stops: its final totals go into the retired row (flushed, not committed)."""
    member = session.get(RoleMember, owner, with_for_update=True)
    if member is None:
        member = RoleMember(owner=owner, role=WORKER, expires_at=0.0, stats={})
        session.add(member)
        session.flush()
    member.stats = dict(figures)
    _fold_rows(session, [member])
    session.flush()


def totals(session: Session, now: float) -> WorkerTotals:
    """Every worker row and the retired one summed; gauges (max) from the live workers."""
    out = WorkerTotals()
    summed: dict[str, Any] = {}
    rows = session.scalars(select(RoleMember).where(RoleMember.role.in_((WORKER, RETIRED))))
    for row in rows:
        stats = row.stats or {}
        _fold(summed, stats)
        if row.role == WORKER and row.expires_at > now:
            out.live += 1
            for gauge in GAUGES:
                value = stats.get(gauge)
                if isinstance(value, int | float):
                    out.gauges[gauge] = max(out.gauges.get(gauge, 0.0), float(value))
    for name, value in summed.items():
        if isinstance(value, dict):
            out.by_key[name] = value
        else:
            out.counters[name] = int(value)
    return out
