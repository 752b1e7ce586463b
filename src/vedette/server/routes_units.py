"""Units, tokens, rule exceptions and the audit trail: the caller's own, never another unit's."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Path, Query, Request
from pydantic import BaseModel, Field
from starlette.concurrency import run_in_threadpool

from vedette.server.authz import caller, guarded
from vedette.store.state.accounts import add_token, list_tokens, revoke_token
from vedette.store.state.audit import list_audit, verify_chain
from vedette.store.state.exceptions import add_exception, delete_exception, list_exceptions
from vedette.store.state.models import MAX_ID
from vedette.store.state.scope import Role, Scope
from vedette.store.state.units import add_unit, list_units, scoped_unit, unit_names

router = APIRouter(prefix="/api/v1", tags=["units"])

ObjectId = Annotated[int, Path(ge=1, le=MAX_ID)]
UnitName = Annotated[str, Field(pattern=r"^[A-Za-z0-9_.-]{1,64}$")]


class UnitOut(BaseModel):
    """A unit with its ingest counters (from the stores, so they survive a restart)."""

    name: str
    parent: str | None
    events_received: int
    events_stored: int
    last_event_at: datetime | None
    last_received_at: datetime | None
    silent_after_seconds: int | None


class UnitList(BaseModel):
    """The caller's units: its own and every unit below it."""

    items: list[UnitOut]


class UnitIn(BaseModel):
    """A new unit below one of the caller's units."""

    model_config = {"extra": "forbid"}

    name: UnitName
    parent: UnitName
    silent_after_seconds: int | None = Field(default=None, ge=60, le=30 * 86400)


class TokenIn(BaseModel):
    """A new token for one of the caller's units; the secret is in the answer, once."""

    model_config = {"extra": "forbid"}

    unit: UnitName
    role: Role
    name: str = Field(default="", max_length=128)


class ExceptionIn(BaseModel):
    """Detections that are not alerts: unit, rule (or every rule), field conditions, reason."""

    model_config = {"extra": "forbid"}

    unit: UnitName
    rule_id: str | None = Field(default=None, max_length=128)
    conditions: dict[str, Any] = Field(default_factory=dict, max_length=32)
    reason: str = Field(min_length=1, max_length=2000)
    expires_at: datetime | None = None


def _session(request: Request, *, readonly: bool = False) -> Any:
    return request.app.state.centre.state.session(readonly=readonly)


@guarded(router, "GET", "/units", "read", response_model=UnitList)
async def units_list(request: Request, scope: Annotated[Scope, Depends(caller)]) -> dict[str, Any]:
    """The caller's units with events received (acknowledged) and stored, and the last event."""
    centre = request.app.state.centre

    def run() -> dict[str, Any]:
        received = centre.spool.received_counts()
        with _session(request, readonly=True) as session:
            units = list_units(session, scope)
        items = []
        for unit in units:
            count, last = received.get(unit.name, (0, None))
            items.append(
                {
                    "name": unit.name,
                    "parent": unit.parent,
                    "events_received": count,
                    "events_stored": unit.events_stored,
                    "last_event_at": unit.last_event_at,
                    "last_received_at": (
                        datetime.fromtimestamp(last, tz=UTC) if last else unit.last_received_at
                    ),
                    "silent_after_seconds": unit.silent_after_seconds,
                }
            )
        return {"items": items}

    return await run_in_threadpool(run)


@guarded(router, "POST", "/units", "admin", status_code=201)
async def units_add(
    request: Request, scope: Annotated[Scope, Depends(caller)], unit: UnitIn
) -> dict[str, Any]:
    """Add a unit below one of the caller's units (admins)."""

    def run() -> dict[str, Any]:
        with _session(request) as session:
            scoped_unit(session, scope, unit.parent)
            row = add_unit(
                session,
                name=unit.name,
                parent=unit.parent,
                actor=scope.actor,
                silent_after_seconds=unit.silent_after_seconds,
            )
            return {"name": row.name, "parent": unit.parent}

    answer = await run_in_threadpool(run)
    request.app.state.centre.auth.forget_tokens()
    return answer


@guarded(router, "GET", "/tokens", "admin")
async def tokens_list(request: Request, scope: Annotated[Scope, Depends(caller)]) -> dict[str, Any]:
    """Tokens of the caller's units (never their secrets)."""

    def run() -> dict[str, Any]:
        with _session(request, readonly=True) as session:
            rows = list_tokens(session, scope)
            names = unit_names(session, {t.unit_id for t in rows})
            return {
                "items": [
                    {
                        "id": t.id,
                        "unit": names.get(t.unit_id),
                        "role": t.role,
                        "name": t.name,
                        "prefix": t.prefix,
                        "created_at": t.created_at,
                        "revoked_at": t.revoked_at,
                        "last_used_at": t.last_used_at,
                    }
                    for t in rows
                ]
            }

    return await run_in_threadpool(run)


