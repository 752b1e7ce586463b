"""Incidents: alerts grouped into one case that units work together, shared explicitly.

An incident has an *owner unit* (the one working it), an *origin unit* (where it started; the
grouping key, kept across escalation), participating units, a severity, a status, its alerts,
tasks, comments and the audit trail (every write here appends to it).

Who sees what:

- the owner unit and every unit above it (the scope rule of the tree) see everything;
- a participating unit sees the incident's header, the units, the alerts and observables the
  owner chose in its *share profile*, its own units' alerts, the tasks handed to it, and the
  comments marked shared or written by a participant; it can comment and move its own tasks.
  Its role still applies: a viewer of a participating unit reads, never writes;
- anyone else gets :class:`NotFound`, as for a missing id.

Automatic grouping (:func:`group_alert`, run off the worker's hot path): an alert joins an open
incident of its origin unit holding an alert with the same host, user or observable whose time
is within the window (default 1 h) of it; otherwise an alert at ``open_level`` (default
``high``) or above opens a new incident, which also takes in the unit's recent unattached
alerts that share a key with it. Health alerts (silent sensors) never group.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any, Final, cast

from sqlalchemy import (
    JSON,
    Boolean,
    ForeignKey,
    Integer,
    String,
    Text,
    UniqueConstraint,
    or_,
    select,
)
from sqlalchemy.orm import Mapped, Session, mapped_column

from vedette.events import LEVELS
from vedette.store.state.alert_keys import AlertKey, grouping_keys, key_hash, sample_user
from vedette.store.state.audit import append_audit, jsonable
from vedette.store.state.models import Alert, AuditRecord, Base, Unit, as_utc, utcnow
from vedette.store.state.scope import Invalid, NotFound, Scope, require
from vedette.store.state.tactic_chain import tactic_chain

STATUSES: Final = ("open", "in_progress", "closed")
TASK_STATUSES: Final = ("open", "done")
MAX_LIMIT: Final = 1000


class Incident(Base):
    """Alerts worked as one case; see the module docstring."""

    __tablename__ = "incidents"
    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    owner_unit_id: Mapped[int] = mapped_column(ForeignKey("units.id"), index=True)
    origin_unit_id: Mapped[int] = mapped_column(ForeignKey("units.id"), index=True)
    title: Mapped[str] = mapped_column(Text)
    severity: Mapped[str] = mapped_column(String(16))
    status: Mapped[str] = mapped_column(String(16), default="open")
    assignee: Mapped[str | None] = mapped_column(String(128))
    created_by: Mapped[str] = mapped_column(String(160))
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(default=utcnow)


class IncidentAlert(Base):
    """An alert of an incident (an alert is in one incident at most)."""

    __tablename__ = "incident_alerts"
    alert_id: Mapped[int] = mapped_column(
        ForeignKey("alerts.id", ondelete="CASCADE"), primary_key=True
    )
    incident_id: Mapped[int] = mapped_column(
        ForeignKey("incidents.id", ondelete="CASCADE"), index=True
    )
    added_by: Mapped[str] = mapped_column(String(160))
    added_at: Mapped[datetime] = mapped_column(default=utcnow)


class IncidentShare(Base):
    """A participating unit and its share profile: which alerts and observables it sees."""

    __tablename__ = "incident_shares"
    __table_args__ = (UniqueConstraint("incident_id", "unit_id"),)
    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    incident_id: Mapped[int] = mapped_column(
        ForeignKey("incidents.id", ondelete="CASCADE"), index=True
    )
    unit_id: Mapped[int] = mapped_column(ForeignKey("units.id"), index=True)
    alert_ids: Mapped[list[Any]] = mapped_column(JSON, default=list)
    observables: Mapped[list[Any]] = mapped_column(JSON, default=list)
    added_by: Mapped[str] = mapped_column(String(160))
    added_at: Mapped[datetime] = mapped_column(default=utcnow)


class IncidentTask(Base):
    """Work to do on an incident, handed to a unit and optionally a person, with a due date."""

    __tablename__ = "incident_tasks"
    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    incident_id: Mapped[int] = mapped_column(
        ForeignKey("incidents.id", ondelete="CASCADE"), index=True
    )
    unit_id: Mapped[int] = mapped_column(ForeignKey("units.id"))
    title: Mapped[str] = mapped_column(Text)
    assignee: Mapped[str | None] = mapped_column(String(128))
    due_at: Mapped[datetime | None] = mapped_column()
    status: Mapped[str] = mapped_column(String(16), default="open")
    created_by: Mapped[str] = mapped_column(String(160))
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(default=utcnow)


class IncidentComment(Base):
    """A comment; ``shared`` ones (and participants' own) are seen by participating units."""

    __tablename__ = "incident_comments"
    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    incident_id: Mapped[int] = mapped_column(
        ForeignKey("incidents.id", ondelete="CASCADE"), index=True
    )
    unit_id: Mapped[int] = mapped_column(ForeignKey("units.id"))
    author: Mapped[str] = mapped_column(String(160))
    text: Mapped[str] = mapped_column(Text)
    shared: Mapped[bool] = mapped_column(Boolean, default=False)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)


