"""``POST /api/v1/events``: a unit's batch, acknowledged only once it is durable on disk.

The order of refusals is the cheapest first and never stores part of a batch: credential (401),
size and type of the body (413, 415), every record valid (400, naming the line), the spool's
high-water mark (503 with ``Retry-After``), the unit's quota (429 with ``Retry-After``), then
the append, which returns only after the transaction holding the whole batch is fsync'd (group
commit: concurrent requests share one fsync). A repeated ``Idempotency-Key`` of the same unit
is answered 200 with ``"duplicate": true`` and stores nothing.
"""

from __future__ import annotations

import time
from typing import Annotated

from fastapi import APIRouter, Depends, Header, Query, Request
from fastapi.responses import JSONResponse
from pydantic import BaseModel
from starlette.concurrency import run_in_threadpool

from vedette.server.authz import caller, guarded
from vedette.server.body import BodyError, decode_body
from vedette.server.errors import ApiError
from vedette.store.spool import SpoolFull, SpoolUnavailable
from vedette.store.state.scope import Scope

router = APIRouter(prefix="/api/v1", tags=["ingest"])

MAX_KEY_LENGTH = 200


class IngestAnswer(BaseModel):
    """What the centre did with a batch."""

    accepted: int
    duplicate: bool
    seq: int
    unit: str


async def _read_body(request: Request, limit: int) -> bytes:
    """The raw body, refused as soon as it passes ``limit`` bytes (never read whole first)."""
    declared = request.headers.get("content-length")
    if declared is not None and declared.isdigit() and int(declared) > limit:
        raise BodyError(413, f"body of {int(declared):,} bytes is over the {limit:,}-byte limit")
    chunks: list[bytes] = []
    size = 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > limit:
            raise BodyError(413, f"body is over the {limit:,}-byte limit")
        chunks.append(chunk)
    return b"".join(chunks)


@guarded(
    router,
    "POST",
    "/events",
    "ingest",
    status_code=202,
    response_model=IngestAnswer,
    responses={200: {"model": IngestAnswer, "description": "a repeated Idempotency-Key"}},
)
async def ingest_events(
    request: Request,
    scope: Annotated[Scope, Depends(caller)],
    idempotency_key: Annotated[str | None, Header(max_length=MAX_KEY_LENGTH)] = None,
    unit: Annotated[str | None, Query(max_length=64)] = None,
) -> JSONResponse:
    """Send events: NDJSON, a JSON array or syslog lines (``text/plain``), gzip accepted.

    The events belong to the token's unit; a token of a unit above may send for a unit below
    it with ``?unit=NAME``.
    """
    centre = request.app.state.centre
    config = centre.config
    counters = centre.ingest
    counters.requests += 1
    target = await run_in_threadpool(_target_unit, centre, scope, unit)
    raw = await _read_body(request, config.max_body_bytes)
    try:
        body = decode_body(
            raw,
            content_type=request.headers.get("content-type"),
            content_encoding=request.headers.get("content-encoding"),
            max_bytes=config.max_body_bytes,
            max_records=config.max_batch_events,
        )
    except BodyError:
        counters.rejected_bad += 1
        raise
    if not centre.accepting():
        counters.refused_backpressure += 1
        raise SpoolFull(centre.spool.pending_events(), config.high_water_events, 5.0)
    wait = centre.quota.take(target, len(body.records))
    if wait is not None:
        counters.refused_quota += 1
        raise ApiError(
            429,
            "quota_exceeded",
            f"unit {target} is over its quota of {config.unit_quota_eps:,.0f} events/s",
            retry_after=wait,
        )
    try:
        result = await run_in_threadpool(
            centre.spool.append, target, body.kind, body.records, idempotency_key=idempotency_key
        )
    except SpoolFull:
        centre.quota.give_back(target, len(body.records))
        counters.refused_backpressure += 1
        raise
    except SpoolUnavailable:
        centre.quota.give_back(target, len(body.records))
        counters.refused_storage += 1
        counters.last_storage_error = time.monotonic()
        raise
    answer = IngestAnswer(
        accepted=result.count, duplicate=result.duplicate, seq=result.seq, unit=target
    )
    if result.duplicate:
        centre.quota.give_back(target, len(body.records))
        counters.duplicates += 1
        return JSONResponse(answer.model_dump(), status_code=200)
    counters.accepted_events += result.count
    counters.accepted_by_unit[target] = counters.accepted_by_unit.get(target, 0) + result.count
    return JSONResponse(answer.model_dump(), status_code=202)


def _target_unit(centre: object, scope: Scope, unit: str | None) -> str:
    """The unit the events belong to: the token's own, or one below it that it names."""
    from vedette.store.state.units import scoped_unit

    if unit is None or unit == scope.principal.unit_name:
        return scope.principal.unit_name
    with centre.state.session(readonly=True) as session:  # type: ignore[attr-defined]
        return scoped_unit(session, scope, unit).name
