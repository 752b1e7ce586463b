"""The authorisation table: every route and the right it needs, in one place.

Routes are declared with :func:`guarded`, which records ``(method, path) -> right`` here; the
:func:`caller` dependency looks the matched route up in this table and refuses when the
caller's role lacks the right. A route missing from the table answers 500 before doing
anything, and a test enumerates the app's routes against the table, so a new route cannot slip
out of authorisation by being forgotten.

Rights: ``public`` (no credential), ``authenticated`` (any valid credential), ``ingest`` (send
events), ``read`` (read alerts, units, events), ``write`` (work alerts, exceptions), ``admin``
(units, users, tokens). Which roles hold which right is :mod:`vedette.store.state.scope`'s
business; unit scoping is the data layer's, on every call.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from fastapi import APIRouter, Request
from starlette.concurrency import run_in_threadpool

from vedette.server.errors import ApiError
from vedette.store.state.accounts import AuthError
from vedette.store.state.db import set_request_units
from vedette.store.state.scope import Forbidden, Scope

RIGHTS = ("public", "authenticated", "ingest", "read", "write", "admin")

ROUTE_RIGHTS: dict[tuple[str, str], str] = {}
"""``(METHOD, path template) -> right``, filled by :func:`guarded` at import."""


def guarded(
    router: APIRouter, method: str, path: str, right: str, **options: Any
) -> Callable[[Callable[..., Any]], Callable[..., Any]]:
    """``@guarded(router, "GET", "/api/v1/alerts", "read")``: a route and its right."""
    if right not in RIGHTS:
        raise ValueError(f"unknown right {right!r}")
    full = (router.prefix or "") + path
    key = (method.upper(), full)
    if key in ROUTE_RIGHTS and ROUTE_RIGHTS[key] != right:
        raise ValueError(f"{method} {full} declared twice with different rights")
    ROUTE_RIGHTS[key] = right
    return router.api_route(path, methods=[method.upper()], **options)


def _has(scope: Scope, right: str) -> bool:
    if right == "authenticated":
        return True
    if right == "ingest":
        return scope.can_ingest()
    if right == "read":
        return scope.can_read()
    if right == "write":
        return scope.can_write_alerts()
    if right == "admin":
        return scope.can_admin()
    return False


def right_of(request: Request) -> str:
    """The right the matched route needs (500 when it is not in the table)."""
    route = request.scope.get("route")
    path = getattr(route, "path", None)
    right = ROUTE_RIGHTS.get((request.method, str(path)))
    if right is None:
        raise ApiError(500, "route_not_authorised", "this route is missing from the table")
    return right


def bearer(request: Request) -> str | None:
    """The credential of the Authorization header or of the session cookie, if any."""
    header = request.headers.get("authorization")
    if header:
        kind, _, value = header.partition(" ")
        if kind.lower() == "bearer" and value.strip():
            return value.strip()
        return None
    return request.cookies.get("vedette_session")


async def caller(request: Request) -> Scope:
    """FastAPI dependency: the caller's :class:`Scope`, checked against the route's right.

    Async on purpose: it runs in the request's own context, so the units it sets for row-level
    security (:func:`set_request_units`) reach the route (sync routes get a copy of it).
    """
    right = right_of(request)
    credential = bearer(request)
    if credential is None:
        raise ApiError(401, "unauthenticated", "send Authorization: Bearer TOKEN")
    centre = request.app.state.centre
    try:
        scope: Scope = await run_in_threadpool(centre.auth.scope, credential)
    except AuthError as exc:
        raise ApiError(401, "unauthenticated", str(exc)) from None
    if not _has(scope, right):
        raise Forbidden(f"the role {scope.principal.role.value} may not do this")
    set_request_units(scope.unit_ids)
    return scope