# -- access ------------------------------------------------------------------------------------


@dataclass(slots=True)
class Access:
    """An incident as the caller may reach it: as owner, or as a participant with shares."""

    incident: Incident
    owner: bool
    shares: list[IncidentShare]

    @property
    def participant_units(self) -> set[int]:
        """The caller's participating unit ids (empty for an owner)."""
        return {share.unit_id for share in self.shares}


def _access(session: Session, scope: Scope, incident_id: int) -> Access:
    require(scope.can_read(), "read incidents")
    incident = session.get(Incident, incident_id)
    if incident is None:
        raise NotFound(f"no incident {incident_id}")
    if scope.covers(incident.owner_unit_id):
        return Access(incident, True, [])
    shares = list(
        session.scalars(
            select(IncidentShare).where(
                IncidentShare.incident_id == incident_id,
                IncidentShare.unit_id.in_(scope.unit_ids),
            )
        )
    )
    if not shares:
        raise NotFound(f"no incident {incident_id}")
    return Access(incident, False, shares)


def _owned(session: Session, scope: Scope, incident_id: int, what: str) -> Incident:
    """The incident when the caller owns it and may write; a participant is Forbidden."""
    access = _access(session, scope, incident_id)
    require(scope.can_write_alerts(), what)
    require(access.owner, f"{what} (only the owner unit may)")
    return access.incident


def _audit(
    session: Session,
    actor: str,
    incident: Incident,
    action: str,
    before: dict[str, Any] | None,
    after: dict[str, Any] | None,
) -> None:
    append_audit(
        session,
        actor=actor,
        action=f"incident.{action}",
        object_type="incident",
        object_id=incident.id,
        unit_id=incident.owner_unit_id,
        before=before,
        after=after,
    )


def _rank(level: str) -> int:
    return LEVELS.index(level) if level in LEVELS else 0


def _check_severity(severity: str) -> None:
    if severity not in LEVELS:
        raise Invalid(f"severity must be one of {', '.join(LEVELS)}")


def _names(session: Session, ids: Iterable[int]) -> dict[int, str]:
    wanted = set(ids)
    if not wanted:
        return {}
    rows = session.execute(select(Unit.id, Unit.name).where(Unit.id.in_(wanted))).all()
    return {unit_id: name for unit_id, name in rows}


def _alerts_of(session: Session, incident_id: int) -> list[Alert]:
    query = (
        select(Alert)
        .join(IncidentAlert, IncidentAlert.alert_id == Alert.id)
        .where(IncidentAlert.incident_id == incident_id)
        .order_by(Alert.first_seen, Alert.id)
    )
    return list(session.scalars(query))


# -- create, list, read, change ------------------------------------------------------------------


def create_incident(
    session: Session,
    scope: Scope,
    *,
    title: str,
    severity: str = "medium",
    alert_ids: Sequence[int] = (),
    unit: str | None = None,
    actor: str | None = None,
) -> Incident:
    """Open an incident owned by ``unit`` (default: the caller's unit) with those alerts."""
    require(scope.can_write_alerts(), "open incidents")
    _check_severity(severity)
    if not title.strip():
        raise Invalid("an incident needs a title")
    if unit is None:
        owner_id = scope.principal.unit_id
    else:
        row = session.scalar(select(Unit).where(Unit.name == unit))
        if row is None or not scope.covers(row.id):
            raise NotFound(f"no unit {unit!r}")
        owner_id = row.id
    incident = Incident(
        owner_unit_id=owner_id,
        origin_unit_id=owner_id,
        title=title.strip(),
        severity=severity,
        status="open",
        created_by=actor or scope.actor,
    )
    session.add(incident)
    session.flush()
    _audit(session, actor or scope.actor, incident, "create", None, _header(incident))
    _notify(session, incident)
    if alert_ids:
        attach_alerts(session, scope, incident.id, alert_ids, actor=actor)
    return incident