@guarded(router, "POST", "/tokens", "admin", status_code=201)
async def tokens_add(
    request: Request, scope: Annotated[Scope, Depends(caller)], token: TokenIn
) -> dict[str, Any]:
    """A new token; its secret is shown in this answer only."""

    def run() -> dict[str, Any]:
        with _session(request) as session:
            scoped_unit(session, scope, token.unit)
            row, secret = add_token(
                session, unit=token.unit, role=token.role, name=token.name, actor=scope.actor
            )
            return {"id": row.id, "unit": token.unit, "role": row.role, "token": secret}

    return await run_in_threadpool(run)


@guarded(router, "DELETE", "/tokens/{token_id}", "admin", status_code=204)
async def tokens_revoke(
    request: Request, scope: Annotated[Scope, Depends(caller)], token_id: ObjectId
) -> None:
    """Revoke a token of one of the caller's units; it stops working at once."""

    def run() -> None:
        with _session(request) as session:
            revoke_token(session, scope, token_id)

    await run_in_threadpool(run)
    request.app.state.centre.auth.forget_tokens()


@guarded(router, "GET", "/exceptions", "read")
async def exceptions_list(
    request: Request, scope: Annotated[Scope, Depends(caller)]
) -> dict[str, Any]:
    """Unexpired rule exceptions of the caller's units."""

    def run() -> dict[str, Any]:
        with _session(request, readonly=True) as session:
            rows = list_exceptions(session, scope)
            names = unit_names(session, {r.unit_id for r in rows})
            return {
                "items": [
                    {
                        "id": r.id,
                        "unit": names.get(r.unit_id),
                        "rule_id": r.rule_id,
                        "conditions": r.conditions,
                        "author": r.author,
                        "reason": r.reason,
                        "expires_at": r.expires_at,
                        "created_at": r.created_at,
                    }
                    for r in rows
                ]
            }

    return await run_in_threadpool(run)


@guarded(router, "POST", "/exceptions", "write", status_code=201)
async def exceptions_add(
    request: Request, scope: Annotated[Scope, Depends(caller)], exception: ExceptionIn
) -> dict[str, Any]:
    """Add a rule exception; it applies from the next batch on and survives rule updates."""
    centre = request.app.state.centre

    def run() -> dict[str, Any]:
        with _session(request) as session:
            row = add_exception(
                session,
                scope,
                unit=exception.unit,
                rule_id=exception.rule_id,
                conditions=exception.conditions,
                reason=exception.reason,
                expires_at=exception.expires_at,
            )
            answer = {"id": row.id}
        centre.pipeline_state.refresh_exceptions()
        return answer

    return await run_in_threadpool(run)


@guarded(router, "DELETE", "/exceptions/{exception_id}", "write", status_code=204)
async def exceptions_delete(
    request: Request, scope: Annotated[Scope, Depends(caller)], exception_id: ObjectId
) -> None:
    """Delete a rule exception of one of the caller's units."""
    centre = request.app.state.centre

    def run() -> None:
        with _session(request) as session:
            delete_exception(session, scope, exception_id)
        centre.pipeline_state.refresh_exceptions()

    await run_in_threadpool(run)


@guarded(router, "GET", "/audit", "admin")
async def audit_list(
    request: Request,
    scope: Annotated[Scope, Depends(caller)],
    limit: Annotated[int, Query(ge=1, le=1000)] = 100,
    before_id: Annotated[int | None, Query(ge=1, le=MAX_ID)] = None,
) -> dict[str, Any]:
    """The audit trail of the caller's units, newest first, and whether the chain verifies."""

    def run() -> dict[str, Any]:
        # The whole chain is verified, in a system session: row-level security would show
        # the scoped one its units' records only. It answers a yes or no, no record.
        with request.app.state.centre.state.session(readonly=True, system=True) as session:
            ok, first_bad = verify_chain(session)
        with _session(request, readonly=True) as session:
            rows = list_audit(session, scope, limit=limit, before_id=before_id)
            return {
                "chain_ok": ok,
                "first_bad_id": first_bad,
                "items": [
                    {
                        "id": r.id,
                        "at": r.at,
                        "actor": r.actor,
                        "action": r.action,
                        "object_type": r.object_type,
                        "object_id": r.object_id,
                        "before": r.before,
                        "after": r.after,
                        "hash": r.hash,
                    }
                    for r in rows
                ],
            }

    return await run_in_threadpool(run)
