"""Operations: health, readiness, Prometheus metrics, rules (status and reload), log in and out,
and the read-only query over stored events."""

from __future__ import annotations

import time
from datetime import datetime
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Request
from fastapi.responses import JSONResponse, Response
from pydantic import BaseModel, Field
from starlette.concurrency import run_in_threadpool

from vedette.server.authz import bearer, caller, guarded
from vedette.server.errors import ApiError
from vedette.server.metrics import render_metrics
from vedette.server.rules import rule_error_record
from vedette.store.hunt import run_hunt
from vedette.store.state.accounts import authenticate_password
from vedette.store.state.scope import Scope
from vedette.store.state.units import unit_names

router = APIRouter(tags=["operations"])

MAX_HUNT_ROWS = 10_000
STORAGE_ERROR_SECONDS = 30.0
"""/readyz fails this long after the spool last refused a write."""


class LoginIn(BaseModel):
    """A user's name and password."""

    model_config = {"extra": "forbid"}

    name: str = Field(min_length=1, max_length=128)
    password: str = Field(min_length=1, max_length=1024)


class HuntIn(BaseModel):
    """One read-only SELECT over the caller's stored events (table ``events``)."""

    model_config = {"extra": "forbid", "populate_by_name": True}

    sql: str = Field(min_length=1, max_length=20_000)
    time_from: datetime | None = Field(default=None, alias="from")
    time_to: datetime | None = Field(default=None, alias="to")
    units: list[str] | None = Field(default=None, max_length=1000)
    limit: int = Field(default=1000, ge=1, le=MAX_HUNT_ROWS)


@guarded(router, "GET", "/healthz", "public")
async def healthz() -> dict[str, str]:
    """The process is up and serving."""
    return {"status": "ok"}


@guarded(router, "GET", "/readyz", "public")
async def readyz(request: Request) -> JSONResponse:
    """Ready to accept events: the worker runs and the spool is below its high-water mark."""
    centre = request.app.state.centre
    problems = []
    if not centre.accepting():
        problems.append("spool above its high-water mark")
    failed = centre.ingest.last_storage_error
    if failed and time.monotonic() - failed < STORAGE_ERROR_SECONDS:
        problems.append("the spool could not write (disk full or I/O error) in the last 30 s")
    thread = centre.worker._thread
    # The scale-out api role runs no worker (vedette.server.roles): workers run elsewhere.
    runs_worker = getattr(centre, "runs_worker", True)
    if runs_worker and (thread is None or not thread.is_alive()):
        problems.append("worker not running")
    status = 503 if problems else 200
    headers = {"Retry-After": "5"} if problems else {}
    return JSONResponse(
        {"ready": not problems, "problems": problems}, status_code=status, headers=headers
    )


@guarded(router, "GET", "/metrics", "public")
async def metrics(request: Request) -> Response:
    """Prometheus metrics: ingest, spool depth, lag, detections, alerts, drops.

    Anonymous: per-unit figures summed, no unit named. With a bearer token: a series per unit
    the token covers."""
    centre = request.app.state.centre
    units: frozenset[str] | None = None
    credential = bearer(request)
    if credential is not None:

        def covered() -> frozenset[str]:
            scope = centre.auth.scope(credential)
            with centre.state.session(readonly=True) as session:
                return frozenset(unit_names(session, scope.unit_ids).values())

        units = await run_in_threadpool(covered)
    body, content_type = await run_in_threadpool(render_metrics, centre, units)
    return Response(body, media_type=content_type)


@guarded(router, "GET", "/api/v1/rules", "read")
async def rules_status(
    request: Request, scope: Annotated[Scope, Depends(caller)]
) -> dict[str, Any]:
    """The loaded rule set: counts, every rule that did not load and why, reload errors."""
    centre = request.app.state.centre
    rules = centre.rules
    return {
        "loaded_at": rules.loaded_at,
        "rule_paths": rules.rule_paths,
        "intel_paths": rules.intel_paths,
        "rules_loaded": rules.facts.rules_loaded,
        "correlation_rules": rules.facts.correlation_rules,
        "indicators": rules.facts.indicators,
        "rules_not_loaded": [rule_error_record(e) for e in rules.facts.rule_errors],
        "notes": rules.facts.notes,
        "reload_errors": list(centre.reload_errors),
    }


