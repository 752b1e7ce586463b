"""Incidents: list, read, open, change; alerts (attach, detach, merge, split); tasks; comments;
sharing with participating units; escalation to the unit above.

Every call goes through :mod:`vedette.store.state.incidents` with the caller's scope: another
unit's incident is 404, and a participating unit sees only what the owner shared with it.
"""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Depends, Path, Query, Request
from pydantic import BaseModel, Field
from starlette.concurrency import run_in_threadpool

from vedette.alerts.export import misp_event, stix_bundle
from vedette.server.authz import caller, guarded
from vedette.store.state import incidents as svc
from vedette.store.state.incident_priority import add_priorities, sort_by_priority
from vedette.store.state.models import MAX_ID
from vedette.store.state.scope import Scope

router = APIRouter(prefix="/api/v1", tags=["incidents"])

Severity = Literal["informational", "low", "medium", "high", "critical"]
Status = Literal["open", "in_progress", "closed"]
IncidentId = Annotated[int, Path(ge=1, le=MAX_ID)]
TaskId = Annotated[int, Path(ge=1, le=MAX_ID)]
AlertIds = Annotated[list[Annotated[int, Field(ge=1, le=MAX_ID)]], Field(max_length=1000)]


class IncidentIn(BaseModel):
    """A new incident, owned by ``unit`` (default: the caller's unit), with those alerts."""

    model_config = {"extra": "forbid"}

    title: str = Field(min_length=1, max_length=500)
    severity: Severity = "medium"
    alert_ids: AlertIds = []
    unit: str | None = Field(default=None, max_length=64)


class IncidentPatch(BaseModel):
    """Header changes and alert moves. ``assignee: null`` unassigns; ``merge`` moves the
    listed incidents into this one (closing them); ``split`` moves alerts to a new incident."""

    model_config = {"extra": "forbid"}

    title: str | None = Field(default=None, min_length=1, max_length=500)
    severity: Severity | None = None
    status: Status | None = None
    assignee: str | None = Field(default=None, max_length=128)
    attach: AlertIds = []
    detach: AlertIds = []
    merge: AlertIds = []
    split: AlertIds = []
    split_title: str = Field(default="", max_length=500)


class TaskIn(BaseModel):
    """A task handed to a unit (the owner or a participant) and maybe a person."""

    model_config = {"extra": "forbid"}

    title: str = Field(min_length=1, max_length=2000)
    unit: str | None = Field(default=None, max_length=64)
    assignee: str | None = Field(default=None, max_length=128)
    due_at: datetime | None = None


class TaskPatch(BaseModel):
    """A task's status, assignee or due date."""

    model_config = {"extra": "forbid"}

    status: Literal["open", "done"] | None = None
    assignee: str | None = Field(default=None, max_length=128)
    due_at: datetime | None = None


class CommentIn(BaseModel):
    """A comment; ``shared`` makes an owner's comment visible to participating units."""

    model_config = {"extra": "forbid"}

    text: str = Field(min_length=1, max_length=20_000)
    shared: bool = False


class ShareIn(BaseModel):
    """A share profile: the unit, and which alerts and observable values it sees."""

    model_config = {"extra": "forbid"}

    unit: str = Field(min_length=1, max_length=64)
    alert_ids: AlertIds = []
    observables: list[Annotated[str, Field(max_length=4096)]] = Field(default=[], max_length=1000)


class EscalateIn(BaseModel):
    """Why the incident goes to the unit above."""

    model_config = {"extra": "forbid"}

    reason: str = Field(default="", max_length=2000)


def _detail(request: Request, scope: Scope, incident_id: int) -> dict[str, Any]:
    with request.app.state.centre.state.session(readonly=True) as session:
        return svc.incident_detail(session, scope, incident_id)


