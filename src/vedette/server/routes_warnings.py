"""Early warnings: a unit's list (with its own hits) and acknowledging one.

A warning says that observables of an attack seen elsewhere appear in this unit's own stored
events; it names the source incident but never shows the source unit's events.
"""

from __future__ import annotations

from typing import Annotated, Any, Literal

from fastapi import APIRouter, Depends, Path, Query, Request
from starlette.concurrency import run_in_threadpool

from vedette.server.authz import caller, guarded
from vedette.store.state.models import MAX_ID
from vedette.store.state.scope import Scope
from vedette.store.state.warnings import ack_warning, approve_warning, list_warnings

router = APIRouter(prefix="/api/v1", tags=["warnings"])

WarningId = Annotated[int, Path(ge=1, le=MAX_ID)]


@guarded(router, "GET", "/warnings", "read")
async def warnings_list(
    request: Request,
    scope: Annotated[Scope, Depends(caller)],
    status: Literal["draft", "new", "acknowledged"] | None = None,
    limit: Annotated[int, Query(ge=1, le=1000)] = 100,
) -> dict[str, Any]:
    """The warnings of the caller's units, newest first: ``id``, ``unit``, ``observables``,
    ``hits`` (host, time, field, value, observable), ``hits_total``, ``attack``,
    ``source_incident``, ``created_at``, ``status``. Drafts waiting for approval are listed to
    the source alert's side (``status: draft``; hits only to a caller covering the unit)."""

    def run() -> dict[str, Any]:
        with request.app.state.centre.state.session(readonly=True) as session:
            return {"items": list_warnings(session, scope, status=status, limit=limit)}

    return await run_in_threadpool(run)


@guarded(router, "POST", "/warnings/{warning_id}/ack", "write")
async def warnings_ack(
    request: Request, scope: Annotated[Scope, Depends(caller)], warning_id: WarningId
) -> dict[str, Any]:
    """Acknowledge a warning of one of the caller's units (audited)."""

    def run() -> dict[str, Any]:
        with request.app.state.centre.state.session() as session:
            return ack_warning(session, scope, warning_id)

    return await run_in_threadpool(run)


@guarded(router, "POST", "/warnings/{warning_id}/approve", "write")
async def warnings_approve(
    request: Request, scope: Annotated[Scope, Depends(caller)], warning_id: WarningId
) -> dict[str, Any]:
    """Send a drafted warning to its unit: the source alert's side approves (audited)."""

    def run() -> dict[str, Any]:
        with request.app.state.centre.state.session() as session:
            return approve_warning(session, scope, warning_id)

    return await run_in_threadpool(run)