def _notify(session: Session, incident: Incident) -> None:
    """Notify the channels that want new incidents, in the incident's own transaction."""
    from vedette.store.state.notifications import enqueue

    owner = session.scalar(select(Unit.name).where(Unit.id == incident.owner_unit_id))
    enqueue(
        session,
        kind="incident",
        unit_id=incident.owner_unit_id,
        level=incident.severity,
        object_type="incident",
        object_id=incident.id,
        payload={"id": incident.id, "unit": owner, **_header(incident)},
    )


def _header(incident: Incident) -> dict[str, Any]:
    return {
        "title": incident.title,
        "severity": incident.severity,
        "status": incident.status,
        "assignee": incident.assignee,
        "owner_unit_id": incident.owner_unit_id,
    }


def list_incidents(
    session: Session,
    scope: Scope,
    *,
    status: str | None = None,
    limit: int = 100,
) -> list[dict[str, Any]]:
    """The incidents the caller owns or takes part in, newest first (summaries)."""
    require(scope.can_read(), "read incidents")
    if status is not None and status not in STATUSES:
        raise Invalid(f"status must be one of {', '.join(STATUSES)}")
    shared_ids = select(IncidentShare.incident_id).where(IncidentShare.unit_id.in_(scope.unit_ids))
    query = select(Incident).where(
        or_(Incident.owner_unit_id.in_(scope.unit_ids), Incident.id.in_(shared_ids))
    )
    if status is not None:
        query = query.where(Incident.status == status)
    rows = list(session.scalars(query.order_by(Incident.id.desc()).limit(min(limit, MAX_LIMIT))))
    names = _names(session, {r.owner_unit_id for r in rows})
    out = []
    for incident in rows:
        owner = scope.covers(incident.owner_unit_id)
        out.append({**_summary(incident, names), "access": "owner" if owner else "participant"})
    return out


def _summary(incident: Incident, names: dict[int, str]) -> dict[str, Any]:
    return {
        "id": incident.id,
        "title": incident.title,
        "severity": incident.severity,
        "status": incident.status,
        "assignee": incident.assignee,
        "owner_unit": names.get(incident.owner_unit_id),
        "created_at": incident.created_at,
        "updated_at": incident.updated_at,
    }


def incident_detail(session: Session, scope: Scope, incident_id: int) -> dict[str, Any]:
    """One incident as the caller may see it: alerts, units, tasks, comments, timeline,
    observables (and, for the owner side, the audit trail)."""
    access = _access(session, scope, incident_id)
    incident = access.incident
    all_alerts = _alerts_of(session, incident.id)
    shares = list(
        session.scalars(select(IncidentShare).where(IncidentShare.incident_id == incident.id))
    )
    if access.owner:
        alerts = all_alerts
        observables = _observables(all_alerts)
    else:
        shared_ids = {int(a) for s in access.shares for a in s.alert_ids}
        alerts = [a for a in all_alerts if a.id in shared_ids or scope.covers(a.unit_id)]
        observables = _dedup([o for s in access.shares for o in s.observables])
    task_query = select(IncidentTask).where(IncidentTask.incident_id == incident.id)
    if not access.owner:
        task_query = task_query.where(IncidentTask.unit_id.in_(access.participant_units))
    tasks = list(session.scalars(task_query.order_by(IncidentTask.id)))
    comment_query = select(IncidentComment).where(IncidentComment.incident_id == incident.id)
    if not access.owner:
        participants = {s.unit_id for s in shares}
        comment_query = comment_query.where(
            or_(IncidentComment.shared.is_(True), IncidentComment.unit_id.in_(participants))
        )
    comments = list(session.scalars(comment_query.order_by(IncidentComment.id)))
    names = _names(
        session,
        {incident.owner_unit_id, incident.origin_unit_id}
        | {s.unit_id for s in shares}
        | {a.unit_id for a in alerts}
        | {t.unit_id for t in tasks}
        | {c.unit_id for c in comments},
    )
    units = [{"unit": names[incident.owner_unit_id], "role": "owner"}]
    for share in shares:
        entry: dict[str, Any] = {"unit": names.get(share.unit_id), "role": "participant"}
        if access.owner:
            entry["shared_alerts"] = list(share.alert_ids)
            entry["shared_observables"] = list(share.observables)
        units.append(entry)
    detail = {
        **_summary(incident, names),
        "access": "owner" if access.owner else "participant",
        "origin_unit": names.get(incident.origin_unit_id) if access.owner else None,
        "units": units,
        "alerts": [_alert_summary(a, names) for a in alerts],
        "observables": observables,
        "attack": _attack(alerts),
        "timeline": _timeline(alerts, names),
        "tasks": [_task_out(t, names) for t in tasks],
        "comments": [
            {
                "id": c.id,
                "unit": names.get(c.unit_id),
                "author": c.author,
                "text": c.text,
                "shared": c.shared,
                "created_at": c.created_at,
            }
            for c in comments
        ],
    }
    if access.owner:
        detail["audit"] = incident_audit(session, incident.id)
    return detail


