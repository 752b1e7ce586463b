"""Bulletins: a unit (usually the centre) publishes to the units below it; they acknowledge.

The publishing side lists each target's acknowledgement (``pending`` names who has not).
"""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Depends, Path, Query, Request
from pydantic import BaseModel, Field
from starlette.concurrency import run_in_threadpool

from vedette.server.authz import caller, guarded
from vedette.store.state.bulletins import ack_bulletin, list_bulletins, publish_bulletin
from vedette.store.state.models import MAX_ID
from vedette.store.state.scope import Scope

router = APIRouter(prefix="/api/v1", tags=["bulletins"])

BulletinId = Annotated[int, Path(ge=1, le=MAX_ID)]


class ObservableIn(BaseModel):
    """An observable to look for."""

    model_config = {"extra": "forbid"}

    type: str = Field(min_length=1, max_length=32)
    value: str = Field(min_length=1, max_length=4096)


class BulletinIn(BaseModel):
    """A bulletin; ``units`` defaults to every unit below the caller's."""

    model_config = {"extra": "forbid"}

    title: str = Field(min_length=1, max_length=500)
    text: str = Field(default="", max_length=100_000)
    observables: list[ObservableIn] = Field(default=[], max_length=1000)
    rules: list[Annotated[str, Field(max_length=128)]] = Field(default=[], max_length=1000)
    units: list[Annotated[str, Field(max_length=64)]] | None = Field(default=None, max_length=1000)


class AckIn(BaseModel):
    """Acknowledge for one unit only (default: every targeted unit of the caller)."""

    model_config = {"extra": "forbid"}

    unit: str | None = Field(default=None, max_length=64)


@guarded(router, "POST", "/bulletins", "write", status_code=201)
async def bulletins_publish(
    request: Request, scope: Annotated[Scope, Depends(caller)], body: BulletinIn
) -> dict[str, Any]:
    """Publish a bulletin to units the caller covers (audited)."""

    def run() -> dict[str, Any]:
        with request.app.state.centre.state.session() as session:
            bulletin = publish_bulletin(
                session,
                scope,
                title=body.title,
                text=body.text,
                observables=[o.model_dump() for o in body.observables],
                rules=body.rules,
                units=body.units,
            )
            return {"id": bulletin.id}

    return await run_in_threadpool(run)


@guarded(router, "GET", "/bulletins", "read")
async def bulletins_list(
    request: Request,
    scope: Annotated[Scope, Depends(caller)],
    limit: Annotated[int, Query(ge=1, le=1000)] = 100,
) -> dict[str, Any]:
    """Bulletins to the caller's units, and those they published with who has not acked."""

    def run() -> dict[str, Any]:
        with request.app.state.centre.state.session(readonly=True) as session:
            return {"items": list_bulletins(session, scope, limit=limit)}

    return await run_in_threadpool(run)


@guarded(router, "POST", "/bulletins/{bulletin_id}/ack", "write")
async def bulletins_ack(
    request: Request,
    scope: Annotated[Scope, Depends(caller)],
    bulletin_id: BulletinId,
    body: AckIn | None = None,
) -> dict[str, Any]:
    """Acknowledge a bulletin for the caller's targeted units (audited)."""

    def run() -> dict[str, Any]:
        with request.app.state.centre.state.session() as session:
            units = ack_bulletin(session, scope, bulletin_id, unit=body.unit if body else None)
            return {"id": bulletin_id, "acknowledged": units}

    return await run_in_threadpool(run)
