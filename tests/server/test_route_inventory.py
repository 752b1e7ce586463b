"""The route inventory: every route the app serves is in the authorisation table, and back.

The app is built by the real factory around a real :class:`Centre` on a temporary home, so a
route added anywhere (a router, the app itself) shows up here, not only the ones declared with
``guarded``.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from fastapi import FastAPI
from fastapi.routing import APIRoute, iter_route_contexts

from vedette.server.app import create_app
from vedette.server.authz import ROUTE_RIGHTS, caller
from vedette.server.centre import Centre
from vedette.server.config import ServeConfig
from vedette.server.routes_console import ConsoleRoute

pytestmark = pytest.mark.embedded_only(
    "no centre: the FastAPI app's route table in process, the same app on both sets"
)

# FastAPI's own schema route: public by design, carries no data of any unit, and is not one
# of ours to declare. Anything else must be in ROUTE_RIGHTS.
FRAMEWORK_ROUTES = {("GET", "/openapi.json"), ("HEAD", "/openapi.json")}


@pytest.fixture(scope="module")
def app(tmp_path_factory: pytest.TempPathFactory) -> Iterator[FastAPI]:
    home = tmp_path_factory.mktemp("inventory") / "home"
    centre = Centre.open(ServeConfig(home=home))
    try:
        yield create_app(centre)
    finally:
        centre.spool.close()
        centre.state.close()


def served(app: FastAPI) -> dict[tuple[str, str], object]:
    """``(METHOD, path) -> original route`` for every route the app answers."""
    routes: dict[tuple[str, str], object] = {}
    for context in iter_route_contexts(app.routes):
        assert context.path is not None, context
        for method in context.methods or ():
            routes[(method.upper(), context.path)] = context.original_route
    return routes


def _depends_on_caller(route: APIRoute) -> bool:
    todo = list(route.dependant.dependencies)
    while todo:
        dependency = todo.pop()
        if dependency.call is caller:
            return True
        todo.extend(dependency.dependencies)
    return False


def test_every_served_route_is_in_the_table(app: FastAPI) -> None:
    missing = sorted(set(served(app)) - set(ROUTE_RIGHTS) - FRAMEWORK_ROUTES)
    assert not missing, f"routes missing from ROUTE_RIGHTS: {missing}"


def test_the_table_names_no_route_that_is_not_served(app: FastAPI) -> None:
    ghosts = sorted(set(ROUTE_RIGHTS) - set(served(app)))
    assert not ghosts, f"ROUTE_RIGHTS names routes the app does not serve: {ghosts}"


def test_every_non_public_route_checks_the_caller(app: FastAPI) -> None:
    """A route in the table whose handler never asks for ``caller`` would skip the check."""
    unchecked = sorted(
        key
        for key, route in served(app).items()
        if key in ROUTE_RIGHTS
        and ROUTE_RIGHTS[key] != "public"
        and not (isinstance(route, APIRoute) and _depends_on_caller(route))
    )
    assert not unchecked, f"guarded routes without the caller dependency: {unchecked}"


def test_only_console_pages_are_left_out_of_the_schema(app: FastAPI) -> None:
    """``include_in_schema=False`` is for the HTML console only: an API route left out of
    /openapi.json would escape the schema tests (schemathesis fuzzes what the schema lists)."""
    hidden = {
        key: route
        for key, route in served(app).items()
        if isinstance(route, APIRoute) and not route.include_in_schema
    }
    assert hidden, "the console's pages are expected to be left out of the schema"
    wrong = sorted(
        key
        for key, route in hidden.items()
        if not isinstance(route, ConsoleRoute) or key[1].startswith("/api/")
    )
    assert not wrong, f"routes left out of /openapi.json that are not console pages: {wrong}"
    paths = app.openapi()["paths"]
    listed = {(method.upper(), path) for path, item in paths.items() for method in item}
    assert listed.isdisjoint(hidden), sorted(listed & set(hidden))
    shown = {k for k, r in served(app).items() if isinstance(r, APIRoute) and k not in hidden}
    assert shown <= listed, sorted(shown - listed)


def test_public_routes_are_the_few_expected(app: FastAPI) -> None:
    """A new public route is a decision a reviewer must see: list them here."""
    public = sorted(key for key, right in ROUTE_RIGHTS.items() if right == "public")
    assert public == [
        ("GET", "/"),  # the console's login page
        ("GET", "/healthz"),
        ("GET", "/metrics"),
        ("GET", "/readyz"),
        ("GET", "/static/{name:path}"),  # the console's vendored CSS and scripts
        ("POST", "/api/v1/auth/login"),
        ("POST", "/login"),  # the console's login form
    ]


def test_the_inventory_sees_a_route_added_outside_the_table(tmp_path: Path) -> None:
    """The check itself can fail: a route added straight on the app is reported missing."""
    centre = Centre.open(ServeConfig(home=tmp_path / "home"))
    try:
        app = create_app(centre)

        @app.get("/api/v1/forgotten")
        async def forgotten() -> dict[str, str]:
            return {}

        missing = set(served(app)) - set(ROUTE_RIGHTS) - FRAMEWORK_ROUTES
        assert missing == {("GET", "/api/v1/forgotten")}
    finally:
        centre.spool.close()
        centre.state.close()
