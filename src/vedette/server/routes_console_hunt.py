"""The console's hunt page: the SQL box over stored events, and Sigma retro-hunts.

A retro-hunt is started from a form (a Sigma rule's YAML, units of the user's, a lookback or a
time range) through the same :func:`~vedette.server.routes_retrohunt.start_job` as
``POST /api/v1/retrohunts``; a rule that does not load is a message on the page, not an error.
The page lists the user's units' jobs, and its script polls ``GET /console/retrohunts`` (JSON,
the rows' progress in the user's language) until every shown job is finished: progress moves
without a reload. ``/hunt/retrohunts/{id}`` shows one job with the alerts it raised; another
unit's job is "not found" there, in the poll and for cancel, as in the API.
"""

from __future__ import annotations

import csv
import io
from typing import Any

import orjson
from fastapi import APIRouter, Request
from fastapi.responses import Response
from pydantic import ValidationError
from starlette.concurrency import run_in_threadpool

from vedette.server.authz import guarded
from vedette.server.routes_console import (
    Caller,
    ConsoleRoute,
    ObjectId,
    _checked_form,
    _date,
    _one,
    _page,
    _redirect,
    _session,
    _utc,
)
from vedette.server.routes_retrohunt import RetroHuntIn, start_job
from vedette.store.hunt import HuntRefused, run_hunt
from vedette.store.state.models import MAX_ID
from vedette.store.state.retrohunts import get_retrohunt, list_retrohunts, request_cancel
from vedette.store.state.scope import Invalid, NotFound, Scope
from vedette.store.state.units import unit_names
from vedette.web import queries
from vedette.web import retrohunts as views
from vedette.web.render import Page
from vedette.web.security import protect

router = APIRouter(tags=["console"], include_in_schema=False, route_class=ConsoleRoute)

DEFAULT_SQL = "SELECT time, unit, host, category FROM events ORDER BY time DESC LIMIT 100"
POLL_MILLISECONDS = 2000
"""How often the hunt page's script asks for the progress of unfinished jobs."""


def _hunt_data(request: Request, scope: Scope, lang: str) -> dict[str, Any]:
    """The user's units (for the form) and their retro-hunts with their rows' progress."""
    with _session(request, readonly=True) as session:
        units = sorted(unit_names(session, scope.unit_ids).values())
        jobs = list_retrohunts(session, scope, limit=views.JOBS_SHOWN)
    return {
        "units": units,
        "jobs": jobs,
        "views": {job["id"]: views.job_view(job, lang) for job in jobs},
    }


async def _hunt_page(
    request: Request,
    page: Page,
    scope: Scope,
    *,
    status: int = 200,
    sql: str = DEFAULT_SQL,
    result: Any = None,
    error: str = "",
    form: dict[str, list[str]] | None = None,
    retro: dict[str, Any] | None = None,
    retro_error: str = "",
) -> Response:
    data = await run_in_threadpool(_hunt_data, request, scope, page.lang)
    started = request.query_params.get("started", "")
    return page.render(
        "hunt.html",
        status=status,
        sql=sql,
        result=result,
        error=error,
        form=form or {},
        retro=retro or {"lookback": views.DEFAULT_LOOKBACK, "units": []},
        retro_error=retro_error,
        lookbacks=views.LOOKBACK_HOURS,
        can_write=scope.can_write_alerts(),
        started=int(started) if started.isdigit() and len(started) < 19 else None,
        cancelled=request.query_params.get("done") == "cancelled",
        poll=POLL_MILLISECONDS,
        **data,
    )


@guarded(router, "GET", "/hunt", "read")
async def hunt_page(request: Request, scope: Caller) -> Response:
    """The SQL box, the retro-hunt form and the user's units' retro-hunts."""
    return await _hunt_page(request, _page(request, scope), scope)


@guarded(router, "POST", "/hunt", "read")
async def hunt_submit(request: Request, scope: Caller) -> Response:
    """Run the query (as ``POST /api/v1/hunt`` does); show it, or export it as CSV or JSON."""
    page = _page(request, scope)
    form = await _checked_form(request)
    sql = _one(form, "sql")[:20_000]
    export = _one(form, "export")
    since, until = _utc(_date(_one(form, "from"))), _utc(_date(_one(form, "to")))
    centre = request.app.state.centre

    def run() -> Any:
        with _session(request, readonly=True) as session:
            units = sorted(unit_names(session, scope.unit_ids).values())
        return run_hunt(
            centre.store, sql, units=units, time_from=since, time_to=until, max_rows=10_000
        )

    try:
        result = await run_in_threadpool(run)
    except HuntRefused as exc:
        return await _hunt_page(
            request, page, scope, status=400, sql=sql, error=str(exc), form=form
        )
    if export == "json":
        body = orjson.dumps(
            {"columns": result.columns, "rows": result.rows, "truncated": result.truncated},
            default=str,
        )
        return _download(body, "application/json", "hunt.json")
    if export == "csv":
        buffer = io.StringIO()
        writer = csv.writer(buffer)
        writer.writerow(result.columns)
        for row in result.rows:
            writer.writerow([_csv_cell(v) for v in row])
        return _download(buffer.getvalue().encode(), "text/csv; charset=utf-8", "hunt.csv")
    return await _hunt_page(request, page, scope, sql=sql, result=result, form=form)


