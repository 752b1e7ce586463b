"""Schemathesis over the running server's ``/openapi.json``: no route answers a server error.

Every operation the schema lists is fuzzed with valid (positive) and invalid (negative) inputs,
with the centre admin's token, against a real ``vedette serve`` holding real alerts. Examples
per operation are bounded and Hypothesis is derandomised, so a run is repeatable and short.
Destructive operations run last (``DELETE /tokens/{id}`` may revoke the token in use).
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
import schemathesis
from fastapi.routing import APIRoute
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from schemathesis import APIOperation, Case, GenerationMode
from serverkit import Centre, add_token, make_centre

from vedette.server.app import ROUTERS
from vedette.server.authz import ROUTE_RIGHTS

pytestmark = pytest.mark.contract

SAMPLE = Path(__file__).resolve().parents[2] / "samples" / "windows" / "WS-FIN-07" / "sysmon.jsonl"
EXAMPLES = 25
# Reloading the rules takes a couple of seconds: a few tries show it does not fail.
FEW = {("POST", "/api/v1/rules/reload"): 3}
LAST = ("DELETE", "/api/v1/tokens/{token_id}")


def api_routes() -> list[tuple[str, str]]:
    """The routes the app puts in its schema (every route of ROUTE_RIGHTS but those declared
    with ``include_in_schema=False``: the HTML console's pages, guarded like the API but no API;
    the route inventory checks that only console routes are left out)."""
    listed = {
        (method, route.path)
        for router in ROUTERS
        for route in router.routes
        if isinstance(route, APIRoute) and route.include_in_schema
        for method in route.methods
    }
    return sorted(k for k in ROUTE_RIGHTS if k in listed)


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Centre, str]]:
    home = tmp_path_factory.mktemp("schemathesis") / "home"
    centre = make_centre(home, units=(("centre", None), ("north", "centre")))
    token = add_token(home, "centre", "admin")
    centre.start()
    try:
        with centre.client(token) as http:
            answer = http.post(
                "/api/v1/events",
                params={"unit": "north"},
                content=SAMPLE.read_bytes(),
                headers={"Content-Type": "application/x-ndjson"},
            )
            assert answer.status_code == 202, answer.text
        centre.wait_stored(token, "north", 1)
        yield centre, token
    finally:
        centre.stop()


@pytest.fixture(scope="module")
def operations(server: tuple[Centre, str]) -> list[APIOperation]:
    centre, _ = server
    schema = schemathesis.openapi.from_url(centre.url + "/openapi.json", timeout=30)
    found = [result.ok() for result in schema.get_all_operations()]
    return sorted(found, key=lambda op: (op.method.upper(), op.path) == LAST)


def test_openapi_lists_every_route_in_the_table(server: tuple[Centre, str]) -> None:
    centre, _ = server
    paths = httpx.get(centre.url + "/openapi.json", timeout=30).json()["paths"]
    listed = {(method.upper(), path) for path, item in paths.items() for method in item}
    missing = sorted(set(api_routes()) - listed)
    assert not missing, f"API routes missing from /openapi.json: {missing}"


def test_no_operation_answers_a_server_error(
    server: tuple[Centre, str], operations: list[APIOperation]
) -> None:
    centre, token = server
    assert len(operations) >= len(api_routes())
    failures: list[str] = []
    calls: dict[tuple[str, str], int] = {}
    for operation in operations:
        _fuzz(centre, token, operation, failures, calls)
    # Every operation was really called (a strategy that generates nothing proves nothing).
    assert all(calls.get((op.method.upper(), op.path), 0) > 0 for op in operations), calls
    assert not failures, "server errors:\n" + "\n".join(failures[:20]) + "\n" + centre.log()[-3000:]


def _fuzz(
    centre: Centre,
    token: str,
    operation: APIOperation,
    failures: list[str],
    calls: dict[tuple[str, str], int],
) -> None:
    key = (operation.method.upper(), operation.path)
    strategy = st.one_of(
        operation.as_strategy(GenerationMode.POSITIVE),
        operation.as_strategy(GenerationMode.NEGATIVE),
    )

    @settings(
        max_examples=FEW.get(key, EXAMPLES),
        derandomize=True,
        database=None,
        deadline=None,
        suppress_health_check=list(HealthCheck),
    )
    @given(case=strategy)
    def run(case: Case) -> None:
        response = case.call(
            base_url=centre.url, headers={"Authorization": f"Bearer {token}"}, timeout=60
        )
        calls[key] = calls.get(key, 0) + 1
        # 503 is the documented back-pressure answer; every other 5xx is a bug.
        if response.status_code >= 500 and response.status_code != 503:
            failures.append(
                f"{key[0]} {key[1]} -> {response.status_code} {response.text[:200]}\n"
                f"  reproduce: {case.as_curl_command()}"
            )

    run()