def _alert_summary(alert: Alert, names: dict[int, str]) -> dict[str, Any]:
    return {
        "id": alert.id,
        "unit": names.get(alert.unit_id),
        "rule_id": alert.rule_id,
        "rule_title": alert.rule_title,
        "level": alert.level,
        "status": alert.status,
        "host": alert.host,
        "count": alert.count,
        "first_seen": alert.first_seen,
        "last_seen": alert.last_seen,
        "attack": alert.attack or [],
        "observables": alert.observables or [],
    }


def _timeline(alerts: list[Alert], names: dict[int, str]) -> list[dict[str, Any]]:
    """One entry per alert, in the time of its first event; the event's key facts named."""
    entries: list[dict[str, Any]] = []
    for alert in alerts:
        sample = alert.sample_event or {}
        entries.append(
            {
                "time": alert.first_seen,
                "last_time": alert.last_seen,
                "alert_id": alert.id,
                "unit": names.get(alert.unit_id),
                "host": alert.host,
                "what": alert.rule_title,
                "level": alert.level,
                "count": alert.count,
                "attack": [t.get("id") for t in alert.attack or [] if isinstance(t, dict)],
                "user": sample_user(sample),
                "image": sample.get("Image") or sample.get("NewProcessName"),
            }
        )
    entries.sort(key=lambda e: (as_utc(cast(datetime, e["time"])), int(e["alert_id"])))
    return entries


def _attack(alerts: list[Alert]) -> list[dict[str, Any]]:
    seen: dict[str, dict[str, Any]] = {}
    for alert in alerts:
        for technique in alert.attack or []:
            if isinstance(technique, dict) and technique.get("id") not in seen:
                seen[str(technique.get("id"))] = technique
    return list(seen.values())


def _observables(alerts: list[Alert]) -> list[dict[str, Any]]:
    return _dedup([o for a in alerts for o in a.observables or []])


def _dedup(items: Iterable[Any]) -> list[dict[str, Any]]:
    seen: set[tuple[str, str]] = set()
    out = []
    for item in items:
        if not isinstance(item, dict):
            continue
        key = (str(item.get("type")), str(item.get("value")))
        if key not in seen:
            seen.add(key)
            out.append({"type": key[0], "value": key[1]})
    return out


def _task_out(task: IncidentTask, names: dict[int, str]) -> dict[str, Any]:
    return {
        "id": task.id,
        "title": task.title,
        "unit": names.get(task.unit_id),
        "assignee": task.assignee,
        "due_at": task.due_at,
        "status": task.status,
        "created_by": task.created_by,
        "created_at": task.created_at,
        "updated_at": task.updated_at,
    }


def incident_audit(session: Session, incident_id: int) -> list[dict[str, Any]]:
    """The audit records of one incident, oldest first (callers check access first)."""
    rows = session.scalars(
        select(AuditRecord)
        .where(AuditRecord.object_type == "incident", AuditRecord.object_id == str(incident_id))
        .order_by(AuditRecord.id)
    )
    return [
        {"at": r.at, "actor": r.actor, "action": r.action, "before": r.before, "after": r.after}
        for r in rows
    ]


