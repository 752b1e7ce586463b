"""Dead letters: the batches the worker set aside after repeated failures (admins)."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Depends, Query, Request
from starlette.concurrency import run_in_threadpool

from vedette.server.authz import caller, guarded
from vedette.store.state.deadletters import list_dead_letters
from vedette.store.state.scope import Scope

router = APIRouter(prefix="/api/v1", tags=["operations"])


@guarded(router, "GET", "/deadletters", "admin")
async def deadletters_list(
    request: Request,
    scope: Annotated[Scope, Depends(caller)],
    limit: Annotated[int, Query(ge=1, le=1000)] = 100,
) -> dict[str, Any]:
    """Batches of the caller's units set aside, newest first: ``id``, ``source`` (the worker's
    position name), ``seq``, ``unit``, ``kind``, ``records``, ``attempts``, ``reason``,
    ``created_at``."""

    def run() -> dict[str, Any]:
        with request.app.state.centre.state.session(readonly=True) as session:
            return {"items": list_dead_letters(session, scope, limit=limit)}

    return await run_in_threadpool(run)
