"""Alerts: list (filters and cursor pages), read, work (status, close reason, assignee), comment.

Every call goes through the data layer with the caller's scope: another unit's alert is 404.
"""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Depends, Path, Query, Request
from pydantic import BaseModel, Field
from starlette.concurrency import run_in_threadpool

from vedette.server.authz import caller, guarded
from vedette.store.state.alerts import (
    UNSET,
    add_comment,
    get_alert,
    list_alerts,
    list_comments,
    update_alert,
)
from vedette.store.state.assets import priorities, sort_by_priority
from vedette.store.state.models import MAX_ID, Alert
from vedette.store.state.scope import Scope

router = APIRouter(prefix="/api/v1", tags=["alerts"])

Status = Literal["new", "acknowledged", "in_progress", "closed"]
CloseReason = Literal["true_positive", "false_positive", "benign"]
Level = Literal["informational", "low", "medium", "high", "critical"]
AlertId = Annotated[int, Path(ge=1, le=MAX_ID)]


class AttackOut(BaseModel):
    """An ATT&CK technique an alert maps to."""

    id: str
    name: str | None = None
    tactics: list[str] = []


class AlertOut(BaseModel):
    """An alert: every detection of one fingerprint in one unit within the dedup window."""

    id: int
    unit: str
    kind: str
    rule_id: str
    rule_title: str
    level: str
    status: str
    close_reason: str | None
    assignee: str | None
    count: int = Field(description="the number of detections this alert stands for")
    first_seen: datetime
    last_seen: datetime
    host: str | None
    attack: list[AttackOut]
    observables: list[dict[str, Any]]
    created_at: datetime
    updated_at: datetime
    priority: str | None = Field(
        default=None, description="the level raised by the critical asset it touches"
    )
    asset: dict[str, str] | None = Field(
        default=None, description="that asset: kind, value, criticality"
    )


class AlertDetail(AlertOut):
    """An alert with its evidence and comments."""

    matched: dict[str, Any]
    sample_event: dict[str, Any]
    comments: list[dict[str, Any]]


class AlertPage(BaseModel):
    """One page of alerts; pass ``next`` back as ``cursor`` (null on the last page)."""

    items: list[AlertOut]
    next: str | None


class AlertPatch(BaseModel):
    """Fields to change; closing needs a ``close_reason``. ``assignee: null`` unassigns."""

    model_config = {"extra": "forbid"}

    status: Status | None = None
    close_reason: CloseReason | None = None
    assignee: str | None = Field(default=None, max_length=128)


class CommentIn(BaseModel):
    """A comment on an alert."""

    model_config = {"extra": "forbid"}

    text: str = Field(min_length=1, max_length=20_000)


def alert_out(alert: Alert) -> dict[str, Any]:
    """The API shape of an alert row."""
    return {
        "id": alert.id,
        "unit": alert.unit.name,
        "kind": alert.kind,
        "rule_id": alert.rule_id,
        "rule_title": alert.rule_title,
        "level": alert.level,
        "status": alert.status,
        "close_reason": alert.close_reason,
        "assignee": alert.assignee,
        "count": alert.count,
        "first_seen": alert.first_seen,
        "last_seen": alert.last_seen,
        "host": alert.host,
        "attack": alert.attack or [],
        "observables": alert.observables or [],
        "created_at": alert.created_at,
        "updated_at": alert.updated_at,
    }


def _detail(request: Request, scope: Scope, alert_id: int) -> dict[str, Any]:
    with request.app.state.centre.state.session(readonly=True) as session:
        alert = get_alert(session, scope, alert_id)
        comments = [
            {"id": c.id, "author": c.author, "text": c.text, "created_at": c.created_at}
            for c in list_comments(session, scope, alert_id)
        ]
        return {
            **alert_out(alert),
            "matched": alert.matched or {},
            "sample_event": alert.sample_event or {},
            "comments": comments,
        }


@guarded(router, "GET", "/alerts", "read", response_model=AlertPage)
async def alerts_list(
    request: Request,
    scope: Annotated[Scope, Depends(caller)],
    status: Status | None = None,
    level: Level | None = None,
    rule_id: Annotated[str | None, Query(max_length=128)] = None,
    unit: Annotated[str | None, Query(max_length=64)] = None,
    limit: Annotated[int, Query(ge=1, le=1000)] = 100,
    cursor: Annotated[str | None, Query(max_length=64)] = None,
    sort: Literal["newest", "priority"] = "newest",
) -> dict[str, Any]:
    """The caller's alerts, newest first; ``sort=priority`` ranks the newest 1000 matching
    alerts by priority (level raised by critical assets), one page without a cursor."""
    by_priority = sort == "priority"

    def run() -> dict[str, Any]:
        with request.app.state.centre.state.session(readonly=True) as session:
            items, next_cursor = list_alerts(
                session,
                scope,
                status=status,
                level=level,
                rule_id=rule_id,
                unit=unit,
                limit=1000 if by_priority else limit,
                cursor=None if by_priority else cursor,
            )
            found = priorities(session, items)
            if by_priority:
                items, next_cursor = sort_by_priority(items, found)[:limit], None
            out = []
            for alert in items:
                p = found[alert.id]
                out.append({**alert_out(alert), "priority": p.level, "asset": p.asset})
            return {"items": out, "next": next_cursor}

    return await run_in_threadpool(run)


@guarded(router, "GET", "/alerts/{alert_id}", "read", response_model=AlertDetail)
async def alerts_get(
    request: Request, scope: Annotated[Scope, Depends(caller)], alert_id: AlertId
) -> dict[str, Any]:
    """One alert with its matched selections, sample event and comments."""
    return await run_in_threadpool(_detail, request, scope, alert_id)


@guarded(router, "PATCH", "/alerts/{alert_id}", "write", response_model=AlertDetail)
async def alerts_patch(
    request: Request,
    scope: Annotated[Scope, Depends(caller)],
    alert_id: AlertId,
    patch: AlertPatch,
) -> dict[str, Any]:
    """Acknowledge, take, close with a reason, reopen, assign or unassign."""
    given = patch.model_fields_set

    def run() -> None:
        with request.app.state.centre.state.session() as session:
            update_alert(
                session,
                scope,
                alert_id,
                status=patch.status,
                close_reason=patch.close_reason,
                assignee=patch.assignee if "assignee" in given else UNSET,
            )

    await run_in_threadpool(run)
    return await run_in_threadpool(_detail, request, scope, alert_id)


@guarded(router, "POST", "/alerts/{alert_id}/comments", "write", status_code=201)
async def alerts_comment(
    request: Request,
    scope: Annotated[Scope, Depends(caller)],
    alert_id: AlertId,
    comment: CommentIn,
) -> dict[str, Any]:
    """Add a comment (kept in the audit trail too)."""

    def run() -> dict[str, Any]:
        with request.app.state.centre.state.session() as session:
            row = add_comment(session, scope, alert_id, text=comment.text)
            return {"id": row.id, "author": row.author, "created_at": row.created_at}

    return await run_in_threadpool(run)