def update_incident(
    session: Session,
    scope: Scope,
    incident_id: int,
    *,
    title: str | None = None,
    severity: str | None = None,
    status: str | None = None,
    assignee: str | None = None,
    unassign: bool = False,
    actor: str | None = None,
) -> Incident:
    """Change title, severity, status or assignee (owner side). Audited."""
    incident = _owned(session, scope, incident_id, "change incidents")
    if severity is not None:
        _check_severity(severity)
    if status is not None and status not in STATUSES:
        raise Invalid(f"status must be one of {', '.join(STATUSES)}")
    if title is not None and not title.strip():
        raise Invalid("an incident needs a title")
    before = _header(incident)
    incident.title = title.strip() if title is not None else incident.title
    incident.severity = severity or incident.severity
    incident.status = status or incident.status
    if assignee is not None or unassign:
        incident.assignee = assignee
    after = _header(incident)
    if after != before:
        incident.updated_at = utcnow()
        _audit(session, actor or scope.actor, incident, "update", before, after)
    session.flush()
    return incident


# -- alerts: attach, detach, merge, split --------------------------------------------------------


def attach_alerts(
    session: Session,
    scope: Scope,
    incident_id: int,
    alert_ids: Sequence[int],
    *,
    actor: str | None = None,
) -> Incident:
    """Put the caller's alerts in the incident (an alert in another incident: detach first)."""
    incident = _owned(session, scope, incident_id, "change incidents")
    who = actor or scope.actor
    for alert_id in dict.fromkeys(alert_ids):
        alert = session.get(Alert, alert_id)
        if alert is None or not scope.covers(alert.unit_id):
            raise NotFound(f"no alert {alert_id}")
        current = session.get(IncidentAlert, alert_id)
        if current is not None:
            if current.incident_id == incident.id:
                continue
            raise Invalid(f"alert {alert_id} is in incident {current.incident_id}: detach it")
        _link(session, incident, alert, who)
    session.flush()
    return incident


def _link(session: Session, incident: Incident, alert: Alert, actor: str) -> None:
    session.add(IncidentAlert(alert_id=alert.id, incident_id=incident.id, added_by=actor))
    if _rank(alert.level) > _rank(incident.severity):
        incident.severity = alert.level
    incident.updated_at = utcnow()
    _audit(session, actor, incident, "attach", None, {"alert_id": alert.id})


def detach_alerts(
    session: Session,
    scope: Scope,
    incident_id: int,
    alert_ids: Sequence[int],
    *,
    actor: str | None = None,
) -> Incident:
    """Take alerts out of the incident (they stay alerts). Audited."""
    incident = _owned(session, scope, incident_id, "change incidents")
    for alert_id in dict.fromkeys(alert_ids):
        link = session.get(IncidentAlert, alert_id)
        if link is None or link.incident_id != incident.id:
            raise NotFound(f"alert {alert_id} is not in incident {incident.id}")
        session.delete(link)
        _audit(session, actor or scope.actor, incident, "detach", {"alert_id": alert_id}, None)
    incident.updated_at = utcnow()
    session.flush()
    return incident


def merge_incidents(
    session: Session,
    scope: Scope,
    target_id: int,
    source_ids: Sequence[int],
    *,
    actor: str | None = None,
) -> Incident:
    """Move the alerts, tasks, comments and shares of ``source_ids`` into ``target_id`` and
    close the sources (status ``closed``, their audit naming the target)."""
    target = _owned(session, scope, target_id, "merge incidents")
    who = actor or scope.actor
    for source_id in dict.fromkeys(source_ids):
        if source_id == target.id:
            raise Invalid("an incident cannot be merged into itself")
        source = _owned(session, scope, source_id, "merge incidents")
        links: list[IncidentAlert] = list(
            session.scalars(select(IncidentAlert).where(IncidentAlert.incident_id == source.id))
        )
        for moved in links:
            moved.incident_id = target.id
        for task in session.scalars(
            select(IncidentTask).where(IncidentTask.incident_id == source.id)
        ):
            task.incident_id = target.id
        for comment in session.scalars(
            select(IncidentComment).where(IncidentComment.incident_id == source.id)
        ):
            comment.incident_id = target.id
        for share in session.scalars(
            select(IncidentShare).where(IncidentShare.incident_id == source.id)
        ):
            _merge_share(session, target, share)
        if _rank(source.severity) > _rank(target.severity):
            target.severity = source.severity
        before = _header(source)
        source.status = "closed"
        source.updated_at = utcnow()
        _audit(session, who, source, "merged", before, {"into": target.id, **_header(source)})
        _audit(session, who, target, "merge", None, {"from": source.id})
    target.updated_at = utcnow()
    session.flush()
    return target


