"""Notifications: channels of the caller's units (admins), and what waits or fails to be sent.

A failed notification is never silent: ``GET /api/v1/notifications`` lists each channel with
its pending, failing and sent counts, and the unsent notifications with their last error.
"""

from __future__ import annotations

import secrets
from dataclasses import asdict
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Depends, Path, Query, Request
from pydantic import BaseModel, Field
from starlette.concurrency import run_in_threadpool

from vedette.server.authz import caller, guarded
from vedette.store.state.models import MAX_ID
from vedette.store.state.notifications import (
    add_channel,
    delete_channel,
    list_channels,
    list_outbox,
)
from vedette.store.state.scope import Scope

router = APIRouter(prefix="/api/v1", tags=["notifications"])

ObjectId = Annotated[int, Path(ge=1, le=MAX_ID)]
Level = Literal["informational", "low", "medium", "high", "critical"]
NotifyKind = Literal["alert", "incident", "warning", "bulletin"]


def _all_kinds() -> list[NotifyKind]:
    return ["alert", "incident", "warning", "bulletin"]


class ChannelIn(BaseModel):
    """A new channel of one of the caller's units.

    ``config``: webhook ``{"url"}``; email ``{"host", "port", "from", "to": [...], "starttls",
    "username"}``; syslog ``{"host", "port", "protocol": "udp"|"tcp", "facility"}``; any kind
    ``timeout``, ``retry_base``, ``retry_cap`` (seconds) and ``ca_file``. ``secret`` is the
    webhook's HMAC key (made and shown once when left out) or the SMTP password.
    """

    model_config = {"extra": "forbid"}

    unit: str = Field(pattern=r"^[A-Za-z0-9_.-]{1,64}$")
    kind: Literal["webhook", "email", "syslog"]
    name: str = Field(pattern=r"^[A-Za-z0-9_.-]{1,128}$")
    config: dict[str, Any] = Field(max_length=32)
    secret: str | None = Field(default=None, min_length=1, max_length=512)
    min_level: Level = "high"
    kinds: list[NotifyKind] = Field(default_factory=lambda: _all_kinds(), min_length=1)
    enabled: bool = True


def _session(request: Request, *, readonly: bool = False) -> Any:
    return request.app.state.centre.state.session(readonly=readonly)


def _channels(session: Any, scope: Scope) -> list[dict[str, Any]]:
    return [asdict(c) for c in list_channels(session, scope)]


@guarded(router, "GET", "/notifications", "admin")
async def notifications_status(
    request: Request,
    scope: Annotated[Scope, Depends(caller)],
    limit: Annotated[int, Query(ge=1, le=1000)] = 100,
) -> dict[str, Any]:
    """Channels with their counts, unsent notifications (oldest first) and the failing ones
    with their last error."""

    def run() -> dict[str, Any]:
        with _session(request, readonly=True) as session:
            return {
                "channels": _channels(session, scope),
                "pending": [asdict(r) for r in list_outbox(session, scope, limit=limit)],
                "failed": [
                    asdict(r) for r in list_outbox(session, scope, failing_only=True, limit=limit)
                ],
            }

    return await run_in_threadpool(run)


@guarded(router, "GET", "/notifications/channels", "admin")
async def channels_list(
    request: Request, scope: Annotated[Scope, Depends(caller)]
) -> dict[str, Any]:
    """Channels of the caller's units (never their secrets)."""

    def run() -> dict[str, Any]:
        with _session(request, readonly=True) as session:
            return {"items": _channels(session, scope)}

    return await run_in_threadpool(run)


@guarded(router, "POST", "/notifications/channels", "admin", status_code=201)
async def channels_add(
    request: Request, scope: Annotated[Scope, Depends(caller)], channel: ChannelIn
) -> dict[str, Any]:
    """Add a channel; a webhook's generated secret is in this answer only."""
    made = channel.secret is None and channel.kind == "webhook"
    secret = secrets.token_urlsafe(32) if made else channel.secret

    def run() -> dict[str, Any]:
        with _session(request) as session:
            row = add_channel(
                session,
                scope,
                unit=channel.unit,
                kind=channel.kind,
                name=channel.name,
                config=channel.config,
                secret=secret,
                min_level=channel.min_level,
                kinds=channel.kinds,
                enabled=channel.enabled,
            )
            answer: dict[str, Any] = {"id": row.id, "name": row.name, "unit": channel.unit,
                                      "kind": row.kind}  # fmt: skip
            if made:
                answer["secret"] = secret
            return answer

    return await run_in_threadpool(run)


@guarded(router, "DELETE", "/notifications/channels/{channel_id}", "admin")
async def channels_delete(
    request: Request, scope: Annotated[Scope, Depends(caller)], channel_id: ObjectId
) -> dict[str, Any]:
    """Delete a channel of the caller's units; its unsent notifications are dropped (counted
    in the answer and the audit trail)."""

    def run() -> dict[str, Any]:
        with _session(request) as session:
            dropped = delete_channel(session, scope, channel_id)
            return {"deleted": channel_id, "unsent_dropped": dropped}

    return await run_in_threadpool(run)