@guarded(router, "POST", "/api/v1/rules/reload", "admin")
async def rules_reload(
    request: Request, scope: Annotated[Scope, Depends(caller)]
) -> dict[str, Any]:
    """Load the rules and feeds again without a restart; the old set runs until the new loads."""
    centre = request.app.state.centre
    if scope.principal.unit_id not in _root_ids(centre):
        raise ApiError(404, "not_found", "rules are reloaded by the centre's admins")
    try:
        rules = await run_in_threadpool(centre.reload_rules)
    except Exception as exc:
        raise ApiError(400, "reload_failed", f"the old rules keep running: {exc}") from None
    return {
        "rules_loaded": rules.facts.rules_loaded,
        "rules_not_loaded": len(rules.facts.rule_errors),
        "indicators": rules.facts.indicators,
    }


def _root_ids(centre: Any) -> set[int]:
    from sqlalchemy import select

    from vedette.store.state.models import Unit

    with centre.state.session(readonly=True) as session:
        return set(session.scalars(select(Unit.id).where(Unit.parent_id.is_(None))))


@guarded(router, "POST", "/api/v1/auth/login", "public")
async def login(request: Request, credentials: LoginIn) -> JSONResponse:
    """Log in: a session token (also set as an HttpOnly cookie) for the API and the console."""
    centre = request.app.state.centre

    def run() -> Any:
        with centre.state.session() as session:
            return authenticate_password(session, credentials.name, credentials.password)

    principal = await run_in_threadpool(run)
    token = await run_in_threadpool(centre.auth.open_session, principal)
    answer = JSONResponse(
        {
            "token": token,
            "user": principal.name,
            "unit": principal.unit_name,
            "role": principal.role.value,
        }
    )
    answer.set_cookie(
        "vedette_session",
        token,
        httponly=True,
        samesite="strict",
        secure=request.url.scheme == "https",
    )
    return answer


@guarded(router, "POST", "/api/v1/auth/logout", "authenticated", status_code=204)
async def logout(request: Request, scope: Annotated[Scope, Depends(caller)]) -> Response:
    """End the caller's session."""
    credential = bearer(request)
    if credential:
        await run_in_threadpool(request.app.state.centre.auth.close_session, credential)
    answer = Response(status_code=204)
    answer.delete_cookie("vedette_session")
    return answer


@guarded(router, "GET", "/api/v1/auth/whoami", "authenticated")
async def whoami(request: Request, scope: Annotated[Scope, Depends(caller)]) -> dict[str, Any]:
    """The caller: name, unit, role, and the units it covers."""
    principal = scope.principal

    def run() -> list[str]:
        with request.app.state.centre.state.session(readonly=True) as session:
            return sorted(unit_names(session, scope.unit_ids).values())

    return {
        "kind": principal.kind,
        "name": principal.name,
        "unit": principal.unit_name,
        "role": principal.role.value,
        "units": await run_in_threadpool(run),
    }


@guarded(router, "POST", "/api/v1/hunt", "read")
async def hunt(
    request: Request, scope: Annotated[Scope, Depends(caller)], query: HuntIn
) -> dict[str, Any]:
    """One read-only SELECT over the caller's stored events: ``FROM events``, fields as JSON
    (``fields->>'CommandLine'``). Files, other units, settings and writes are refused."""
    centre = request.app.state.centre

    def run() -> dict[str, Any]:
        with centre.state.session(readonly=True) as session:
            mine = unit_names(session, scope.unit_ids)
        allowed = sorted(mine.values())
        if query.units is not None:
            # Naming a unit the caller does not cover reads nothing, like an unknown one.
            allowed = [u for u in allowed if u in set(query.units)]
        result = run_hunt(
            centre.store,
            query.sql,
            units=allowed,
            time_from=query.time_from,
            time_to=query.time_to,
            max_rows=query.limit,
        )
        return {"columns": result.columns, "rows": result.rows, "truncated": result.truncated}

    return await run_in_threadpool(run)