def _merge_share(session: Session, target: Incident, share: IncidentShare) -> None:
    existing = session.scalar(
        select(IncidentShare).where(
            IncidentShare.incident_id == target.id, IncidentShare.unit_id == share.unit_id
        )
    )
    if existing is None:
        share.incident_id = target.id
        return
    existing.alert_ids = sorted({*existing.alert_ids, *share.alert_ids})
    existing.observables = _dedup([*existing.observables, *share.observables])
    session.delete(share)


def split_incident(
    session: Session,
    scope: Scope,
    incident_id: int,
    alert_ids: Sequence[int],
    *,
    title: str,
    actor: str | None = None,
) -> Incident:
    """Move ``alert_ids`` out of the incident into a new one of the same owner."""
    incident = _owned(session, scope, incident_id, "split incidents")
    if not alert_ids:
        raise Invalid("a split needs alerts")
    links = []
    for alert_id in dict.fromkeys(alert_ids):
        link = session.get(IncidentAlert, alert_id)
        if link is None or link.incident_id != incident.id:
            raise NotFound(f"alert {alert_id} is not in incident {incident.id}")
        links.append(link)
    who = actor or scope.actor
    new = Incident(
        owner_unit_id=incident.owner_unit_id,
        origin_unit_id=incident.origin_unit_id,
        title=title.strip() or incident.title,
        severity="informational",
        status="open",
        created_by=who,
    )
    session.add(new)
    session.flush()
    for link in links:
        link.incident_id = new.id
        alert = session.get(Alert, link.alert_id)
        if alert is not None and _rank(alert.level) > _rank(new.severity):
            new.severity = alert.level
    _audit(session, who, new, "create", None, {**_header(new), "split_from": incident.id})
    _audit(session, who, incident, "split", None, {"to": new.id, "alerts": list(alert_ids)})
    session.flush()
    return new


# -- units: share, escalate ----------------------------------------------------------------------


def share_incident(
    session: Session,
    scope: Scope,
    incident_id: int,
    *,
    unit: str,
    alert_ids: Sequence[int] = (),
    observables: Sequence[str] = (),
    actor: str | None = None,
) -> IncidentShare:
    """Make ``unit`` a participant seeing the incident, the chosen alerts (of this incident)
    and the chosen observable values (of its alerts). Sharing again replaces the profile."""
    incident = _owned(session, scope, incident_id, "share incidents")
    target = session.scalar(select(Unit).where(Unit.name == unit))
    if target is None:
        raise NotFound(f"no unit {unit!r}")
    if target.id == incident.owner_unit_id:
        raise Invalid("the owner unit sees the incident already")
    alerts = {a.id: a for a in _alerts_of(session, incident.id)}
    missing = [a for a in alert_ids if a not in alerts]
    if missing:
        raise Invalid(f"alerts not in this incident: {missing}")
    known = {o["value"]: o for o in _observables(list(alerts.values()))}
    unknown = [v for v in observables if v not in known]
    if unknown:
        raise Invalid(f"observables not in this incident: {unknown}")
    share = session.scalar(
        select(IncidentShare).where(
            IncidentShare.incident_id == incident.id, IncidentShare.unit_id == target.id
        )
    )
    before = None
    if share is None:
        share = IncidentShare(incident_id=incident.id, unit_id=target.id, added_by=scope.actor)
        session.add(share)
    else:
        before = {"alert_ids": share.alert_ids, "observables": share.observables}
    share.alert_ids = sorted(set(alert_ids))
    share.observables = [known[v] for v in dict.fromkeys(observables)]
    incident.updated_at = utcnow()
    session.flush()
    _audit(
        session,
        actor or scope.actor,
        incident,
        "share",
        before,
        {"unit": unit, "alert_ids": share.alert_ids, "observables": jsonable(share.observables)},
    )
    return share


