"""The FastAPI application of the monitoring centre, built by a factory around a :class:`Centre`.

Start and stop live in the ``lifespan`` (Starlette 1.x has no ``on_startup``): the worker, the
syslog listeners and the housekeeping tasks run on uvicorn's loop and threads, and a SIGTERM or
SIGINT stops them in order (listeners drain, the worker finishes its batch and flushes).
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from fastapi import FastAPI

from vedette import __version__
from vedette.server import (
    routes_alerts,
    routes_assets,
    routes_bulletins,
    routes_console,
    routes_console_hunt,
    routes_deadletters,
    routes_incidents,
    routes_ingest,
    routes_notify,
    routes_ops,
    routes_retrohunt,
    routes_units,
    routes_warnings,
)
from vedette.server.centre import Centre
from vedette.server.errors import install_error_handlers

ROUTERS = (
    routes_ingest.router,
    routes_alerts.router,
    routes_units.router,
    routes_ops.router,
    routes_notify.router,
    routes_incidents.router,
    routes_warnings.router,
    routes_bulletins.router,
    routes_retrohunt.router,
    routes_assets.router,
    routes_deadletters.router,
    routes_console.router,
    routes_console_hunt.router,
)

DESCRIPTION = """\
The Vedette monitoring centre: units send events (`POST /api/v1/events`), the centre detects
with Sigma rules, correlations and indicators, stores the events for hunting and raises alerts.
Every call is scoped to the caller's units: another unit's object answers 404.
Authenticate with `Authorization: Bearer TOKEN` (a token from `vedette admin token add`, or a
session from `POST /api/v1/auth/login`).
"""


def create_app(centre: Centre) -> FastAPI:
    """The app serving ``centre`` (already opened); the lifespan starts and stops it."""

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        await centre.start()
        try:
            yield
        finally:
            await centre.stop()

    app = FastAPI(
        title="Vedette monitoring centre",
        version=__version__,
        description=DESCRIPTION,
        lifespan=lifespan,
        docs_url=None,  # the Swagger UI loads assets from a CDN: not on an air-gapped centre
        redoc_url=None,
    )
    app.state.centre = centre
    install_error_handlers(app)
    for router in ROUTERS:
        app.include_router(router)
    return app