def _csv_cell(value: Any) -> str:
    text = "" if value is None else str(value)
    # A cell starting with = + - @ is a formula to a spreadsheet: event text must stay text.
    return "'" + text if text[:1] in ("=", "+", "-", "@", "\t", "\r") else text


def _download(body: bytes, media_type: str, name: str) -> Response:
    answer = Response(body, media_type=media_type)
    answer.headers["Content-Disposition"] = f'attachment; filename="{name}"'
    return protect(answer)


# -- retro-hunts ---------------------------------------------------------------------------


@guarded(router, "POST", "/hunt/retrohunts", "write")
async def retrohunt_start(request: Request, scope: Caller) -> Response:
    """Start a retro-hunt of the pasted Sigma rule over the chosen units (all the user's when
    none is chosen) and time range; a rule that does not load is shown on the page."""
    page = _page(request, scope)
    form = await _checked_form(request)
    retro: dict[str, Any] = {
        "rule": _one(form, "rule")[: views.MAX_RULE_CHARS + 1],
        "units": [u[:64] for u in form.get("units", []) if u][:1000],
        "lookback": _one(form, "lookback")[:8],
        "from": _one(form, "from")[:40],
        "to": _one(form, "to")[:40],
        "title": _one(form, "title")[:500],
        "incident": _one(form, "incident")[:20],
    }

    async def refused(message: str) -> Response:
        return await _hunt_page(request, page, scope, status=400, retro=retro,
                                retro_error=message)  # fmt: skip

    if not retro["rule"].strip():
        return await refused(page.gettext("Paste a Sigma rule."))
    if len(retro["rule"]) > views.MAX_RULE_CHARS:
        return await refused(page.gettext("The rule is too long."))
    try:
        since = _utc(_date(retro["from"]))
        until = _utc(_date(retro["to"]))
    except Invalid:
        return await refused(page.gettext("Write the times as on the form (UTC)."))
    since, until = views.time_range(retro["lookback"], since, until)
    incident = retro["incident"].strip().lstrip("#")
    if incident and not (incident.isdigit() and 0 < int(incident) <= MAX_ID):
        return await refused(page.gettext("The incident is a number."))
    try:
        body = RetroHuntIn.model_validate(
            {
                "rule": retro["rule"],
                "units": retro["units"],
                "from": since,
                "to": until,
                "incident_id": int(incident) if incident else None,
                "title": retro["title"].strip() or None,
            }
        )
    except ValidationError:
        return await refused(page.gettext("The form is not valid: check its fields."))
    centre = request.app.state.centre
    try:
        started = await run_in_threadpool(start_job, centre, scope, body)
    except Invalid as exc:
        # The engine's reason (a YAML error, a rule that does not load) is shown as it is.
        return await refused(page.gettext("The retro-hunt did not start:") + " " + str(exc)[:1000])
    return _redirect(page, f"/hunt?started={started['id']}#h-jobs")


@guarded(router, "GET", "/hunt/retrohunts/{job_id}", "read")
async def retrohunt_page(request: Request, scope: Caller, job_id: ObjectId) -> Response:
    """One retro-hunt: its progress (live), the alerts it raised, its incident, and cancel."""
    page = _page(request, scope)

    def run() -> dict[str, Any]:
        with _session(request, readonly=True) as session:
            job = get_retrohunt(session, scope, job_id)
            alerts = [
                queries.as_dict(a) for a in views.job_alerts(session, scope, job["alert_ids"])
            ]
        return {"job": job, "view": views.job_view(job, page.lang), "alerts": alerts}

    data = await run_in_threadpool(run)
    return page.render(
        "retrohunt.html",
        can_write=scope.can_write_alerts(),
        poll=POLL_MILLISECONDS,
        alerts_shown=views.ALERTS_SHOWN,
        **data,
    )


@guarded(router, "POST", "/hunt/retrohunts/{job_id}/cancel", "write")
async def retrohunt_cancel(request: Request, scope: Caller, job_id: ObjectId) -> Response:
    """Stop one of the user's units' retro-hunts at its next batch (its alerts so far stay)."""
    page = _page(request, scope)
    form = await _checked_form(request)
    centre = request.app.state.centre

    def run() -> None:
        with _session(request) as session:
            request_cancel(session, scope, job_id)
        centre.retrohunts.cancel(job_id)

    await run_in_threadpool(run)
    if _one(form, "back") == "job":
        return _redirect(page, f"/hunt/retrohunts/{job_id}")
    return _redirect(page, "/hunt?done=cancelled#h-jobs")


@guarded(router, "GET", "/console/retrohunts", "read")
async def retrohunt_progress(request: Request, scope: Caller) -> Response:
    """JSON ``{"items": [row, ...]}``: the progress of the jobs ``?ids=`` names (another
    unit's or unknown ids are left out), or of the user's newest jobs; rows as the page shows
    them, in the user's language."""
    page = Page.of(request)
    wanted = views.poll_ids(request.query_params.get("ids", ""))

    def run() -> list[dict[str, Any]]:
        with _session(request, readonly=True) as session:
            if not wanted:
                jobs = list_retrohunts(session, scope, limit=views.JOBS_SHOWN)
            else:
                jobs = []
                for job_id in wanted:
                    try:
                        jobs.append(get_retrohunt(session, scope, job_id))
                    except NotFound:
                        continue
        return [views.job_view(job, page.lang) for job in jobs]

    items = await run_in_threadpool(run)
    answer = Response(orjson.dumps({"items": items}), media_type="application/json")
    return protect(answer)
