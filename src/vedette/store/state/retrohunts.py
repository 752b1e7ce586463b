"""Retro-hunt jobs: one Sigma rule or indicator set run over a unit's stored events, later.

A job belongs to the unit of the caller who started it (``owner_unit_id``) and names the units
whose events it reads (``units``, each covered by the caller when it was started). The runner
(:mod:`vedette.server.retrohunt`, or the work-queue tasks of the scale-out mode,
:mod:`vedette.store.state.retrohunt_tasks`) moves it from ``queued`` to ``running`` and to
``done``, ``cancelled`` or ``failed``, writing its progress as it goes (files, unit-days and
units done of their totals: a unit-day is one unit's events of one day, held in one or more
files). Only the owner side (the owner unit and the units above it) sees a job: anyone else gets
:class:`NotFound`, as for an id that does not exist.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any, Final

from sqlalchemy import (
    JSON,
    Boolean,
    Float,
    ForeignKey,
    Index,
    Integer,
    String,
    Text,
    select,
    text,
)
from sqlalchemy.orm import Mapped, Session, defer, mapped_column

from vedette.store.state.audit import append_audit, jsonable
from vedette.store.state.models import Base, Unit, utcnow
from vedette.store.state.scope import Invalid, NotFound, Scope, require

STATUSES: Final = ("queued", "running", "done", "cancelled", "failed")
FINISHED: Final = ("done", "cancelled", "failed")
KINDS: Final = ("sigma", "intel")
WARNING_KIND: Final = "warning"
"""The coordinator's early-warning search of an alert's observables (scale-out mode: its
(unit, day) tasks run on the work queue; :mod:`vedette.server.warning_tasks`). Not a kind the
API starts."""
MAX_SAMPLES: Final = 100
"""Hits kept on the job itself (each hit is an alert detection too)."""


class RetroHunt(Base):
    """One retro-hunt job."""

    __tablename__ = "retrohunts"
    # One early-warning job per alert (its title names the alert; migration 0019).
    __table_args__ = (
        Index(
            "uq_retrohunts_warning_title",
            "title",
            unique=True,
            sqlite_where=text("kind = 'warning'"),
            postgresql_where=text("kind = 'warning'"),
        ),
    )
    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    owner_unit_id: Mapped[int] = mapped_column(ForeignKey("units.id"), index=True)
    kind: Mapped[str] = mapped_column(String(16))
    title: Mapped[str] = mapped_column(Text)
    spec: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
    units: Mapped[list[Any]] = mapped_column(JSON, default=list)
    time_from: Mapped[datetime | None] = mapped_column()
    time_to: Mapped[datetime | None] = mapped_column()
    incident_id: Mapped[int | None] = mapped_column(Integer)
    status: Mapped[str] = mapped_column(String(16), default="queued")
    progress: Mapped[float] = mapped_column(Float, default=0.0)
    files_total: Mapped[int] = mapped_column(Integer, default=0)
    files_done: Mapped[int] = mapped_column(Integer, default=0)
    days_total: Mapped[int] = mapped_column(Integer, default=0, server_default=text("0"))
    days_done: Mapped[int] = mapped_column(Integer, default=0, server_default=text("0"))
    units_done: Mapped[int] = mapped_column(Integer, default=0, server_default=text("0"))
    events_read: Mapped[int] = mapped_column(Integer, default=0)
    hits: Mapped[int] = mapped_column(Integer, default=0)
    excepted: Mapped[int] = mapped_column(Integer, default=0)
    alert_ids: Mapped[list[Any]] = mapped_column(JSON, default=list)
    samples: Mapped[list[Any]] = mapped_column(JSON, default=list)
    error: Mapped[str | None] = mapped_column(Text)
    cancel_requested: Mapped[bool] = mapped_column(Boolean, default=False)
    created_by: Mapped[str] = mapped_column(String(160))
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    started_at: Mapped[datetime | None] = mapped_column()
    finished_at: Mapped[datetime | None] = mapped_column()


def create_retrohunt(
    session: Session,
    scope: Scope | None,
    *,
    owner_unit_id: int,
    kind: str,
    title: str,
    spec: dict[str, Any],
    units: list[str],
    time_from: datetime | None,
    time_to: datetime | None,
    incident_id: int | None = None,
    actor: str | None = None,
) -> RetroHunt:
    """A queued job. ``scope`` is the caller's (None for the centre's own automatic hunts);
    the units must already be resolved within it. Audited."""
    if scope is not None:
        require(scope.can_write_alerts(), "start retro-hunts")
        if not scope.covers(owner_unit_id):
            raise NotFound("no such unit")
    if kind not in KINDS and not (scope is None and kind == WARNING_KIND):
        raise Invalid(f"kind must be one of {', '.join(KINDS)}")
    if time_from is not None and time_to is not None and time_from > time_to:
        raise Invalid("'from' is after 'to'")
    who = actor or (scope.actor if scope is not None else "retrohunt")
    row = RetroHunt(
        owner_unit_id=owner_unit_id,
        kind=kind,
        title=title[:500],
        spec=jsonable(spec),
        units=sorted(set(units)),
        time_from=time_from,
        time_to=time_to,
        incident_id=incident_id,
        status="queued",
        created_by=who,
    )
    session.add(row)
    session.flush()
    append_audit(
        session,
        actor=who,
        action="retrohunt.create",
        object_type="retrohunt",
        object_id=row.id,
        unit_id=owner_unit_id,
        before=None,
        after={
            "kind": kind,
            "title": row.title,
            "units": row.units,
            "from": None if time_from is None else time_from.isoformat(),
            "to": None if time_to is None else time_to.isoformat(),
            "incident_id": incident_id,
        },
    )
    return row


def _get(session: Session, scope: Scope, job_id: int) -> RetroHunt:
    require(scope.can_read(), "read retro-hunts")
    row = session.get(RetroHunt, job_id)
    if row is None or not scope.covers(row.owner_unit_id):
        raise NotFound(f"no retro-hunt {job_id}")
    return row


def retrohunt_out(row: RetroHunt, owner: str, *, detail: bool = True) -> dict[str, Any]:
    """The API shape of a job (``detail`` adds the sample hits and alert ids)."""
    out: dict[str, Any] = {
        "id": row.id,
        "unit": owner,
        "kind": row.kind,
        "title": row.title,
        "units": row.units or [],
        "from": row.time_from,
        "to": row.time_to,
        "incident_id": row.incident_id,
        "status": row.status,
        "progress": row.progress,
        "files_total": row.files_total,
        "files_done": row.files_done,
        "days_total": row.days_total,
        "days_done": row.days_done,
        "units_total": len(row.units or []),
        "units_done": row.units_done,
        "events_read": row.events_read,
        "hits": row.hits,
        "excepted": row.excepted,
        "alerts": len(row.alert_ids or []),
        "error": row.error,
        "created_by": row.created_by,
        "created_at": row.created_at,
        "started_at": row.started_at,
        "finished_at": row.finished_at,
    }
    if detail:
        out["alert_ids"] = row.alert_ids or []
        out["samples"] = row.samples or []
    return out


def _owner_name(session: Session, row: RetroHunt) -> str:
    unit = session.get(Unit, row.owner_unit_id)
    return unit.name if unit is not None else ""


def get_retrohunt(session: Session, scope: Scope, job_id: int) -> dict[str, Any]:
    """One of the caller's jobs."""
    row = _get(session, scope, job_id)
    return retrohunt_out(row, _owner_name(session, row))


