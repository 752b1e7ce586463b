"""Critical assets: hosts and networks a unit marks as mattering most (raising alert priority)."""

from __future__ import annotations

from typing import Annotated, Any, Literal

from fastapi import APIRouter, Depends, Path, Request
from pydantic import BaseModel, ConfigDict, Field
from starlette.concurrency import run_in_threadpool

from vedette.server.authz import caller, guarded
from vedette.store.state.assets import add_asset, delete_asset, list_assets
from vedette.store.state.models import MAX_ID, Unit
from vedette.store.state.scope import Scope
from vedette.store.state.units import scoped_unit

router = APIRouter(prefix="/api/v1", tags=["assets"])

AssetId = Annotated[int, Path(ge=1, le=MAX_ID)]


class AssetIn(BaseModel):
    """A host name or address (``host``) or a CIDR network (``network``) of ``unit`` (default:
    the caller's unit), ``critical`` (raises priority two levels) or ``high`` (one)."""

    model_config = ConfigDict(extra="forbid")

    unit: str | None = Field(default=None, max_length=64)
    kind: Literal["host", "network"]
    value: str = Field(min_length=1, max_length=255)
    criticality: Literal["high", "critical"] = "critical"
    note: str = Field(default="", max_length=2000)


@guarded(router, "POST", "/assets", "write", status_code=201)
async def assets_add(
    request: Request, scope: Annotated[Scope, Depends(caller)], body: AssetIn
) -> dict[str, Any]:
    """Mark a host or network (marking it again updates it). Audited."""

    def run() -> dict[str, Any]:
        with request.app.state.centre.state.session() as session:
            if body.unit is None:
                unit = session.get(Unit, scope.principal.unit_id)
                assert unit is not None
            else:
                unit = scoped_unit(session, scope, body.unit)
            return add_asset(
                session,
                scope,
                unit=unit,
                kind=body.kind,
                value=body.value,
                criticality=body.criticality,
                note=body.note,
            )

    return await run_in_threadpool(run)


@guarded(router, "GET", "/assets", "read")
async def assets_list(request: Request, scope: Annotated[Scope, Depends(caller)]) -> dict[str, Any]:
    """The caller's units' critical assets."""

    def run() -> dict[str, Any]:
        with request.app.state.centre.state.session(readonly=True) as session:
            return {"items": list_assets(session, scope)}

    return await run_in_threadpool(run)


@guarded(router, "DELETE", "/assets/{asset_id}", "write", status_code=204)
async def assets_delete(
    request: Request, scope: Annotated[Scope, Depends(caller)], asset_id: AssetId
) -> None:
    """Unmark an asset. Audited."""

    def run() -> None:
        with request.app.state.centre.state.session() as session:
            delete_asset(session, scope, asset_id)

    await run_in_threadpool(run)
