"""Every error an API caller can meet, as JSON: ``{"error": code, "message": text}``.

Domain errors are translated here, in one place: not found (including another unit's object)
404, forbidden 403, invalid 400, unauthenticated 401, back-pressure 503 and quota 429 with
``Retry-After``; the state database unreachable (a restart, a failover) 503 with
``Retry-After``. Anything unexpected is logged with its traceback on the server and answered
500 with an incident id, never with the traceback.
"""

from __future__ import annotations

import logging
import math
import secrets

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from sqlalchemy.exc import DataError, DBAPIError
from starlette.exceptions import HTTPException as StarletteHTTPException

from vedette.server.body import BodyError
from vedette.store.hunt import HuntRefused
from vedette.store.spool import SpoolFull, SpoolUnavailable
from vedette.store.state.accounts import AuthError
from vedette.store.state.db import unavailable
from vedette.store.state.scope import Forbidden, Invalid, NotFound

log = logging.getLogger("vedette.server")


class ApiError(Exception):
    """An answer other than success, raised from a route or dependency."""

    def __init__(
        self,
        status: int,
        code: str,
        message: str,
        *,
        retry_after: float | None = None,
        extra: dict[str, object] | None = None,
    ) -> None:
        super().__init__(message)
        self.status = status
        self.code = code
        self.message = message
        self.retry_after = retry_after
        self.extra = extra or {}


def error_response(
    status: int,
    code: str,
    message: str,
    *,
    retry_after: float | None = None,
    extra: dict[str, object] | None = None,
) -> JSONResponse:
    """The JSON error body, with ``Retry-After`` (whole seconds) when given."""
    headers = {}
    if retry_after is not None:
        headers["Retry-After"] = str(max(1, math.ceil(retry_after)))
    if status == 401:
        headers["WWW-Authenticate"] = "Bearer"
    body: dict[str, object] = {"error": code, "message": message, **(extra or {})}
    return JSONResponse(body, status_code=status, headers=headers)


def install_error_handlers(app: FastAPI) -> None:
    """Translate every error into its JSON answer."""

    @app.exception_handler(ApiError)
    async def _api(_: Request, exc: ApiError) -> JSONResponse:
        return error_response(
            exc.status, exc.code, exc.message, retry_after=exc.retry_after, extra=exc.extra
        )

    @app.exception_handler(NotFound)
    async def _not_found(_: Request, exc: NotFound) -> JSONResponse:
        return error_response(404, "not_found", str(exc))

    @app.exception_handler(Forbidden)
    async def _forbidden(_: Request, exc: Forbidden) -> JSONResponse:
        return error_response(403, "forbidden", str(exc))

    @app.exception_handler(Invalid)
    async def _invalid(_: Request, exc: Invalid) -> JSONResponse:
        return error_response(400, "invalid", str(exc))

    @app.exception_handler(AuthError)
    async def _auth(_: Request, exc: AuthError) -> JSONResponse:
        return error_response(401, "unauthenticated", str(exc), retry_after=exc.retry_after)

    @app.exception_handler(BodyError)
    async def _body(_: Request, exc: BodyError) -> JSONResponse:
        extra: dict[str, object] = {} if exc.line is None else {"line": exc.line}
        code = {413: "too_large", 415: "unsupported_media_type"}.get(exc.status, "bad_request")
        return error_response(exc.status, code, str(exc), extra=extra)

    @app.exception_handler(HuntRefused)
    async def _hunt(_: Request, exc: HuntRefused) -> JSONResponse:
        return error_response(400, "query_refused", str(exc))

    @app.exception_handler(SpoolFull)
    async def _full(_: Request, exc: SpoolFull) -> JSONResponse:
        return error_response(
            503,
            "backpressure",
            "the centre is behind; nothing of this request was stored: retry later",
            retry_after=exc.retry_after,
        )

    @app.exception_handler(SpoolUnavailable)
    async def _unavailable(_: Request, exc: SpoolUnavailable) -> JSONResponse:
        log.error("spool unavailable: %s", exc)
        return error_response(
            503,
            "storage_unavailable",
            f"the centre cannot store events now ({exc}); nothing of this request was stored",
            retry_after=30,
        )

    @app.exception_handler(DBAPIError)
    async def _database(request: Request, exc: DBAPIError) -> JSONResponse:
        if isinstance(exc, DataError):
            # A value the database cannot hold that got past validation (PostgreSQL refuses
            # a NUL character in text and numbers out of a column's range; SQLite takes them):
            # the request's fault, said as such, not a 500 with a traceback in the log.
            reason = (str(exc.orig or exc).splitlines() or [type(exc).__name__])[0]
            log.info("refused on %s %s: %s", request.method, request.url.path, reason)
            return error_response(
                400,
                "invalid",
                "a value the centre's database cannot hold (a NUL character in text, or a "
                "number out of range)",
            )
        if not unavailable(exc):
            return await _unexpected(request, exc)
        # A restart or failover of the state store: the client retries after a few seconds.
        reason = (str(exc.orig or exc).splitlines() or [type(exc).__name__])[0]
        log.warning(
            "state store unavailable on %s %s: %s", request.method, request.url.path, reason
        )
        return error_response(
            503,
            "state_unavailable",
            "the centre's database is unavailable for a moment: retry later (events with the "
            "same Idempotency-Key are stored once)",
            retry_after=5,
        )

    @app.exception_handler(RequestValidationError)
    async def _validation(_: Request, exc: RequestValidationError) -> JSONResponse:
        problems = [
            f"{'.'.join(str(p) for p in err.get('loc', ()))}: {err.get('msg', '')}"
            for err in exc.errors()[:5]
        ]
        return error_response(400, "invalid", "; ".join(problems) or "invalid request")

    @app.exception_handler(StarletteHTTPException)
    async def _http(_: Request, exc: StarletteHTTPException) -> JSONResponse:
        code = {404: "not_found", 405: "method_not_allowed"}.get(exc.status_code, "error")
        return error_response(exc.status_code, code, str(exc.detail))

    @app.exception_handler(Exception)
    async def _unexpected(request: Request, exc: Exception) -> JSONResponse:
        incident = secrets.token_hex(6)
        log.exception("internal error %s on %s %s", incident, request.method, request.url.path)
        return error_response(
            500, "internal", f"internal error {incident}: the server log has the details"
        )