def escalate_incident(
    session: Session, scope: Scope, incident_id: int, *, reason: str = "", actor: str | None = None
) -> Incident:
    """Hand the incident to the unit above the owner; the former owner stays a participant
    seeing every alert and observable of it (its own alerts it sees anyway)."""
    incident = _owned(session, scope, incident_id, "escalate incidents")
    owner = session.get(Unit, incident.owner_unit_id)
    if owner is None or owner.parent_id is None:
        raise Invalid("the centre has no unit above it to escalate to")
    alerts = _alerts_of(session, incident.id)
    before = _header(incident)
    incident.owner_unit_id = owner.parent_id
    incident.updated_at = utcnow()
    share = session.scalar(
        select(IncidentShare).where(
            IncidentShare.incident_id == incident.id, IncidentShare.unit_id == owner.id
        )
    )
    if share is None:
        share = IncidentShare(incident_id=incident.id, unit_id=owner.id, added_by=scope.actor)
        session.add(share)
    share.alert_ids = [a.id for a in alerts]
    share.observables = _observables(alerts)
    # The new owner may have been a participant: it owns everything now.
    for stale in session.scalars(
        select(IncidentShare).where(
            IncidentShare.incident_id == incident.id, IncidentShare.unit_id == owner.parent_id
        )
    ):
        session.delete(stale)
    session.flush()
    _audit(
        session,
        actor or scope.actor,
        incident,
        "escalate",
        before,
        {**_header(incident), "from_unit_id": owner.id, "reason": reason},
    )
    return incident


# -- tasks and comments --------------------------------------------------------------------------


def add_task(
    session: Session,
    scope: Scope,
    incident_id: int,
    *,
    title: str,
    unit: str | None = None,
    assignee: str | None = None,
    due_at: datetime | None = None,
    actor: str | None = None,
) -> IncidentTask:
    """Hand a task to a unit (the owner, or a participating unit) and maybe a person."""
    incident = _owned(session, scope, incident_id, "add tasks")
    if not title.strip():
        raise Invalid("a task needs a title")
    unit_id = incident.owner_unit_id
    if unit is not None:
        row = session.scalar(select(Unit).where(Unit.name == unit))
        participants = set(
            session.scalars(
                select(IncidentShare.unit_id).where(IncidentShare.incident_id == incident.id)
            )
        )
        if row is None or not (scope.covers(row.id) or row.id in participants):
            raise NotFound(f"no unit {unit!r} on this incident (share the incident first)")
        unit_id = row.id
    task = IncidentTask(
        incident_id=incident.id,
        unit_id=unit_id,
        title=title.strip(),
        assignee=assignee,
        due_at=as_utc(due_at) if due_at else None,
        status="open",
        created_by=actor or scope.actor,
    )
    session.add(task)
    session.flush()
    _audit(
        session,
        actor or scope.actor,
        incident,
        "task.add",
        None,
        {"task_id": task.id, "title": task.title, "unit_id": unit_id, "assignee": assignee},
    )
    return task


def update_task(
    session: Session,
    scope: Scope,
    incident_id: int,
    task_id: int,
    *,
    status: str | None = None,
    assignee: str | None = None,
    due_at: datetime | None = None,
    actor: str | None = None,
) -> IncidentTask:
    """Move a task (owner side, or the unit the task is handed to). Audited."""
    access = _access(session, scope, incident_id)
    require(scope.can_write_alerts(), "change tasks")
    task = session.get(IncidentTask, task_id)
    if task is None or task.incident_id != access.incident.id:
        raise NotFound(f"no task {task_id}")
    if not access.owner and task.unit_id not in access.participant_units:
        raise NotFound(f"no task {task_id}")
    if status is not None and status not in TASK_STATUSES:
        raise Invalid(f"status must be one of {', '.join(TASK_STATUSES)}")
    before = {"status": task.status, "assignee": task.assignee, "due_at": task.due_at}
    task.status = status or task.status
    task.assignee = assignee if assignee is not None else task.assignee
    task.due_at = as_utc(due_at) if due_at is not None else task.due_at
    task.updated_at = utcnow()
    after = {"status": task.status, "assignee": task.assignee, "due_at": task.due_at}
    if after != before:
        _audit(
            session,
            actor or scope.actor,
            access.incident,
            "task.update",
            {"task_id": task.id, **before},
            {"task_id": task.id, **after},
        )
    session.flush()
    return task