async def _write_then_detail(
    request: Request, scope: Scope, incident_id: int, write: Any
) -> dict[str, Any]:
    def run() -> int:
        with request.app.state.centre.state.session() as session:
            result = write(session)
            return int(result) if isinstance(result, int) else incident_id

    shown = await run_in_threadpool(run)
    return await run_in_threadpool(_detail, request, scope, shown)


@guarded(router, "GET", "/incidents", "read")
async def incidents_list(
    request: Request,
    scope: Annotated[Scope, Depends(caller)],
    status: Status | None = None,
    limit: Annotated[int, Query(ge=1, le=1000)] = 100,
    sort: Literal["newest", "priority"] = "newest",
) -> dict[str, Any]:
    """Incidents the caller's units own or take part in, newest first, each with its
    ``priority`` (severity raised by its alerts' assets); ``sort=priority`` ranks the newest
    1000 by priority, then asset criticality, severity, newest."""

    def run() -> dict[str, Any]:
        with request.app.state.centre.state.session(readonly=True) as session:
            shown = 1000 if sort == "priority" else limit
            items = svc.list_incidents(session, scope, status=status, limit=shown)
            add_priorities(session, scope, items)
            if sort == "priority":
                items = sort_by_priority(items)[:limit]
            return {"items": items}

    return await run_in_threadpool(run)


@guarded(router, "GET", "/incidents/{incident_id}", "read")
async def incidents_get(
    request: Request, scope: Annotated[Scope, Depends(caller)], incident_id: IncidentId
) -> dict[str, Any]:
    """One incident: ``alerts``, ``units``, ``tasks``, ``timeline``, ``observables``,
    ``comments`` (and ``audit`` for the owner side); a participant sees its share only."""
    return await run_in_threadpool(_detail, request, scope, incident_id)


@guarded(router, "POST", "/incidents", "write", status_code=201)
async def incidents_create(
    request: Request, scope: Annotated[Scope, Depends(caller)], body: IncidentIn
) -> dict[str, Any]:
    """Open an incident by hand."""

    def run() -> int:
        with request.app.state.centre.state.session() as session:
            incident = svc.create_incident(
                session,
                scope,
                title=body.title,
                severity=body.severity,
                alert_ids=body.alert_ids,
                unit=body.unit,
            )
            return incident.id

    incident_id = await run_in_threadpool(run)
    return await run_in_threadpool(_detail, request, scope, incident_id)


@guarded(router, "PATCH", "/incidents/{incident_id}", "write")
async def incidents_patch(
    request: Request,
    scope: Annotated[Scope, Depends(caller)],
    incident_id: IncidentId,
    patch: IncidentPatch,
) -> dict[str, Any]:
    """Change the header, attach or detach alerts, merge incidents in, or split alerts out
    (the answer is then the new incident). One transaction: all of it or nothing."""
    given = patch.model_fields_set

    def write(session: Any) -> int:
        header = {"title", "severity", "status", "assignee"} & given
        if header:
            svc.update_incident(
                session,
                scope,
                incident_id,
                title=patch.title,
                severity=patch.severity,
                status=patch.status,
                assignee=patch.assignee,
                unassign="assignee" in given and patch.assignee is None,
            )
        if patch.attach:
            svc.attach_alerts(session, scope, incident_id, patch.attach)
        if patch.detach:
            svc.detach_alerts(session, scope, incident_id, patch.detach)
        if patch.merge:
            svc.merge_incidents(session, scope, incident_id, patch.merge)
        if patch.split:
            new = svc.split_incident(
                session, scope, incident_id, patch.split, title=patch.split_title
            )
            return new.id
        if not given:
            svc.incident_detail(session, scope, incident_id)  # 404 for another unit's
        return incident_id

    return await _write_then_detail(request, scope, incident_id, write)