def list_retrohunts(
    session: Session, scope: Scope, *, status: str | None = None, limit: int = 100
) -> list[dict[str, Any]]:
    """The caller's units' jobs, newest first (without samples)."""
    require(scope.can_read(), "read retro-hunts")
    if status is not None and status not in STATUSES:
        raise Invalid(f"status must be one of {', '.join(STATUSES)}")
    query = (
        select(RetroHunt, Unit.name)
        .options(defer(RetroHunt.spec))  # rule texts or indicator sets: not listed, maybe large
        .join(Unit, Unit.id == RetroHunt.owner_unit_id)
        .where(RetroHunt.owner_unit_id.in_(scope.unit_ids))
    )
    if status is not None:
        query = query.where(RetroHunt.status == status)
    rows = session.execute(query.order_by(RetroHunt.id.desc()).limit(max(1, min(limit, 1000))))
    return [retrohunt_out(row, name, detail=False) for row, name in rows]


def request_cancel(session: Session, scope: Scope, job_id: int) -> RetroHunt:
    """Ask a job to stop (a queued job is cancelled at once; a finished one is left). Audited."""
    row = _get(session, scope, job_id)
    require(scope.can_write_alerts(), "cancel retro-hunts")
    if row.status in FINISHED:
        return row
    row.cancel_requested = True
    if row.status == "queued":
        row.status = "cancelled"
        row.finished_at = utcnow()
    append_audit(
        session,
        actor=scope.actor,
        action="retrohunt.cancel",
        object_type="retrohunt",
        object_id=row.id,
        unit_id=row.owner_unit_id,
        before=None,
        after={"status": row.status},
    )
    session.flush()
    return row


def unfinished(session: Session) -> list[int]:
    """Ids of jobs queued or running (to take up again after a restart), oldest first."""
    query = select(RetroHunt.id).where(RetroHunt.status.in_(("queued", "running")))
    return list(session.scalars(query.order_by(RetroHunt.id)))