def add_incident_comment(
    session: Session,
    scope: Scope,
    incident_id: int,
    *,
    text: str,
    shared: bool = False,
    actor: str | None = None,
) -> IncidentComment:
    """Comment (owner side or participant). A participant's comment is always shared."""
    access = _access(session, scope, incident_id)
    require(scope.can_write_alerts(), "comment on incidents")
    if not text.strip():
        raise Invalid("an empty comment")
    unit_id = (
        scope.principal.unit_id
        if access.owner or scope.principal.unit_id in access.participant_units
        else min(access.participant_units)
    )
    comment = IncidentComment(
        incident_id=access.incident.id,
        unit_id=unit_id,
        author=actor or scope.actor,
        text=text,
        shared=shared or not access.owner,
    )
    session.add(comment)
    session.flush()
    _audit(
        session,
        actor or scope.actor,
        access.incident,
        "comment",
        None,
        {"comment_id": comment.id, "text": text, "shared": comment.shared},
    )
    return comment


# -- automatic grouping --------------------------------------------------------------------------


def incident_of_alert(session: Session, alert_id: int) -> int | None:
    """The id of the incident holding the alert, if any (unscoped: the pipeline's)."""
    link = session.get(IncidentAlert, alert_id)
    return link.incident_id if link is not None else None


def group_alert(
    session: Session,
    alert_id: int,
    *,
    window_s: float = 3600.0,
    open_level: str = "high",
    actor: str = "pipeline",
    chain_tactics: int = 0,
) -> Incident | None:
    """Attach a new alert to a matching open incident, or open one (see the module doc);
    below ``open_level``, a chain of ``chain_tactics`` ATT&CK tactics on its host opens one
    (0: off; :mod:`vedette.store.state.tactic_chain`)."""
    alert = session.get(Alert, alert_id)
    if alert is None or alert.kind == "health":
        return None
    held = incident_of_alert(session, alert.id)
    if held is not None:
        return session.get(Incident, held)
    keys = grouping_keys(alert)
    window = timedelta(seconds=window_s)
    if keys:
        # Indexed: the alerts holding one of the keys, then their open incidents in the window.
        sharing = (
            select(IncidentAlert.incident_id)
            .join(Alert, Alert.id == IncidentAlert.alert_id)
            .join(AlertKey, AlertKey.alert_id == Alert.id)
            .where(
                AlertKey.key.in_([key_hash(k) for k in keys]),
                Alert.last_seen >= alert.first_seen - window,
                Alert.first_seen <= alert.last_seen + window,
            )
        )
        found = session.scalar(
            select(Incident)
            .where(
                Incident.id.in_(sharing),
                Incident.origin_unit_id == alert.unit_id,
                Incident.status != "closed",
            )
            .order_by(Incident.id.desc())
            .limit(1)
        )
        if found is not None:
            _link(session, found, alert, actor)
            session.flush()
            return found
    title = f"{alert.rule_title}" + (f" on {alert.host}" if alert.host else "")
    if _rank(alert.level) < _rank(open_level):
        # Tactic chain (kept apart from the key lookup above): a low-level kill chain on a host.
        chain = tactic_chain(session, alert, window, chain_tactics) if chain_tactics else None
        if chain is None:
            return None
        title = f"ATT&CK chain on {alert.host}: " + " → ".join(chain)
    incident = Incident(
        owner_unit_id=alert.unit_id,
        origin_unit_id=alert.unit_id,
        title=title,
        severity=alert.level,
        status="open",
        created_by=actor,
    )
    session.add(incident)
    session.flush()
    _audit(session, actor, incident, "create", None, {**_header(incident), "alert_id": alert.id})
    _notify(session, incident)
    _link(session, incident, alert, actor)
    session.flush()
    _sweep(session, incident, alert, keys, window, actor)
    return incident


def _sweep(
    session: Session,
    incident: Incident,
    alert: Alert,
    keys: set[tuple[str, str]],
    window: timedelta,
    actor: str,
) -> None:
    """Bring in the unit's recent alerts, in no incident, that share a key with the new one."""
    if not keys:
        return
    held = select(IncidentAlert.alert_id)
    sharing = select(AlertKey.alert_id).where(
        AlertKey.key.in_([key_hash(k) for k in keys]), AlertKey.unit_id == alert.unit_id
    )
    others = session.scalars(
        select(Alert)
        .where(
            Alert.id.in_(sharing),
            Alert.unit_id == alert.unit_id,
            Alert.id != alert.id,
            Alert.kind != "health",
            Alert.status != "closed",
            Alert.last_seen >= alert.first_seen - window,
            Alert.first_seen <= alert.last_seen + window,
            Alert.id.not_in(held),
        )
        .order_by(Alert.id)
    ).all()
    for other in others:
        _link(session, incident, other, actor)
    session.flush()
