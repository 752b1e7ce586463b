"""Retro-hunts: start one (a Sigma rule or an indicator set), read its progress, cancel, list.

The rule or indicators are loaded in the request, so a set that does not load answers 400 at
once; the hunt itself runs in the background (:mod:`vedette.server.retrohunt`). Every unit
named must be one of the caller's (another is 404); no unit named means all of them.
"""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Depends, Path, Query, Request
from pydantic import BaseModel, ConfigDict, Field
from starlette.concurrency import run_in_threadpool

from vedette.pipeline.detector import Detector
from vedette.server.authz import caller, guarded
from vedette.server.retrohunt import RetroHuntError, intel_detector, sigma_detector
from vedette.store.state.models import MAX_ID, Unit
from vedette.store.state.retrohunts import get_retrohunt, list_retrohunts, request_cancel
from vedette.store.state.scope import Invalid, Scope
from vedette.store.state.units import scoped_unit

router = APIRouter(prefix="/api/v1", tags=["retrohunts"])

JobId = Annotated[int, Path(ge=1, le=MAX_ID)]
Status = Literal["queued", "running", "done", "cancelled", "failed"]


class RetroHuntIn(BaseModel):
    """A Sigma rule (``rule``: YAML) or an indicator set (``indicators``: feed text in
    ``format``), a time range and units. Hits become alerts in the unit of each event."""

    model_config = ConfigDict(extra="forbid", populate_by_name=True)

    rule: str | None = Field(default=None, max_length=1_000_000)
    indicators: str | None = Field(default=None, max_length=32_000_000)
    format: Literal["stix", "misp", "csv", "list"] = "list"
    from_: datetime | None = Field(default=None, alias="from")
    to: datetime | None = None
    units: list[Annotated[str, Field(max_length=64)]] = Field(default=[], max_length=1000)
    incident_id: int | None = Field(default=None, ge=1, le=MAX_ID)
    title: str | None = Field(default=None, max_length=500)


def start_job(centre: Any, scope: Scope, body: RetroHuntIn) -> dict[str, Any]:
    """Check and start the retro-hunt ``body`` asks for (the API's and the console's start):
    units outside the scope are :class:`NotFound`, a rule or set that does not load
    :class:`Invalid`. ``{"id", "units"}``."""
    if (body.rule is None) == (body.indicators is None):
        raise Invalid("give either 'rule' (Sigma YAML) or 'indicators'")
    with centre.state.session(readonly=True) as session:
        if body.units:
            units = sorted({scoped_unit(session, scope, name).name for name in body.units})
        else:
            rows = session.query(Unit.name).filter(Unit.id.in_(scope.unit_ids))
            units = sorted(name for (name,) in rows)
    detector: Detector
    try:
        if body.rule is not None:
            detector, title = sigma_detector(body.rule)
            kind, spec = "sigma", {"rule": body.rule}
        else:
            assert body.indicators is not None
            detector, count = intel_detector(body.indicators, body.format)
            kind, title = "intel", f"{count} indicators"
            spec = {"indicators": body.indicators, "format": body.format}
    except RetroHuntError as exc:
        raise Invalid(str(exc)) from None
    job_id = centre.retrohunts.submit(
        scope,
        owner_unit_id=scope.principal.unit_id,
        kind=kind,
        title=body.title or title,
        spec=spec,
        detector=detector,
        units=units,
        time_from=body.from_,
        time_to=body.to,
        incident_id=body.incident_id,
    )
    return {"id": job_id, "units": units}


@guarded(router, "POST", "/retrohunts", "write", status_code=201)
async def retrohunts_start(
    request: Request, scope: Annotated[Scope, Depends(caller)], body: RetroHuntIn
) -> dict[str, Any]:
    """Start a retro-hunt → ``{"id", "units"}``; follow it with ``GET /retrohunts/{id}``."""
    return await run_in_threadpool(start_job, request.app.state.centre, scope, body)


@guarded(router, "GET", "/retrohunts", "read")
async def retrohunts_list(
    request: Request,
    scope: Annotated[Scope, Depends(caller)],
    status: Status | None = None,
    limit: Annotated[int, Query(ge=1, le=1000)] = 100,
) -> dict[str, Any]:
    """The caller's units' retro-hunts, newest first."""

    def run() -> dict[str, Any]:
        with request.app.state.centre.state.session(readonly=True) as session:
            return {"items": list_retrohunts(session, scope, status=status, limit=limit)}

    return await run_in_threadpool(run)


@guarded(router, "GET", "/retrohunts/{job_id}", "read")
async def retrohunts_get(
    request: Request, scope: Annotated[Scope, Depends(caller)], job_id: JobId
) -> dict[str, Any]:
    """One retro-hunt: ``status`` (queued, running, done, cancelled, failed), ``progress``
    (files done / files total), ``files_done``/``files_total``, ``days_done``/``days_total``
    (unit-days read), ``units_done``/``units_total``, ``hits`` (detections), ``events_read``,
    ``alert_ids``, ``samples`` (the first hits: unit, host, time, rule, count, alert)."""

    def run() -> dict[str, Any]:
        with request.app.state.centre.state.session(readonly=True) as session:
            return get_retrohunt(session, scope, job_id)

    return await run_in_threadpool(run)


@guarded(router, "POST", "/retrohunts/{job_id}/cancel", "write")
async def retrohunts_cancel(
    request: Request, scope: Annotated[Scope, Depends(caller)], job_id: JobId
) -> dict[str, Any]:
    """Stop a retro-hunt at its next batch (its alerts so far stay). Audited."""
    centre = request.app.state.centre

    def run() -> dict[str, Any]:
        with centre.state.session() as session:
            request_cancel(session, scope, job_id)
        centre.retrohunts.cancel(job_id)
        with centre.state.session(readonly=True) as session:
            return get_retrohunt(session, scope, job_id)

    return await run_in_threadpool(run)