@guarded(router, "POST", "/incidents/{incident_id}/tasks", "write", status_code=201)
async def incidents_task_add(
    request: Request,
    scope: Annotated[Scope, Depends(caller)],
    incident_id: IncidentId,
    body: TaskIn,
) -> dict[str, Any]:
    """Hand a task to a unit of the incident (a participating unit sees its tasks)."""

    def run() -> dict[str, Any]:
        with request.app.state.centre.state.session() as session:
            task = svc.add_task(
                session,
                scope,
                incident_id,
                title=body.title,
                unit=body.unit,
                assignee=body.assignee,
                due_at=body.due_at,
            )
            return {"id": task.id, "status": task.status, "due_at": task.due_at}

    return await run_in_threadpool(run)


@guarded(router, "PATCH", "/incidents/{incident_id}/tasks/{task_id}", "write")
async def incidents_task_patch(
    request: Request,
    scope: Annotated[Scope, Depends(caller)],
    incident_id: IncidentId,
    task_id: TaskId,
    body: TaskPatch,
) -> dict[str, Any]:
    """Move a task (the owner side, or the unit it is handed to)."""

    def run() -> dict[str, Any]:
        with request.app.state.centre.state.session() as session:
            task = svc.update_task(
                session,
                scope,
                incident_id,
                task_id,
                status=body.status,
                assignee=body.assignee,
                due_at=body.due_at,
            )
            return {"id": task.id, "status": task.status, "assignee": task.assignee}

    return await run_in_threadpool(run)


@guarded(router, "POST", "/incidents/{incident_id}/comments", "write", status_code=201)
async def incidents_comment(
    request: Request,
    scope: Annotated[Scope, Depends(caller)],
    incident_id: IncidentId,
    body: CommentIn,
) -> dict[str, Any]:
    """Comment (kept in the audit trail too)."""

    def run() -> dict[str, Any]:
        with request.app.state.centre.state.session() as session:
            row = svc.add_incident_comment(
                session, scope, incident_id, text=body.text, shared=body.shared
            )
            return {"id": row.id, "author": row.author, "shared": row.shared}

    return await run_in_threadpool(run)


@guarded(router, "POST", "/incidents/{incident_id}/share", "write")
async def incidents_share(
    request: Request,
    scope: Annotated[Scope, Depends(caller)],
    incident_id: IncidentId,
    body: ShareIn,
) -> dict[str, Any]:
    """Make a unit a participant with this share profile (replaces its previous one)."""

    def write(session: Any) -> int:
        svc.share_incident(
            session,
            scope,
            incident_id,
            unit=body.unit,
            alert_ids=body.alert_ids,
            observables=body.observables,
        )
        return incident_id

    return await _write_then_detail(request, scope, incident_id, write)


@guarded(router, "POST", "/incidents/{incident_id}/escalate", "write")
async def incidents_escalate(
    request: Request,
    scope: Annotated[Scope, Depends(caller)],
    incident_id: IncidentId,
    body: EscalateIn,
) -> dict[str, Any]:
    """Hand the incident to the unit above; the former owner stays a full participant."""

    def run() -> dict[str, Any]:
        with request.app.state.centre.state.session() as session:
            incident = svc.escalate_incident(session, scope, incident_id, reason=body.reason)
            return {"id": incident.id, "owner_unit_id": incident.owner_unit_id}

    await run_in_threadpool(run)
    # The caller may no longer own it: show it as the caller now sees it.
    return await run_in_threadpool(_detail, request, scope, incident_id)


@guarded(router, "GET", "/incidents/{incident_id}/export", "read")
async def incidents_export(
    request: Request,
    scope: Annotated[Scope, Depends(caller)],
    incident_id: IncidentId,
    format: Literal["stix", "misp"] = "stix",
) -> dict[str, Any]:
    """The observables and ATT&CK techniques the caller sees, as a STIX 2.1 bundle or a MISP
    event, for partner organisations (no events, hosts, users or units)."""
    detail = await run_in_threadpool(_detail, request, scope, incident_id)
    return stix_bundle(detail) if format == "stix" else misp_event(detail)
