"""The console: server-rendered pages over the same data layer and unit scoping as the API.

Every page is declared with :func:`guarded` like an API route and takes ``Depends(caller)``,
so a page shows no more than its user may read. A browser (``Accept: text/html``) that is not
logged in is sent to the login page, and a refused or unknown object is an HTML error page;
other clients get the API's JSON errors. Console ``POST``s are form posts carrying the CSRF
token of :mod:`vedette.web.security` (not needed with an ``Authorization`` header, which a
browser never adds by itself). ``GET /console/stream`` streams new-alert notices of the
user's units as server-sent events. The hunt page (SQL and retro-hunts) is
:mod:`vedette.server.routes_console_hunt`, on a router of its own with the same route class.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Callable, Coroutine
from datetime import UTC, datetime
from typing import Annotated, Any
from urllib.parse import parse_qs, quote

import orjson
from fastapi import APIRouter, Depends, Path, Request
from fastapi.responses import RedirectResponse, Response, StreamingResponse
from fastapi.routing import APIRoute
from starlette.concurrency import run_in_threadpool

from vedette.server.authz import bearer, caller, guarded
from vedette.server.errors import ApiError
from vedette.server.rules import feeds_folder, rule_error_record
from vedette.store.state import incidents as incident_svc
from vedette.store.state.accounts import (
    AuthError,
    add_token,
    authenticate_password,
    list_tokens,
    list_users,
)
from vedette.store.state.alerts import add_comment, get_alert, list_comments, update_alert
from vedette.store.state.audit import list_audit, verify_chain
from vedette.store.state.bulletins import ack_bulletin, list_bulletins, publish_bulletin
from vedette.store.state.exceptions import add_exception, delete_exception, list_exceptions
from vedette.store.state.models import MAX_ID
from vedette.store.state.rule_switches import list_disabled, set_rule_enabled
from vedette.store.state.scope import Forbidden, Invalid, NotFound, Role, Scope
from vedette.store.state.units import list_units, scoped_unit, unit_names
from vedette.store.state.warnings import ack_warning, list_warnings
from vedette.web import queries, rulesview, tuning, uploads
from vedette.web.i18n import Formats
from vedette.web.labels import label
from vedette.web.render import STATIC, Page
from vedette.web.security import (
    LOGIN_COOKIE,
    SESSION_COOKIE,
    new_login_token,
    protect,
    same,
    session_csrf,
    set_cookie,
)

MAX_FORM_BYTES = 1024 * 1024
STREAM_SECONDS = 15.0
"""An event stream ends after this long and the browser reconnects (``retry``) from the last
id it saw: a stopping server then never waits on an open stream for long."""
STREAM_POLL_SECONDS = 1.0
CONTENT_TYPES = {
    ".css": "text/css; charset=utf-8",
    ".js": "text/javascript; charset=utf-8",
    ".svg": "image/svg+xml",
    ".png": "image/png",
    ".ico": "image/x-icon",
    ".txt": "text/plain; charset=utf-8",
}
STATIC_FILES = {
    str(p.relative_to(STATIC)): p
    for p in STATIC.rglob("*")
    if p.is_file() and p.suffix in CONTENT_TYPES
}
PERIODS = (1, 24, 168, 720)
WALL_REFRESH = 30
"""Seconds between two refreshes of the wall screen (in place, by the console's script)."""

Handler = Callable[[Request], Coroutine[Any, Any, Response]]
ObjectId = Annotated[int, Path(ge=1, le=MAX_ID)]
Caller = Annotated[Scope, Depends(caller)]


def wants_html(request: Request) -> bool:
    """A browser navigation or form post (not an API client or the event stream)."""
    return "text/html" in request.headers.get("accept", "")


class ConsoleRoute(APIRoute):
    """A console route: for a browser, errors become pages (401 goes to the login page)."""

    def get_route_handler(self) -> Handler:
        original = super().get_route_handler()

        async def handler(request: Request) -> Response:
            try:
                return await original(request)
            except (ApiError, AuthError, NotFound, Forbidden, Invalid) as exc:
                if not wants_html(request):
                    raise
                return _error_page(request, exc)

        return handler


router = APIRouter(tags=["console"], include_in_schema=False, route_class=ConsoleRoute)


def _error_page(request: Request, exc: Exception) -> Response:
    page = Page.of(request)
    credential = bearer(request)
    if credential:
        # A logged-in user keeps the navigation on an error page.
        with contextlib.suppress(AuthError):
            page = _page(request, request.app.state.centre.auth.scope(credential))
    status = {NotFound: 404, Forbidden: 403, Invalid: 400, AuthError: 401}.get(type(exc), 400)
    if isinstance(exc, ApiError):
        status = exc.status
    if status == 401:
        target = _safe_next(request.url.path)
        return page.finish(RedirectResponse("/?next=" + quote(target, safe="/"), status_code=303))
    return page.render("error.html", status=status, status_code=status, message=str(exc))


def _safe_next(value: str | None) -> str:
    """A same-site path to go to after login (anything else goes to the overview)."""
    if value and value.startswith("/") and not value.startswith("//") and "\\" not in value:
        return value
    return "/overview"


async def _form(request: Request) -> dict[str, list[str]]:
    body = await request.body()
    if len(body) > MAX_FORM_BYTES:
        raise ApiError(413, "too_large", "form too large")
    return parse_qs(body.decode("utf-8", errors="replace"), keep_blank_values=True)


def _one(form: dict[str, list[str]], key: str, default: str = "") -> str:
    values = form.get(key)
    return values[0] if values else default


async def _checked_form(request: Request) -> dict[str, list[str]]:
    """The posted form, after checking its CSRF token against the session cookie."""
    form = await _form(request)
    if request.headers.get("authorization"):
        return form  # not a browser's ambient credential: no cross-site request possible
    credential = request.cookies.get(SESSION_COOKIE)
    if credential is None or not same(_one(form, "csrf"), session_csrf(credential)):
        raise ApiError(403, "forbidden", "missing or wrong CSRF token: reload the page")
    return form


def _page(request: Request, scope: Scope) -> Page:
    page = Page.of(request)
    page.scope = scope
    credential = bearer(request) or ""
    page.csrf = session_csrf(credential)
    return page


def _session(request: Request, *, readonly: bool = False) -> Any:
    return request.app.state.centre.state.session(readonly=readonly)


def _redirect(page: Page, target: str) -> Response:
    return page.finish(RedirectResponse(target, status_code=303))


# -- login ---------------------------------------------------------------------------------


@guarded(router, "GET", "/", "public")
async def login_page(request: Request) -> Response:
    """The login page (a logged-in user goes to the overview)."""
    page = Page.of(request)
    credential = request.cookies.get(SESSION_COOKIE)
    if credential:
        try:
            await run_in_threadpool(request.app.state.centre.auth.scope, credential)
            return _redirect(page, "/overview")
        except AuthError:
            pass
    return _login_form(page, request.query_params.get("next"))


def _login_form(
    page: Page, next_path: str | None, *, error: str = "", status: int = 200
) -> Response:
    token = new_login_token()
    answer = page.render(
        "login.html", status=status, login_csrf=token, next=_safe_next(next_path), error=error
    )
    set_cookie(answer, page.request, LOGIN_COOKIE, token)
    return answer


@guarded(router, "POST", "/login", "public")
async def login_submit(request: Request) -> Response:
    """Check the name and password; open a session (HttpOnly cookie) and go on."""
    page = Page.of(request)
    form = await _form(request)
    next_path = _one(form, "next")
    if not same(_one(form, "csrf"), request.cookies.get(LOGIN_COOKIE)):
        return _login_form(page, next_path, error=page.gettext("The form expired: try again."),
                           status=403)  # fmt: skip
    centre = request.app.state.centre
    name, password = _one(form, "name")[:128], _one(form, "password")[:1024]

    def check() -> Any:
        with centre.state.session() as session:
            return authenticate_password(session, name, password)

    try:
        principal = await run_in_threadpool(check)
    except AuthError:
        message = page.gettext("Wrong name or password, or the account is locked for a while.")
        return _login_form(page, next_path, error=message, status=401)
    credential = await run_in_threadpool(centre.auth.open_session, principal)
    answer = _redirect(page, _safe_next(next_path))
    set_cookie(answer, request, SESSION_COOKIE, credential)
    answer.delete_cookie(LOGIN_COOKIE, path="/")
    return answer


@guarded(router, "POST", "/logout", "authenticated")
async def logout_submit(request: Request, scope: Caller) -> Response:
    """End the session and go back to the login page."""
    await _checked_form(request)
    credential = bearer(request)
    if credential:
        await run_in_threadpool(request.app.state.centre.auth.close_session, credential)
    answer = _redirect(Page.of(request), "/")
    answer.delete_cookie(SESSION_COOKIE, path="/")
    return answer


# -- overview ------------------------------------------------------------------------------


@guarded(router, "GET", "/overview", "read")
async def overview_page(request: Request, scope: Caller) -> Response:
    """Alerts over time, by unit and tactic, top rules and hosts, ingest health, open
    incidents, new warnings and the ATT&CK heat map; ``?wall=1`` refreshes itself (every
    ``?refresh=`` seconds, 30 by default)."""
    page = _page(request, scope)
    try:
        hours = int(request.query_params.get("hours", "24"))
    except ValueError:
        hours = 24
    hours = hours if hours in PERIODS else 24
    centre = request.app.state.centre

    def run() -> dict[str, Any]:
        received = centre.spool.received_counts()
        with _session(request, readonly=True) as session:
            counts = queries.overview(session, scope, hours=hours)
            health = queries.unit_health(session, scope, received)
            incidents = incident_svc.list_incidents(session, scope, status="open", limit=10)
            warnings = list_warnings(session, scope, status="new", limit=10)
        covered = rulesview.coverage(rulesview.loaded_rules(centre))
        return {
            "counts": counts,
            "health": health,
            "incidents": incidents,
            "warnings": warnings,
            "heat": rulesview.heat_map(counts.by_technique, covered),
            "levels": queries.LEVELS,
        }

    data = await run_in_threadpool(run)
    wall = request.query_params.get("wall") == "1"
    refresh = request.query_params.get("refresh", "")
    seconds = min(max(int(refresh), 5), 3600) if refresh.isdigit() else WALL_REFRESH
    return page.render(
        "overview.html", hours=hours, periods=PERIODS, wall=wall, refresh=seconds, **data
    )


# -- alerts --------------------------------------------------------------------------------


@guarded(router, "GET", "/alerts", "read")
async def queue_page(request: Request, scope: Caller) -> Response:
    """The alert queue: filter, sort, search, select and act; new alerts stream in."""
    page = _page(request, scope)
    params = request.query_params
    wanted = queries.QueueFilter(
        status=params.get("status") or None,
        level=params.get("level") or None,
        unit=params.get("unit") or None,
        search=(params.get("q") or "")[:200],
        sort=params.get("sort") or "newest",
    )

    def run() -> dict[str, Any]:
        with _session(request, readonly=True) as session:
            alerts = [queries.as_dict(a) for a in queries.queue(session, scope, wanted)]
            units = sorted(unit_names(session, scope.unit_ids).values())
            newest = queries.newest_alert_id(session, scope)
        return {"alerts": alerts, "units": units, "newest": newest}

    data = await run_in_threadpool(run)
    return page.render(
        "queue.html",
        wanted=wanted,
        statuses=queries.STATUSES,
        levels=queries.LEVELS,
        reasons=queries.CLOSE_REASONS,
        sorts=(*queries.SORTS, "level"),
        done=params.get("done"),
        refused=params.get("refused"),
        **data,
    )


@guarded(router, "POST", "/alerts/bulk", "write")
async def queue_bulk(request: Request, scope: Caller) -> Response:
    """Acknowledge, assign, close with a reason or reopen the selected alerts."""
    page = _page(request, scope)
    form = await _checked_form(request)
    ids = [int(v) for v in form.get("ids", []) if v.isdigit()][:1000]
    action = _one(form, "action")
    reason = _one(form, "reason") or None
    if action == "close" and reason not in queries.CLOSE_REASONS:
        raise Invalid(page.gettext("Closing needs a reason."))

    def run() -> queries.BulkResult:
        with _session(request) as session:
            return queries.bulk(
                session,
                scope,
                ids,
                action=action,
                reason=reason,
                assignee=_one(form, "assignee")[:128],
            )

    result = await run_in_threadpool(run)
    back = _one(form, "back")
    back = back if back.startswith("/alerts") and not back.startswith("//") else "/alerts"
    joiner = "&" if "?" in back else "?"
    return _redirect(page, f"{back}{joiner}done={len(result.done)}&refused={len(result.refused)}")


@guarded(router, "GET", "/alerts/{alert_id}", "read")
async def alert_page(request: Request, scope: Caller, alert_id: ObjectId) -> Response:
    """One alert: event fields, rule YAML with matched selections, ATT&CK, related, actions."""
    page = _page(request, scope)
    centre = request.app.state.centre

    def run() -> dict[str, Any]:
        with _session(request, readonly=True) as session:
            alert = get_alert(session, scope, alert_id)
            comments = list(list_comments(session, scope, alert_id))
            related = [queries.as_dict(a) for a in queries.related(session, scope, alert)]
            data = {
                **queries.as_dict(alert),
                "kind": alert.kind,
                "rule_id": alert.rule_id,
                "close_reason": alert.close_reason,
                "assignee": alert.assignee,
                "first_seen": alert.first_seen,
                "attack": rulesview.described_techniques(alert.attack or []),
                "observables": alert.observables or [],
                "matched": alert.matched or {},
                "sample_event": alert.sample_event or {},
            }
        rule = rulesview.rule_of(centre, data["rule_id"])
        selections = [str(s) for s in data["matched"].get("selections", [])]
        path = rule.path if rule else None
        return {
            "alert": data,
            "comments": comments,
            "related": related,
            "rule": rule,
            "selections": selections,
            "lines": rulesview.rule_lines(path, selections),
            "fields": sorted(_flatten(data["sample_event"]).items()),
        }

    data = await run_in_threadpool(run)
    return page.render("alert.html", reasons=queries.CLOSE_REASONS, **data)


def _flatten(value: Any, prefix: str = "") -> dict[str, str]:
    """Nested event fields as ``a.b.c -> text`` rows."""
    if isinstance(value, dict):
        out: dict[str, str] = {}
        for key, item in value.items():
            out.update(_flatten(item, f"{prefix}.{key}" if prefix else str(key)))
        return out
    if isinstance(value, list):
        return {prefix: orjson.dumps(value).decode()}
    return {prefix: "" if value is None else str(value)}


@guarded(router, "POST", "/alerts/{alert_id}", "write")
async def alert_action(request: Request, scope: Caller, alert_id: ObjectId) -> Response:
    """An action from the alert page: acknowledge, take, close, reopen, assign, comment."""
    page = _page(request, scope)
    form = await _checked_form(request)
    action = _one(form, "action")

    def run() -> None:
        with _session(request) as session:
            if action == "comment":
                add_comment(session, scope, alert_id, text=_one(form, "text")[:20_000])
            elif action == "assign":
                update_alert(session, scope, alert_id, assignee=_one(form, "assignee") or None)
            elif action == "close":
                reason = _one(form, "reason")
                update_alert(session, scope, alert_id, status="closed", close_reason=reason)
            elif action in ("acknowledged", "in_progress", "new"):
                update_alert(session, scope, alert_id, status=action)
            else:
                raise Invalid(f"unknown action {action!r}")

    await run_in_threadpool(run)
    return _redirect(page, f"/alerts/{alert_id}")


@guarded(router, "GET", "/console/stream", "read")
async def alert_stream(request: Request, scope: Caller) -> Response:
    """Server-sent events: ``alert`` for each new alert of the user's units (JSON data, ids
    are alert ids so a reconnect resumes after ``Last-Event-ID``)."""
    page = Page.of(request)
    try:
        after = int(request.headers.get("last-event-id") or request.query_params.get("after", "0"))
    except ValueError:
        after = 0
    after = min(max(after, 0), MAX_ID)  # a larger id would make PostgreSQL raise mid-stream
    centre = request.app.state.centre
    credential = bearer(request) or ""
    formats = Formats(page.lang)

    def poll(after_id: int) -> list[dict[str, Any]]:
        with _session(request, readonly=True) as session:
            found = queries.alerts_after(session, scope, after_id)
            return [
                {
                    **queries.as_dict(a),
                    "last_seen": formats.when(a.last_seen),
                    "level_label": page.gettext(label(a.level)),
                    "status_label": page.gettext(label(a.status)),
                }
                for a in found
            ]

    async def events() -> AsyncIterator[bytes]:
        nonlocal after
        yield b"retry: 1000\n\n"
        loop = asyncio.get_running_loop()
        deadline = loop.time() + STREAM_SECONDS
        while loop.time() < deadline:
            if await request.is_disconnected():
                return
            try:
                centre.auth.scope(credential)  # a closed session ends the stream
            except AuthError:
                return
            for item in await run_in_threadpool(poll, after):
                after = max(after, int(item["id"]))
                data = orjson.dumps(item, default=str).decode()
                yield f"id: {item['id']}\nevent: alert\ndata: {data}\n\n".encode()
            yield b": keep-alive\n\n"
            await asyncio.sleep(STREAM_POLL_SECONDS)

    answer = StreamingResponse(events(), media_type="text/event-stream")
    answer.headers["X-Accel-Buffering"] = "no"
    return protect(answer)


# -- rules ---------------------------------------------------------------------------------


@guarded(router, "GET", "/rules", "read")
async def rules_page(request: Request, scope: Caller) -> Response:
    """Loaded rules, the ones that did not load and why, rules switched off and exceptions per
    unit (with their forms), and the indicator feeds with what they could not use."""
    page = _page(request, scope)
    centre = request.app.state.centre

    def run() -> dict[str, Any]:
        with _session(request, readonly=True) as session:
            rows = list_exceptions(session, scope)
            names = unit_names(session, {r.unit_id for r in rows})
            exceptions = [(names.get(r.unit_id), r) for r in rows]
            disabled = list_disabled(session, scope)
            units = sorted(unit_names(session, scope.unit_ids).values())
            root = _root_admin(session, scope)
        rules = sorted(rulesview.loaded_rules(centre), key=lambda r: (r.title.lower(), r.id))
        return {
            "rules": rules,
            "errors": [rule_error_record(e) for e in centre.rules.facts.rule_errors],
            "reload_errors": list(centre.reload_errors),
            "facts": centre.rules.facts,
            "loaded_at": centre.rules.loaded_at,
            "exceptions": exceptions,
            "disabled": disabled,
            "units": units,
            "feeds": rulesview.feed_reports(centre),
            "root_admin": root,
        }

    data = await run_in_threadpool(run)
    return page.render("rules.html", done=request.query_params.get("done", ""), **data)


def _root_admin(session: Any, scope: Scope) -> bool:
    """An admin of a root unit (the centre): the one who changes what every unit loads."""
    from vedette.store.state.models import Unit

    unit = session.get(Unit, scope.principal.unit_id)
    return scope.can_admin() and unit is not None and unit.parent_id is None


@guarded(router, "POST", "/rules/switch", "write")
async def rules_switch(request: Request, scope: Caller) -> Response:
    """Switch a rule off (or back on) for one of the user's units and the units below it."""
    page = _page(request, scope)
    form = await _checked_form(request)
    enabled = _one(form, "enabled") == "1"
    centre = request.app.state.centre

    def run() -> None:
        with _session(request) as session:
            set_rule_enabled(
                session,
                scope,
                unit=_one(form, "unit"),
                rule_id=_one(form, "rule_id"),
                enabled=enabled,
                reason=_one(form, "reason"),
            )
        centre.pipeline_state.refresh_exceptions()

    await run_in_threadpool(run)
    return _redirect(page, f"/rules?done={'enabled' if enabled else 'disabled'}#h-switch")


@guarded(router, "POST", "/rules/exceptions", "write")
async def rules_exception_add(request: Request, scope: Caller) -> Response:
    """Keep an exception (as drafted on the tuning page and confirmed by the analyst)."""
    page = _page(request, scope)
    form = await _checked_form(request)
    try:
        conditions = tuning.parse_conditions(_one(form, "conditions")[:20_000])
    except ValueError as exc:
        raise Invalid(page.gettext("Write one condition per line: field = value.") +
                      f" ({str(exc)[:100]})") from None  # fmt: skip
    centre = request.app.state.centre

    def run() -> None:
        with _session(request) as session:
            add_exception(
                session,
                scope,
                unit=_one(form, "unit"),
                rule_id=_one(form, "rule_id").strip()[:128] or None,
                conditions=conditions,
                reason=_one(form, "reason")[:2000],
                expires_at=_utc(_date(_one(form, "expires_at"))),
            )
        centre.pipeline_state.refresh_exceptions()

    await run_in_threadpool(run)
    return _redirect(page, "/rules?done=exception#h-exc")


@guarded(router, "POST", "/rules/exceptions/{exception_id}/delete", "write")
async def rules_exception_delete(
    request: Request, scope: Caller, exception_id: ObjectId
) -> Response:
    """Delete one of the user's exceptions."""
    page = _page(request, scope)
    await _checked_form(request)
    centre = request.app.state.centre

    def run() -> None:
        with _session(request) as session:
            delete_exception(session, scope, exception_id)
        centre.pipeline_state.refresh_exceptions()

    await run_in_threadpool(run)
    return _redirect(page, "/rules?done=deleted#h-exc")


@guarded(router, "GET", "/rules/tuning", "read")
async def rules_tuning(request: Request, scope: Caller) -> Response:
    """The noisiest rules per unit over a period; ``?unit=&rule=`` drafts an exception from
    the values that rule's alerts have in common, for the analyst to confirm."""
    page = _page(request, scope)
    params = request.query_params
    try:
        hours = int(params.get("hours", "168"))
    except ValueError:
        hours = 168
    hours = hours if hours in PERIODS else 168
    unit, rule = params.get("unit", "")[:200], params.get("rule", "")[:128]

    def run() -> dict[str, Any]:
        with _session(request, readonly=True) as session:
            noisy = tuning.noisiest(session, scope, hours=hours)
            draft = None
            if unit and rule:
                draft = {
                    "unit": unit,
                    "rule_id": rule,
                    "conditions": tuning.draft_conditions(session, scope, unit=unit, rule_id=rule),
                }
        return {"noisy": noisy, "draft": draft}

    data = await run_in_threadpool(run)
    return page.render("tuning.html", hours=hours, periods=PERIODS, **data)


@guarded(router, "POST", "/rules/feeds", "admin")
async def rules_feed_import(request: Request, scope: Caller) -> Response:
    """Import an indicator feed file (the centre's admins): kept in the home's ``feeds/`` and
    loaded by a reload; a feed that breaks the reload is removed again."""
    page = _page(request, scope)
    centre = request.app.state.centre
    body = await request.body()
    if len(body) > uploads.MAX_UPLOAD_BYTES:
        raise ApiError(413, "too_large", "feed file too large")
    upload = uploads.parse_upload(request.headers.get("content-type", ""), body)
    credential = request.cookies.get(SESSION_COOKIE)
    if not request.headers.get("authorization") and (
        credential is None or not same(upload.fields.get("csrf", ""), session_csrf(credential))
    ):
        raise ApiError(403, "forbidden", "missing or wrong CSRF token: reload the page")

    def root() -> bool:
        with _session(request, readonly=True) as session:
            return _root_admin(session, scope)

    if not await run_in_threadpool(root):
        raise ApiError(404, "not_found", "feeds are imported by the centre's admins")
    name = uploads.feed_name(upload.filename)
    if name is None or not upload.data:
        raise Invalid(page.gettext("Choose a feed file (.json, .csv, .txt or .gz)."))
    folder = feeds_folder(centre.config)

    def run() -> None:
        folder.mkdir(parents=True, exist_ok=True)
        target = folder / name
        previous = target.read_bytes() if target.exists() else None
        target.write_bytes(upload.data)
        try:
            centre.reload_rules()
        except Exception:
            if previous is None:
                target.unlink()
            else:
                target.write_bytes(previous)
            raise

    try:
        await run_in_threadpool(run)
    except Invalid:
        raise
    except Exception as exc:
        raise Invalid(page.gettext("The feed did not load; the old rules keep running.") +
                      f" {str(exc)[:300]}") from None  # fmt: skip
    return _redirect(page, "/rules?done=imported#h-feeds")


# -- admin ---------------------------------------------------------------------------------


@guarded(router, "GET", "/admin", "admin")
async def admin_page(request: Request, scope: Caller) -> Response:
    """The unit tree, tokens (never their secrets) and the audit trail."""
    page = _page(request, scope)
    return page.render("admin.html", **await run_in_threadpool(_admin_data, request, scope))


def _admin_data(request: Request, scope: Scope) -> dict[str, Any]:
    # The whole chain, in a system session (row-level security shows a scope its records only).
    with request.app.state.centre.state.session(readonly=True, system=True) as session:
        chain_ok, first_bad = verify_chain(session)
    with _session(request, readonly=True) as session:
        units = list_units(session, scope)
        tokens = list_tokens(session, scope)
        users = list_users(session, scope)
        names = unit_names(session, {t.unit_id for t in tokens} | {u.unit_id for u in users})
        audit = list_audit(session, scope, limit=100)
        return {
            "tree": queries.unit_tree(units),
            "tokens": [(names.get(t.unit_id), t) for t in tokens],
            "users": [(names.get(u.unit_id), u) for u in users],
            "audit": audit,
            "chain_ok": chain_ok,
            "first_bad": first_bad,
            "roles": [r.value for r in Role],
            "new_token": None,
        }


@guarded(router, "POST", "/admin/tokens", "admin")
async def admin_token_add(request: Request, scope: Caller) -> Response:
    """A new token; its secret is on the answering page only, once."""
    page = _page(request, scope)
    form = await _checked_form(request)
    unit, role, name = _one(form, "unit"), _one(form, "role"), _one(form, "name")[:128]
    if role not in {r.value for r in Role}:
        raise Invalid(page.gettext("Choose a role."))

    def run() -> str:
        with _session(request) as session:
            scoped_unit(session, scope, unit)
            _, secret = add_token(session, unit=unit, role=Role(role), name=name,
                                  actor=scope.actor)  # fmt: skip
            return secret

    secret = await run_in_threadpool(run)
    data = await run_in_threadpool(_admin_data, request, scope)
    data["new_token"] = {"unit": unit, "role": role, "secret": secret}
    return page.render("admin.html", status=201, **data)


# -- incidents -----------------------------------------------------------------------------


@guarded(router, "GET", "/incidents", "read")
async def incidents_page(request: Request, scope: Caller) -> Response:
    """Incidents the user's units own or take part in."""
    page = _page(request, scope)
    status = request.query_params.get("status") or None

    def run() -> list[dict[str, Any]]:
        with _session(request, readonly=True) as session:
            return incident_svc.list_incidents(
                session, scope, status=status if status in incident_svc.STATUSES else None
            )

    return page.render(
        "incidents.html", incidents=await run_in_threadpool(run), status_filter=status or ""
    )


@guarded(router, "POST", "/incidents", "write")
async def incidents_create(request: Request, scope: Caller) -> Response:
    """Open an incident by hand (maybe with the alerts selected in the queue)."""
    page = _page(request, scope)
    form = await _checked_form(request)
    given = form.get("ids", []) + _one(form, "alert_list").replace(",", " ").split()
    ids = [int(v) for v in given if v.isdigit()][:1000]
    severity = _one(form, "severity", "medium")

    def run() -> int:
        with _session(request) as session:
            incident = incident_svc.create_incident(
                session,
                scope,
                title=_one(form, "title")[:500] or page.gettext("Untitled incident"),
                severity=severity,
                alert_ids=ids,
                unit=None,
            )
            return int(incident.id)

    return _redirect(page, f"/incidents/{await run_in_threadpool(run)}")


@guarded(router, "GET", "/incidents/{incident_id}", "read")
async def incident_page(request: Request, scope: Caller, incident_id: ObjectId) -> Response:
    """One incident: timeline, alerts, tasks, comments, units."""
    page = _page(request, scope)

    def run() -> dict[str, Any]:
        with _session(request, readonly=True) as session:
            return incident_svc.incident_detail(session, scope, incident_id)

    return page.render("incident.html", incident=await run_in_threadpool(run))


@guarded(router, "POST", "/incidents/{incident_id}", "write")
async def incident_action(request: Request, scope: Caller, incident_id: ObjectId) -> Response:
    """Add a task or a comment, or change the status."""
    page = _page(request, scope)
    form = await _checked_form(request)
    action = _one(form, "action")

    def run() -> None:
        with _session(request) as session:
            if action == "task":
                incident_svc.add_task(
                    session,
                    scope,
                    incident_id,
                    title=_one(form, "title")[:2000],
                    unit=_one(form, "unit") or None,
                    assignee=_one(form, "assignee") or None,
                    due_at=_date(_one(form, "due_at")),
                )
            elif action == "comment":
                incident_svc.add_incident_comment(
                    session,
                    scope,
                    incident_id,
                    text=_one(form, "text")[:20_000],
                    shared=_one(form, "shared") == "1",
                )
            elif action == "status":
                incident_svc.update_incident(
                    session, scope, incident_id, status=_one(form, "status")
                )
            else:
                raise Invalid(f"unknown action {action!r}")

    await run_in_threadpool(run)
    return _redirect(page, f"/incidents/{incident_id}")


@guarded(router, "POST", "/incidents/{incident_id}/share", "write")
async def incident_share(request: Request, scope: Caller, incident_id: ObjectId) -> Response:
    """Share the incident with another unit (the owner side): the chosen alerts and
    observables only."""
    page = _page(request, scope)
    form = await _checked_form(request)
    alert_ids = [int(v) for v in form.get("alerts", []) if v.isdigit()][:1000]
    observables = [v[:2000] for v in form.get("observables", []) if v][:1000]

    def run() -> None:
        with _session(request) as session:
            incident_svc.share_incident(
                session,
                scope,
                incident_id,
                unit=_one(form, "unit").strip()[:200],
                alert_ids=alert_ids,
                observables=observables,
            )

    await run_in_threadpool(run)
    return _redirect(page, f"/incidents/{incident_id}")


@guarded(router, "POST", "/incidents/{incident_id}/escalate", "write")
async def incident_escalate(request: Request, scope: Caller, incident_id: ObjectId) -> Response:
    """Hand the incident to the unit above the owner (the owner stays a participant)."""
    page = _page(request, scope)
    form = await _checked_form(request)

    def run() -> None:
        with _session(request) as session:
            incident_svc.escalate_incident(
                session, scope, incident_id, reason=_one(form, "reason")[:2000]
            )

    await run_in_threadpool(run)
    return _redirect(page, f"/incidents/{incident_id}")


def _utc(moment: datetime | None) -> datetime | None:
    """A time from a form, read as UTC when it names no zone (the console shows UTC)."""
    if moment is not None and moment.tzinfo is None:
        return moment.replace(tzinfo=UTC)
    return moment


def _date(value: str) -> datetime | None:
    if not value:
        return None
    try:
        return datetime.fromisoformat(value)
    except ValueError:
        raise Invalid(f"not a date: {value!r}") from None


# -- warnings ------------------------------------------------------------------------------


@guarded(router, "GET", "/warnings", "read")
async def warnings_page(request: Request, scope: Caller) -> Response:
    """Early warnings of the user's units with their hits."""
    page = _page(request, scope)

    def run() -> list[dict[str, Any]]:
        with _session(request, readonly=True) as session:
            return list_warnings(session, scope, limit=200)

    return page.render("warnings.html", warnings=await run_in_threadpool(run))


@guarded(router, "POST", "/warnings/{warning_id}/ack", "write")
async def warning_ack(request: Request, scope: Caller, warning_id: ObjectId) -> Response:
    """Acknowledge a warning."""
    page = _page(request, scope)
    await _checked_form(request)

    def run() -> None:
        with _session(request) as session:
            ack_warning(session, scope, warning_id)

    await run_in_threadpool(run)
    return _redirect(page, "/warnings")


# -- bulletins -----------------------------------------------------------------------------


@guarded(router, "GET", "/bulletins", "read")
async def bulletins_page(request: Request, scope: Caller) -> Response:
    """Bulletins to the user's units (acknowledge) and from them (who has not acknowledged);
    a publish form for those who may write."""
    page = _page(request, scope)

    def run() -> dict[str, Any]:
        with _session(request, readonly=True) as session:
            bulletins = list_bulletins(session, scope, limit=200)
            names = unit_names(session, scope.unit_ids)
        own = names.get(scope.principal.unit_id)
        return {
            "bulletins": bulletins,
            "targets": sorted(n for n in names.values() if n != own),
            "mine": set(names.values()),
        }

    data = await run_in_threadpool(run)
    return page.render(
        "bulletins.html",
        can_publish=scope.can_write_alerts(),
        done=request.query_params.get("done", ""),
        **data,
    )


@guarded(router, "POST", "/bulletins", "write")
async def bulletins_publish(request: Request, scope: Caller) -> Response:
    """Publish a bulletin to the chosen units (all the user's units below its own if none)."""
    page = _page(request, scope)
    form = await _checked_form(request)
    units = [u[:200] for u in form.get("units", []) if u][:1000]
    observables = [_observable(line) for line in _one(form, "observables")[:20_000].splitlines()
                   if line.strip()]  # fmt: skip
    rules = _one(form, "rules")[:20_000].replace(",", " ").split()

    def run() -> None:
        with _session(request) as session:
            publish_bulletin(
                session,
                scope,
                title=_one(form, "title")[:500],
                text=_one(form, "text")[:20_000],
                observables=observables,
                rules=rules,
                units=units or None,
            )

    await run_in_threadpool(run)
    return _redirect(page, "/bulletins?done=published")


def _observable(line: str) -> dict[str, str]:
    """``type: value`` from one line of the publish form (a bare value is of type ``other``)."""
    kind, sep, value = line.strip().partition(":")
    if sep and kind.strip() and " " not in kind.strip() and value.strip():
        return {"type": kind.strip()[:32], "value": value.strip()[:4096]}
    return {"type": "other", "value": line.strip()[:4096]}


@guarded(router, "POST", "/bulletins/{bulletin_id}/ack", "write")
async def bulletin_ack(request: Request, scope: Caller, bulletin_id: ObjectId) -> Response:
    """Acknowledge a bulletin for the user's targeted units."""
    page = _page(request, scope)
    await _checked_form(request)

    def run() -> None:
        with _session(request) as session:
            ack_bulletin(session, scope, bulletin_id)

    await run_in_threadpool(run)
    return _redirect(page, "/bulletins?done=acknowledged")


# -- static assets -------------------------------------------------------------------------


@guarded(router, "GET", "/static/{name:path}", "public")
async def static_file(name: str) -> Response:
    """The console's own CSS, script and images (a fixed list: no path is built from input)."""
    file = STATIC_FILES.get(name)
    if file is None:
        raise ApiError(404, "not_found", "no such file")
    answer = Response(file.read_bytes(), media_type=CONTENT_TYPES[file.suffix])
    answer.headers["Cache-Control"] = "public, max-age=3600"
    return protect(answer)
