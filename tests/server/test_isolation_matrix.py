"""The unit-isolation matrix: every route x every role on ``north`` x every target unit.

The unit tree is ``centre -> {north -> north-1, south, west}``. Every role (admin, analyst,
viewer, ingest) holds a token on ``north``; ``north`` is *own*, ``north-1`` *child*, ``centre``
*parent* and ``south`` *sibling*. Every unit has real alerts (the bundled Sysmon sample ingested
into it fires rules), stored events, rule exceptions and tokens, all made through the API by the
centre's admin, and early warnings: ``west`` is sent the sample last, once the others' events
are stored, so its alerts' observables are found in (and warn) every other unit. One real
``vedette serve`` runs for the whole module.

The web console's pages are rows too, called with the role's bearer token (no CSRF token is
needed with an ``Authorization`` header) and ``Accept: text/html`` as a browser sends: their
answers are HTML, form posts answer 303, and no page shows any mark of another unit (the
standing objects' ids and titles, unit names) — see :func:`_no_foreign`.

How to read :data:`EXPECTED`: for each route, each role's outcome against the targets
``(own, child, parent, sibling)``:

- ``ok``: the call succeeds (:data:`SUCCESS` gives the status) and a list or filter shows the
  target's objects;
- ``hidden``: the target's objects are out of the caller's sight: an object id answers 404
  (and the object is left unchanged), a list does not show them, ``?unit=`` and hunt
  ``units`` filters give nothing; the console's bulk action redirects with the id refused;
- ``403``: the role lacks the right (checked before any lookup, so it says nothing about the
  object); ``404``: refused as not found whatever the target.

Every route that is not public answers 401 with no credential, a wrong one or a revoked token.
"""

from __future__ import annotations

import itertools
import re
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from http.cookiejar import CookieJar, DefaultCookiePolicy
from pathlib import Path
from typing import Any

import httpx
import orjson
import pytest
from serverkit import Centre, add_token, admin, make_centre

from vedette.server.app import ROUTERS
from vedette.server.authz import ROUTE_RIGHTS
from vedette.server.routes_console import router as console_router
from vedette.server.routes_console_hunt import router as hunt_router

pytestmark = pytest.mark.contract

assert ROUTERS, "importing the app fills ROUTE_RIGHTS"

SAMPLE = Path(__file__).resolve().parents[2] / "samples" / "windows" / "WS-FIN-07" / "sysmon.jsonl"
PASSWORD = "correct horse battery staple"

UNITS = (("centre", None), ("north", "centre"), ("north-1", "north"), ("south", "centre"))
WARNER = "west"  # sent the sample last: its alerts warn every unit above
ROLES = ("admin", "analyst", "viewer", "ingest")
USER_ROLES = ("admin", "analyst", "viewer")  # users are people: no user holds ingest
TARGETS = ("own", "child", "parent", "sibling")
UNIT_OF = {"own": "north", "child": "north-1", "parent": "centre", "sibling": "south"}
MINE = {"north", "north-1"}
NOT_MINE = {"centre", "south", WARNER}

SCOPED = ("ok", "ok", "hidden", "hidden")
EVERYWHERE = ("ok", "ok", "ok", "ok")
FORBIDDEN = ("403", "403", "403", "403")
NOT_FOUND = ("404", "404", "404", "404")


def _rights(admin: tuple[str, ...], analyst: tuple[str, ...], viewer: tuple[str, ...],
            ingest: tuple[str, ...]) -> dict[str, tuple[str, ...]]:  # fmt: skip
    return {"admin": admin, "analyst": analyst, "viewer": viewer, "ingest": ingest}


READ = _rights(SCOPED, SCOPED, SCOPED, FORBIDDEN)
WRITE = _rights(SCOPED, SCOPED, FORBIDDEN, FORBIDDEN)
ADMIN = _rights(SCOPED, FORBIDDEN, FORBIDDEN, FORBIDDEN)
ANYONE = _rights(EVERYWHERE, EVERYWHERE, EVERYWHERE, EVERYWHERE)

# fmt: off
EXPECTED: dict[tuple[str, str], dict[str, tuple[str, ...]]] = {
    # route                                          role -> (own, child, parent, sibling)
    ("POST", "/api/v1/events"):                      _rights(SCOPED, FORBIDDEN, FORBIDDEN, SCOPED),
    ("GET", "/api/v1/alerts"):                       READ,
    ("GET", "/api/v1/alerts/{alert_id}"):            READ,
    ("PATCH", "/api/v1/alerts/{alert_id}"):          WRITE,
    ("POST", "/api/v1/alerts/{alert_id}/comments"):  WRITE,
    ("GET", "/api/v1/units"):                        READ,
    ("POST", "/api/v1/units"):                       ADMIN,
    ("GET", "/api/v1/tokens"):                       ADMIN,
    ("POST", "/api/v1/tokens"):                      ADMIN,
    ("DELETE", "/api/v1/tokens/{token_id}"):         ADMIN,
    ("GET", "/api/v1/exceptions"):                   READ,
    ("POST", "/api/v1/exceptions"):                  WRITE,
    ("DELETE", "/api/v1/exceptions/{exception_id}"): WRITE,
    ("GET", "/api/v1/audit"):                        ADMIN,
    ("GET", "/healthz"):                             ANYONE,
    ("GET", "/readyz"):                              ANYONE,
    ("GET", "/metrics"):                             ANYONE,
    ("GET", "/api/v1/rules"):                        _rights(EVERYWHERE, EVERYWHERE, EVERYWHERE,
                                                             FORBIDDEN),
    # Only the centre's (root unit's) admins reload the rules every unit shares.
    ("POST", "/api/v1/rules/reload"):                _rights(NOT_FOUND, FORBIDDEN, FORBIDDEN,
                                                             FORBIDDEN),
    ("POST", "/api/v1/auth/login"):                  ANYONE,
    ("POST", "/api/v1/auth/logout"):                 ANYONE,
    ("GET", "/api/v1/auth/whoami"):                  ANYONE,
    ("POST", "/api/v1/hunt"):                        READ,
    ("GET", "/api/v1/notifications"):                ADMIN,
    ("GET", "/api/v1/notifications/channels"):       ADMIN,
    ("POST", "/api/v1/notifications/channels"):      ADMIN,
    ("DELETE", "/api/v1/notifications/channels/{channel_id}"): ADMIN,
    ("GET", "/api/v1/incidents"):                    READ,
    ("GET", "/api/v1/incidents/{incident_id}"):      READ,
    ("GET", "/api/v1/incidents/{incident_id}/export"): READ,
    ("POST", "/api/v1/incidents"):                   WRITE,
    ("PATCH", "/api/v1/incidents/{incident_id}"):    WRITE,
    ("POST", "/api/v1/incidents/{incident_id}/tasks"): WRITE,
    ("PATCH", "/api/v1/incidents/{incident_id}/tasks/{task_id}"): WRITE,
    ("POST", "/api/v1/incidents/{incident_id}/comments"): WRITE,
    ("POST", "/api/v1/incidents/{incident_id}/share"): WRITE,
    ("POST", "/api/v1/incidents/{incident_id}/escalate"): WRITE,
    ("GET", "/api/v1/bulletins"):                    READ,
    ("POST", "/api/v1/bulletins"):                   WRITE,
    ("POST", "/api/v1/bulletins/{bulletin_id}/ack"): WRITE,
    ("GET", "/api/v1/warnings"):                     READ,
    ("POST", "/api/v1/warnings/{warning_id}/ack"):   WRITE,
    # Drafted warnings (coordination): only a draft is approved, by the source alert's side.
    # The world has no draft, so every caller with the right gets 404 whatever the target.
    ("POST", "/api/v1/warnings/{warning_id}/approve"): _rights(NOT_FOUND, NOT_FOUND, FORBIDDEN,
                                                               FORBIDDEN),
    ("GET", "/api/v1/assets"):                       READ,
    ("POST", "/api/v1/assets"):                      WRITE,
    ("DELETE", "/api/v1/assets/{asset_id}"):         WRITE,
    ("GET", "/api/v1/retrohunts"):                   READ,
    ("GET", "/api/v1/retrohunts/{job_id}"):          READ,
    ("POST", "/api/v1/retrohunts"):                  WRITE,
    ("POST", "/api/v1/retrohunts/{job_id}/cancel"):  WRITE,
    # No dead letter exists here: the rows check that none of another unit's is listed.
    ("GET", "/api/v1/deadletters"):                  ADMIN,
    # The console (HTML; its form posts answer 303).
    ("GET", "/"):                                    ANYONE,
    ("POST", "/login"):                              ANYONE,
    ("POST", "/logout"):                             ANYONE,
    ("GET", "/static/{name:path}"):                  ANYONE,
    ("GET", "/overview"):                            READ,
    ("GET", "/alerts"):                              READ,
    ("POST", "/alerts/bulk"):                        WRITE,
    ("GET", "/alerts/{alert_id}"):                   READ,
    ("POST", "/alerts/{alert_id}"):                  WRITE,
    ("GET", "/console/stream"):                      READ,
    # The hunt page lists the user's units' retro-hunts (the standing job of each).
    ("GET", "/hunt"):                                READ,
    ("POST", "/hunt"):                               READ,
    # Console retro-hunts (web: start from the hunt page, a job's page, cancel, progress).
    ("POST", "/hunt/retrohunts"):                    WRITE,
    ("GET", "/hunt/retrohunts/{job_id}"):            READ,
    ("POST", "/hunt/retrohunts/{job_id}/cancel"):    WRITE,
    ("GET", "/console/retrohunts"):                  READ,
    ("GET", "/rules"):                               READ,
    ("GET", "/admin"):                               ADMIN,
    ("POST", "/admin/tokens"):                       ADMIN,
    ("GET", "/incidents"):                           READ,
    # The console opens an incident in the caller's own unit with the target's alert in it.
    ("POST", "/incidents"):                          WRITE,
    ("GET", "/incidents/{incident_id}"):             READ,
    ("POST", "/incidents/{incident_id}"):            WRITE,
    ("GET", "/warnings"):                            READ,
    ("POST", "/warnings/{warning_id}/ack"):          WRITE,
    # Console rules and intel (web: rules switched off per unit, exceptions, tuning, feeds).
    ("GET", "/rules/tuning"):                        READ,
    ("POST", "/rules/switch"):                       WRITE,
    ("POST", "/rules/exceptions"):                   WRITE,
    ("POST", "/rules/exceptions/{exception_id}/delete"): WRITE,
    # Only the centre's (root unit's) admins import feeds every unit shares.
    ("POST", "/rules/feeds"):                        _rights(NOT_FOUND, FORBIDDEN, FORBIDDEN,
                                                             FORBIDDEN),
    # Console incident sharing and bulletins (web: share, escalate, bulletins page).
    ("POST", "/incidents/{incident_id}/share"):      WRITE,
    ("POST", "/incidents/{incident_id}/escalate"):   WRITE,
    ("GET", "/bulletins"):                           READ,
    ("POST", "/bulletins"):                          WRITE,
    ("POST", "/bulletins/{bulletin_id}/ack"):        WRITE,
}

SUCCESS: dict[tuple[str, str], int] = {
    ("POST", "/api/v1/events"): 202,
    ("POST", "/api/v1/alerts/{alert_id}/comments"): 201,
    ("POST", "/api/v1/units"): 201,
    ("POST", "/api/v1/tokens"): 201,
    ("DELETE", "/api/v1/tokens/{token_id}"): 204,
    ("POST", "/api/v1/exceptions"): 201,
    ("DELETE", "/api/v1/exceptions/{exception_id}"): 204,
    ("POST", "/api/v1/auth/logout"): 204,
    ("POST", "/api/v1/notifications/channels"): 201,
    ("POST", "/api/v1/incidents"): 201,
    ("POST", "/api/v1/incidents/{incident_id}/tasks"): 201,
    ("POST", "/api/v1/incidents/{incident_id}/comments"): 201,
    ("POST", "/api/v1/bulletins"): 201,
    ("POST", "/api/v1/assets"): 201,
    ("DELETE", "/api/v1/assets/{asset_id}"): 204,
    ("POST", "/api/v1/retrohunts"): 201,
    ("POST", "/login"): 303,
    ("POST", "/logout"): 303,
    ("POST", "/alerts/bulk"): 303,
    ("POST", "/alerts/{alert_id}"): 303,
    ("POST", "/admin/tokens"): 201,
    ("POST", "/incidents"): 303,
    ("POST", "/incidents/{incident_id}"): 303,
    ("POST", "/warnings/{warning_id}/ack"): 303,
    # Console rules and intel: form posts answer 303.
    ("POST", "/rules/switch"): 303,
    ("POST", "/rules/exceptions"): 303,
    ("POST", "/rules/exceptions/{exception_id}/delete"): 303,
    # Console incident sharing and bulletins: form posts answer 303.
    ("POST", "/incidents/{incident_id}/share"): 303,
    ("POST", "/incidents/{incident_id}/escalate"): 303,
    ("POST", "/bulletins"): 303,
    ("POST", "/bulletins/{bulletin_id}/ack"): 303,
    # Console retro-hunts: form posts answer 303.
    ("POST", "/hunt/retrohunts"): 303,
    ("POST", "/hunt/retrohunts/{job_id}/cancel"): 303,
}
CONSOLE = {
    (m, r.path)
    for r in (*console_router.routes, *hunt_router.routes)
    for m in getattr(r, "methods", ())
}
"""The console's routes (left out of /openapi.json): HTML pages and form posts."""
HTML = {"Accept": "text/html"}
LISTS = {("POST", "/api/v1/hunt"), ("POST", "/hunt")}
"""Besides ``GET`` routes without an id: calls that answer a list filtered to the caller."""
PAGES = {
    ("GET", "/"), ("POST", "/login"), ("POST", "/logout"), ("GET", "/static/{name:path}"),
    ("GET", "/overview"), ("GET", "/alerts"), ("POST", "/alerts/bulk"),
    ("GET", "/alerts/{alert_id}"), ("POST", "/alerts/{alert_id}"), ("GET", "/console/stream"),
    ("GET", "/hunt"), ("POST", "/hunt"), ("GET", "/rules"), ("GET", "/admin"),
    ("POST", "/admin/tokens"), ("GET", "/incidents"), ("POST", "/incidents"),
    ("GET", "/incidents/{incident_id}"), ("POST", "/incidents/{incident_id}"),
    ("GET", "/warnings"), ("POST", "/warnings/{warning_id}/ack"),
    # Console rules and intel.
    ("GET", "/rules/tuning"), ("POST", "/rules/switch"), ("POST", "/rules/exceptions"),
    ("POST", "/rules/exceptions/{exception_id}/delete"), ("POST", "/rules/feeds"),
    # Console incident sharing and bulletins.
    ("POST", "/incidents/{incident_id}/share"), ("POST", "/incidents/{incident_id}/escalate"),
    ("GET", "/bulletins"), ("POST", "/bulletins"), ("POST", "/bulletins/{bulletin_id}/ack"),
    # Console retro-hunts.
    ("POST", "/hunt/retrohunts"), ("GET", "/hunt/retrohunts/{job_id}"),
    ("POST", "/hunt/retrohunts/{job_id}/cancel"), ("GET", "/console/retrohunts"),
}  # fmt: skip
"""Console routes called as a browser would (``Accept: text/html``) by :func:`_console_call`
and checked for marks of other units by :func:`_console_shows`."""
INCIDENT_WRITES: dict[tuple[str, str], tuple[str, dict[str, Any]]] = {
    # route -> (path after /api/v1/incidents/{id}, body); each runs on a fresh incident
    ("PATCH", "/api/v1/incidents/{incident_id}"): ("", {"title": "patched", "status": "closed"}),
    ("POST", "/api/v1/incidents/{incident_id}/tasks"): ("/tasks", {"title": "probe"}),
    ("POST", "/api/v1/incidents/{incident_id}/comments"): ("/comments", {"text": "probe"}),
    ("POST", "/api/v1/incidents/{incident_id}/share"): ("/share", {"unit": "south"}),
    ("POST", "/api/v1/incidents/{incident_id}/escalate"): ("/escalate", {"reason": "probe"}),
}
# fmt: on


@dataclass
class World:
    """The running centre, its tokens and the ids of the objects in every unit."""

    centre: Centre
    root: str  # the centre unit's admin: sets things up and checks side effects
    tokens: dict[str, str]  # role on north -> token
    alerts: dict[str, int] = field(default_factory=dict)  # unit -> an alert id
    alert_ids: dict[str, set[int]] = field(default_factory=dict)  # unit -> all its alerts
    free_alerts: dict[str, list[int]] = field(default_factory=dict)  # unit -> in no incident
    incidents: dict[str, int] = field(default_factory=dict)  # unit -> its standing incident
    warnings: dict[str, list[int]] = field(default_factory=dict)  # unit -> its warnings
    retrohunts: dict[str, int] = field(default_factory=dict)  # unit -> its standing job
    analysts: dict[str, str] = field(default_factory=dict)  # unit -> an analyst token of it
    counter: Iterator[int] = field(default_factory=itertools.count)
    clients: dict[str | None, httpx.Client] = field(default_factory=dict)  # token -> client
    foreign: list[str] = field(default_factory=list)  # marks of NOT_MINE objects in a page

    def http(self, token: str | None) -> httpx.Client:
        """The module's one client for ``token`` (kept open: no new connection per call)."""
        if token not in self.clients:
            headers = {"Authorization": f"Bearer {token}"} if token else {}
            # It keeps no cookie: a session set by one call must not credential the next.
            jar = CookieJar(policy=DefaultCookiePolicy(allowed_domains=[]))
            self.clients[token] = httpx.Client(
                base_url=self.centre.url, headers=headers, cookies=jar, timeout=60
            )
        return self.clients[token]

    def as_root(self, method: str, path: str, **kwargs: Any) -> httpx.Response:
        answer = self.http(self.root).request(method, path, **kwargs)
        assert answer.status_code < 300, (method, path, answer.status_code, answer.text)
        return answer

    def whoami(self, token: str) -> httpx.Response:
        """``whoami`` with a one-off credential (on the anonymous client: no client kept)."""
        bearer = {"Authorization": f"Bearer {token}"}
        return self.http(None).get("/api/v1/auth/whoami", headers=bearer)

    def close(self) -> None:
        for client in self.clients.values():
            client.close()


@pytest.fixture(scope="module")
def world(tmp_path_factory: pytest.TempPathFactory) -> Iterator[World]:
    home = tmp_path_factory.mktemp("matrix") / "home"
    centre = make_centre(home, units=(*UNITS, (WARNER, "centre")))
    root = add_token(home, "centre", "admin")
    for role in USER_ROLES:
        admin(home, "user", "add", f"north-{role}", "--unit", "north", "--role", role)
    centre.start()
    world = World(centre=centre, root=root, tokens={})
    try:
        for role in ROLES:
            made = world.as_root("POST", "/api/v1/tokens", json={"unit": "north", "role": role})
            world.tokens[role] = made.json()["token"]
        body = SAMPLE.read_bytes()
        events = len([line for line in body.splitlines() if line.strip()])
        for unit, _ in UNITS:
            _send(world, unit, body)
        for unit, _ in UNITS:
            centre.wait_stored(root, unit, events)
        # Only now: the warner's alerts find their observables stored in every other unit.
        _send(world, WARNER, body)
        centre.wait_stored(root, WARNER, events)
        for unit, _ in UNITS:
            world.as_root("POST", "/api/v1/tokens", json={"unit": unit, "role": "viewer"})
            world.as_root(
                "POST",
                "/api/v1/exceptions",
                json={"unit": unit, "rule_id": f"standing-{unit}", "reason": "standing"},
            )
            world.as_root("POST", "/api/v1/notifications/channels", json=_channel(unit))
            made = world.as_root("POST", "/api/v1/incidents", json=_incident(unit, "standing"))
            world.incidents[unit] = made.json()["id"]
            world.as_root("POST", "/api/v1/bulletins", json=_bulletin(unit, "standing"))
            world.as_root("POST", "/api/v1/assets", json=_asset(unit, "standing"))
            # A retro-hunt belongs to the unit of whoever started it: each unit starts its own.
            made = world.as_root("POST", "/api/v1/tokens", json={"unit": unit, "role": "analyst"})
            world.analysts[unit] = made.json()["token"]
            world.retrohunts[unit] = _start_retrohunt(world, unit, "standing")
        _wait_coordinated(world)
        alerts = world.as_root("GET", "/api/v1/alerts", params={"limit": 1000}).json()["items"]
        warnings = world.as_root("GET", "/api/v1/warnings", params={"limit": 1000}).json()
        for unit in (*UNIT_OF.values(), WARNER):
            world.alert_ids[unit] = {a["id"] for a in alerts if a["unit"] == unit}
            assert world.alert_ids[unit], f"the sample raised no alert in {unit}"
            world.alerts[unit] = max(world.alert_ids[unit])
            world.warnings[unit] = [w["id"] for w in warnings["items"] if w["unit"] == unit]
        for unit in MINE:
            world.free_alerts[unit] = _free_alerts(world, unit, 2)
        world.foreign = _foreign_marks(world)
        yield world
    finally:
        world.close()
        centre.stop()


def _send(world: World, unit: str, body: bytes) -> None:
    world.as_root(
        "POST",
        "/api/v1/events",
        params={"unit": unit},
        content=body,
        headers={"Content-Type": "application/x-ndjson"},
    )


def _wait_coordinated(world: World, timeout: float = 120.0) -> None:
    """Until the coordinator has done every alert and every unit but the warner is warned.

    Grouping and warnings happen off the worker's path: waiting makes the world the same on
    every run (which alerts sit in incidents, which warnings exist).
    """
    deadline = time.monotonic() + timeout
    done, total, warned = -1.0, 0, set()
    while time.monotonic() < deadline:
        total = len(world.as_root("GET", "/api/v1/alerts", params={"limit": 1000}).json()["items"])
        metrics = world.http(None).get("/metrics").text
        found = re.search(r'^vedette_coordination_total\{outcome="alerts"\} (\S+)$', metrics, re.M)
        assert found, "the coordination counter is missing from /metrics"
        done = float(found.group(1))
        items = world.as_root("GET", "/api/v1/warnings", params={"limit": 1000}).json()["items"]
        warned = {w["unit"] for w in items}
        if done >= total and warned >= set(UNIT_OF.values()):
            return
        time.sleep(0.2)
    raise AssertionError(f"coordinated {done} of {total} alerts, warned {warned}")


def _free_alerts(world: World, unit: str, count: int) -> list[int]:
    """``count`` alerts of ``unit`` taken out of the incidents grouping put them in."""
    free: list[int] = []
    listed = world.as_root("GET", "/api/v1/incidents", params={"limit": 1000}).json()["items"]
    for incident in listed:
        if incident["owner_unit"] != unit or len(free) >= count:
            continue
        base = f"/api/v1/incidents/{incident['id']}"
        ids = [a["id"] for a in world.as_root("GET", base).json()["alerts"] if a["unit"] == unit]
        ids = [i for i in ids if i != world.alerts[unit]][: count - len(free)]
        if ids:
            world.as_root("PATCH", base, json={"detach": ids})
            free += ids
    assert len(free) == count, f"{unit}: only {free} could be freed"
    return free


def _foreign_marks(world: World) -> list[str]:
    """Text that only an object of a unit north may not see can put in a page."""
    marks: list[str] = []
    for unit in NOT_MINE:
        for alert_id in world.alert_ids[unit]:
            marks += [f'"/alerts/{alert_id}"', f'data-id="{alert_id}"', f">alert {alert_id}<"]
        for warning_id in world.warnings[unit]:
            marks += [f'id="w{warning_id}"', f'#w{warning_id}"', f'/warnings/{warning_id}/ack"']
    listed = world.as_root("GET", "/api/v1/incidents", params={"limit": 1000}).json()["items"]
    for incident in listed:  # standing and grouped ones; none was escalated or shared yet
        if incident["owner_unit"] in NOT_MINE:
            marks += [f'"/incidents/{incident["id"]}"', f">incident {incident['id']}<"]
    assert world.warnings["centre"] and world.warnings["south"], "the checks would prove nothing"
    return marks


# A title the matrix gives another unit's object (standing-south, v12-centre, probe-3-west).
FOREIGN_TITLE = re.compile(r"(?:standing|v\d+|probe-\d+)-(?:centre|south|west)(?![\w-])")
# A unit name as a cell, list item or option; incident lists may name ``centre`` as the owner
# of a north incident escalated to it, so they are checked by ids and titles only.
FOREIGN_UNIT = re.compile(r'>\s*(?:centre|south|west)\s*<|value="(?:centre|south|west)"')


def _no_foreign(world: World, route: tuple[str, str], text: str) -> None:
    """A console page (or error page) shown to north holds no mark of another unit."""
    found = FOREIGN_TITLE.search(text)
    assert found is None, f"{route} shows {found.group(0)!r}"
    if not route[1].startswith("/incidents"):
        found = FOREIGN_UNIT.search(text)
        assert found is None, f"{route} shows {found.group(0)!r}"
    leaked = [mark for mark in world.foreign if mark in text]
    assert not leaked, f"{route} shows {leaked[:5]}"


def _channel(unit: str) -> dict[str, Any]:
    """A webhook channel of ``unit`` that never fires here (critical only, nothing listens)."""
    name = f"hook-{unit}-{next(_channel_names)}"
    return {"unit": unit, "kind": "webhook", "name": name, "min_level": "critical",
            "kinds": ["bulletin"], "config": {"url": "http://127.0.0.1:9/hook"}}  # fmt: skip


_channel_names = itertools.count()


def _asset(unit: str, name: str) -> dict[str, Any]:
    return {"unit": unit, "kind": "host", "value": f"{name}-{unit}.example"}


def _retrohunt(unit: str, title: str) -> dict[str, Any]:
    """A retro-hunt over ``unit`` for an indicator no sample event holds (raises nothing)."""
    return {"units": [unit], "indicators": "0" * 32, "format": "list", "title": f"{title}-{unit}"}


# A Sigma rule the console's retro-hunt form starts (no sample event matches it).
PROBE_RULE = """
title: Matrix probe
id: 0a6a3c51-5d6e-4c55-9a33-7f3d1f0c2a10
status: test
logsource:
    category: process_creation
    product: windows
detection:
    selection:
        Image|endswith: '\\matrix-probe-nowhere.exe'
    condition: selection
level: low
"""


def _start_retrohunt(world: World, unit: str, title: str) -> int:
    answer = world.http(world.analysts[unit]).post(
        "/api/v1/retrohunts", json=_retrohunt(unit, title)
    )
    assert answer.status_code == 201, answer.text
    return int(answer.json()["id"])


def _bulletin(unit: str, title: str) -> dict[str, Any]:
    return {"units": [unit], "title": f"{title}-{unit}", "text": "matrix"}


def _root_item(world: World, path: str, item_id: int) -> dict[str, Any]:
    """The centre admin's view of one listed object (bulletin, warning)."""
    items = world.as_root("GET", path, params={"limit": 1000}).json()["items"]
    return next(i for i in items if i["id"] == item_id)


def _incident(unit: str, title: str) -> dict[str, Any]:
    return {"unit": unit, "title": f"{title}-{unit}", "severity": "low"}


_CHANNELS = "/api/v1/notifications/channels"


# -- one call per route, and what its answer must show ------------------------------------


def _call(
    world: World, http: httpx.Client, route: tuple[str, str], unit: str, role: str
) -> httpx.Response:
    """Make the call of ``route`` aimed at ``unit``'s objects (or filtered to ``unit``)."""
    n = next(world.counter)
    if route in PAGES:
        return _console_call(world, http, route, unit, role, n)
    match route:
        case ("POST", "/api/v1/events"):
            return http.post(
                "/api/v1/events",
                params={"unit": unit},
                content=b'{"message": "matrix probe"}\n',
                headers={"Content-Type": "application/x-ndjson"},
            )
        case ("GET", "/api/v1/alerts"):
            return http.get("/api/v1/alerts", params={"unit": unit, "limit": 1000})
        case ("GET", "/api/v1/alerts/{alert_id}"):
            return http.get(f"/api/v1/alerts/{world.alerts[unit]}")
        case ("PATCH", "/api/v1/alerts/{alert_id}"):
            return http.patch(
                f"/api/v1/alerts/{world.alerts[unit]}", json={"status": "acknowledged"}
            )
        case ("POST", "/api/v1/alerts/{alert_id}/comments"):
            return http.post(
                f"/api/v1/alerts/{world.alerts[unit]}/comments", json={"text": f"probe {n}"}
            )
        case ("GET", "/api/v1/units") | ("GET", "/api/v1/tokens") | ("GET", "/api/v1/exceptions"):
            return http.request(route[0], route[1])
        case ("POST", "/api/v1/units"):
            return http.post("/api/v1/units", json={"name": f"probe-{n}", "parent": unit})
        case ("POST", "/api/v1/tokens"):
            return http.post("/api/v1/tokens", json={"unit": unit, "role": "viewer"})
        case ("DELETE", "/api/v1/tokens/{token_id}"):
            made = world.as_root("POST", "/api/v1/tokens", json={"unit": unit, "role": "viewer"})
            answer = http.delete(f"/api/v1/tokens/{made.json()['id']}")
            answer.extensions["victim"] = made.json()["token"]
            return answer
        case ("POST", "/api/v1/exceptions"):
            return http.post(
                "/api/v1/exceptions",
                json={"unit": unit, "rule_id": f"probe-{n}", "reason": "matrix probe"},
            )
        case ("DELETE", "/api/v1/exceptions/{exception_id}"):
            made = world.as_root(
                "POST",
                "/api/v1/exceptions",
                json={"unit": unit, "rule_id": f"victim-{n}", "reason": "matrix victim"},
            )
            answer = http.delete(f"/api/v1/exceptions/{made.json()['id']}")
            answer.extensions["victim"] = made.json()["id"]
            return answer
        case ("GET", "/api/v1/audit"):
            return http.get("/api/v1/audit", params={"limit": 1000})
        case ("GET", "/api/v1/incidents/{incident_id}"):
            return http.get(f"/api/v1/incidents/{world.incidents[unit]}")
        case ("GET", "/api/v1/bulletins"):
            return http.get("/api/v1/bulletins", params={"limit": 1000})
        case ("POST", "/api/v1/bulletins"):
            return http.post("/api/v1/bulletins", json=_bulletin(unit, f"probe-{n}"))
        case ("POST", "/api/v1/bulletins/{bulletin_id}/ack"):
            made = world.as_root("POST", "/api/v1/bulletins", json=_bulletin(unit, f"v{n}"))
            before = _root_item(world, "/api/v1/bulletins", made.json()["id"])
            answer = http.post(f"/api/v1/bulletins/{made.json()['id']}/ack", json={})
            answer.extensions["listed"] = ("/api/v1/bulletins", before)
            return answer
        case ("POST", "/api/v1/warnings/{warning_id}/ack"):
            warnings = world.as_root("GET", "/api/v1/warnings", params={"limit": 1000}).json()
            mine = [w for w in warnings["items"] if w["unit"] == unit]
            assert mine, f"no early warning in {unit}: the case would prove nothing"
            answer = http.post(f"/api/v1/warnings/{mine[-1]['id']}/ack", json={})
            answer.extensions["listed"] = ("/api/v1/warnings", mine[-1])
            return answer
        case ("POST", "/api/v1/assets"):
            return http.post("/api/v1/assets", json=_asset(unit, f"probe-{n}"))
        case ("DELETE", "/api/v1/assets/{asset_id}"):
            made = world.as_root("POST", "/api/v1/assets", json=_asset(unit, f"v{n}"))
            answer = http.delete(f"/api/v1/assets/{made.json()['id']}")
            answer.extensions["victim"] = made.json()["id"]
            return answer
        case ("GET", "/api/v1/retrohunts/{job_id}"):
            return http.get(f"/api/v1/retrohunts/{world.retrohunts[unit]}")
        case ("POST", "/api/v1/retrohunts"):
            return http.post("/api/v1/retrohunts", json=_retrohunt(unit, f"probe-{n}"))
        case ("POST", "/api/v1/retrohunts/{job_id}/cancel"):
            job_id = _start_retrohunt(world, unit, f"v{n}")
            answer = http.post(f"/api/v1/retrohunts/{job_id}/cancel")
            answer.extensions["job"] = job_id
            return answer
        case ("GET", "/api/v1/incidents/{incident_id}/export"):
            return http.get(f"/api/v1/incidents/{world.incidents[unit]}/export")
        case ("POST", "/api/v1/incidents"):
            return http.post("/api/v1/incidents", json=_incident(unit, f"probe-{n}"))
        case ("PATCH", "/api/v1/incidents/{incident_id}/tasks/{task_id}"):
            victim = world.as_root("POST", "/api/v1/incidents", json=_incident(unit, f"v{n}"))
            base = f"/api/v1/incidents/{victim.json()['id']}"
            task = world.as_root("POST", f"{base}/tasks", json={"title": "victim"}).json()
            before = world.as_root("GET", base).json()
            answer = http.patch(f"{base}/tasks/{task['id']}", json={"status": "done"})
            answer.extensions["victim"] = (base, before)
            return answer
        case _ if route in INCIDENT_WRITES:
            victim = world.as_root("POST", "/api/v1/incidents", json=_incident(unit, f"v{n}"))
            base = f"/api/v1/incidents/{victim.json()['id']}"
            before = world.as_root("GET", base).json()
            suffix, body = INCIDENT_WRITES[route]
            answer = http.request(route[0], base + suffix, json=body)
            answer.extensions["victim"] = (base, before)
            return answer
        case ("POST", "/api/v1/notifications/channels"):
            return http.post("/api/v1/notifications/channels", json=_channel(unit))
        case ("DELETE", "/api/v1/notifications/channels/{channel_id}"):
            made = world.as_root("POST", "/api/v1/notifications/channels", json=_channel(unit))
            answer = http.delete(f"/api/v1/notifications/channels/{made.json()['id']}")
            answer.extensions["victim"] = made.json()["id"]
            return answer
        case ("POST", "/api/v1/auth/login"):
            # Login is public: the caller's token plays no part; the ingest row logs a viewer in.
            user = f"north-{role if role in USER_ROLES else 'viewer'}"
            return http.post("/api/v1/auth/login", json={"name": user, "password": PASSWORD})
        case ("POST", "/api/v1/hunt"):
            return http.post(
                "/api/v1/hunt",
                json={"sql": "SELECT unit, count(*) AS n FROM events GROUP BY unit",
                      "units": [unit]},
            )  # fmt: skip
        case ("POST", "/api/v1/warnings/{warning_id}/approve"):
            warnings = world.as_root("GET", "/api/v1/warnings", params={"limit": 1000}).json()
            mine = [w for w in warnings["items"] if w["unit"] == unit]
            assert mine, f"no early warning in {unit}: the case would prove nothing"
            return http.post(f"/api/v1/warnings/{mine[-1]['id']}/approve", json={})
        case _:
            return http.request(route[0], route[1])


def _variant(role: str, unit: str, choices: tuple[str, ...]) -> str:
    """One of ``choices`` per (role, target): every choice meets an allowed and a refused call."""
    return choices[(ROLES.index(role) + list(UNIT_OF.values()).index(unit)) % len(choices)]


def _console_call(
    world: World, http: httpx.Client, route: tuple[str, str], unit: str, role: str, n: int
) -> httpx.Response:
    """The console's call of ``route`` for ``unit``, as a browser would make it, with a token."""
    match route:
        case ("POST", "/login"):
            user = f"north-{role if role in USER_ROLES else 'viewer'}"
            # A browser of its own: the login form's double-submit cookie is needed here.
            with httpx.Client(base_url=world.centre.url, headers=HTML, timeout=60) as browser:
                form = browser.get("/")
                token = re.search(r'name="csrf" value="([^"]+)"', form.text)
                assert token, form.text
                data = {"csrf": token.group(1), "next": "/alerts", "name": user,
                        "password": PASSWORD}  # fmt: skip
                answer = browser.post("/login", data=data)
                answer.extensions["session"] = browser.cookies.get("vedette_session")
            return answer
        case ("GET", "/static/{name:path}"):
            return http.get("/static/console.css")
        case ("POST", "/logout"):
            return http.post("/logout", data={}, headers=HTML)
        case ("GET", "/alerts"):
            return http.get("/alerts", params={"unit": unit}, headers=HTML)
        case ("POST", "/alerts/bulk"):
            data = {"ids": [str(world.alerts[unit])], "action": "acknowledge", "back": "/alerts"}
            return http.post("/alerts/bulk", data=data, headers=HTML)
        case ("GET", "/alerts/{alert_id}"):
            return http.get(f"/alerts/{world.alerts[unit]}", headers=HTML)
        case ("POST", "/alerts/{alert_id}"):
            action = _variant(role, unit, ("acknowledged", "comment", "assign"))
            data = {"action": action, "text": f"probe {n}", "assignee": f"probe-{n}"}
            answer = http.post(f"/alerts/{world.alerts[unit]}", data=data, headers=HTML)
            answer.extensions["action"] = (action, f"probe {n}", f"probe-{n}")
            return answer
        case ("GET", "/console/stream"):
            return _stream(http, after=min(world.alert_ids[unit]) - 1)
        case ("POST", "/hunt"):
            data = {"sql": "SELECT unit, count(*) AS n FROM events GROUP BY unit"}
            return http.post("/hunt", data=data, headers=HTML)
        case ("POST", "/admin/tokens"):
            before = _tokens_of(world, unit)
            data = {"unit": unit, "role": "viewer", "name": f"probe-{n}"}
            answer = http.post("/admin/tokens", data=data, headers=HTML)
            answer.extensions["tokens"] = before
            return answer
        case ("POST", "/incidents"):
            # An alert of the target, in no incident (the grouping put the others in one).
            index = {"admin": 0, "analyst": 1}.get(role, 0)  # the roles that may
            alert = world.free_alerts[unit][index] if unit in MINE else world.alerts[unit]
            title = f"probe-{n}-{unit}"
            data = {"title": title, "severity": "low", "alert_list": str(alert)}
            answer = http.post("/incidents", data=data, headers=HTML)
            answer.extensions["created"] = (title, alert)
            return answer
        case ("GET", "/incidents/{incident_id}"):
            return http.get(f"/incidents/{world.incidents[unit]}", headers=HTML)
        case ("POST", "/incidents/{incident_id}"):
            victim = world.as_root("POST", "/api/v1/incidents", json=_incident(unit, f"v{n}"))
            incident_id = victim.json()["id"]
            base = f"/api/v1/incidents/{incident_id}"
            before = world.as_root("GET", base).json()
            action = _variant(role, unit, ("task", "comment", "status"))
            data = {"action": action, "title": f"probe {n}", "text": f"probe {n}",
                    "status": "closed", "unit": "north"}  # fmt: skip
            answer = http.post(f"/incidents/{incident_id}", data=data, headers=HTML)
            answer.extensions["victim"] = (base, before)
            answer.extensions["action"] = (action, f"probe {n}")
            return answer
        case ("POST", "/warnings/{warning_id}/ack"):
            warning_id = world.warnings[unit][0]
            before = _root_item(world, "/api/v1/warnings", warning_id)
            answer = http.post(f"/warnings/{warning_id}/ack", data={}, headers=HTML)
            answer.extensions["listed"] = ("/api/v1/warnings", before)
            return answer
        # -- console rules and intel --
        case ("GET", "/rules/tuning"):
            return http.get("/rules/tuning", params={"hours": 720}, headers=HTML)
        case ("POST", "/rules/switch"):
            return http.post(
                "/rules/switch",
                data={"unit": unit, "rule_id": f"probe-{n}", "enabled": "0"},
                headers=HTML,
            )
        case ("POST", "/rules/exceptions"):
            return http.post(
                "/rules/exceptions",
                data={"unit": unit, "rule_id": f"probe-{n}", "conditions": "Image = x.exe",
                      "reason": "matrix console probe"},
                headers=HTML,
            )  # fmt: skip
        case ("POST", "/rules/exceptions/{exception_id}/delete"):
            made = world.as_root(
                "POST",
                "/api/v1/exceptions",
                json={"unit": unit, "rule_id": f"victim-{n}", "reason": "matrix victim"},
            )
            answer = http.post(f"/rules/exceptions/{made.json()['id']}/delete", headers=HTML)
            answer.extensions["victim"] = made.json()["id"]
            return answer
        case ("POST", "/rules/feeds"):
            feed = ("probe.csv", b"type,value\ndomain,matrix-probe.example\n", "text/csv")
            return http.post("/rules/feeds", files={"feed": feed}, headers=HTML)
        # -- console incident sharing and bulletins --
        case ("POST", "/incidents/{incident_id}/share" | "/incidents/{incident_id}/escalate"):
            victim = world.as_root("POST", "/api/v1/incidents", json=_incident(unit, f"v{n}"))
            incident_id = victim.json()["id"]
            base = f"/api/v1/incidents/{incident_id}"
            before = world.as_root("GET", base).json()
            data = {"unit": "south", "reason": "matrix console probe"}
            path = route[1].replace("{incident_id}", str(incident_id))
            answer = http.post(path, data=data, headers=HTML)
            answer.extensions["victim"] = (base, before)
            return answer
        case ("POST", "/bulletins"):
            title = f"probe-{n}-{unit}"
            data = {"title": title, "text": "matrix", "units": unit}
            answer = http.post("/bulletins", data=data, headers=HTML)
            answer.extensions["published"] = title
            return answer
        case ("POST", "/bulletins/{bulletin_id}/ack"):
            made = world.as_root("POST", "/api/v1/bulletins", json=_bulletin(unit, f"v{n}"))
            before = _root_item(world, "/api/v1/bulletins", made.json()["id"])
            answer = http.post(f"/bulletins/{made.json()['id']}/ack", data={}, headers=HTML)
            answer.extensions["listed"] = ("/api/v1/bulletins", before)
            return answer
        # -- console retro-hunts --
        case ("POST", "/hunt/retrohunts"):
            title = f"probe-{n}-{unit}"
            data = {"rule": PROBE_RULE, "units": unit, "title": title, "lookback": "all"}
            answer = http.post("/hunt/retrohunts", data=data, headers=HTML)
            answer.extensions["created"] = title
            return answer
        case ("GET", "/hunt/retrohunts/{job_id}"):
            return http.get(f"/hunt/retrohunts/{world.retrohunts[unit]}", headers=HTML)
        case ("POST", "/hunt/retrohunts/{job_id}/cancel"):
            job_id = _start_retrohunt(world, unit, f"v{n}")
            answer = http.post(f"/hunt/retrohunts/{job_id}/cancel", data={}, headers=HTML)
            answer.extensions["job"] = job_id
            return answer
        case ("GET", "/console/retrohunts"):
            # The poll of the hunt page's script, naming the target's job by id.
            return http.get("/console/retrohunts", params={"ids": world.retrohunts[unit]})
        case _:
            assert route[0] == "GET" and "{" not in route[1], route
            return http.get(route[1], headers=HTML)


def _stream(http: httpx.Client, *, after: int) -> httpx.Response:
    """``/console/stream`` read up to the end of its first poll (the first keep-alive); the
    answer holds what was read, and the alerts announced in ``extensions["events"]``."""
    events: list[dict[str, Any]] = []
    lines: list[str] = []
    timeout = httpx.Timeout(10.0)
    with http.stream("GET", "/console/stream", params={"after": after}, timeout=timeout) as answer:
        if answer.status_code != 200:
            answer.read()
            return answer
        for line in answer.iter_lines():
            if line.startswith(": keep-alive"):
                break
            lines.append(line)
            if line.startswith("data: "):
                events.append(orjson.loads(line[6:]))
            assert len(lines) <= 10_000, "the stream did not end its first poll"
    read = httpx.Response(
        answer.status_code, headers=answer.headers, text="\n".join(lines), request=answer.request
    )
    read.extensions["events"] = events
    return read


def _tokens_of(world: World, unit: str) -> int:
    return sum(t["unit"] == unit for t in world.as_root("GET", "/api/v1/tokens").json()["items"])


def _all_audit(world: World, token: str) -> list[dict[str, Any]]:
    items: list[dict[str, Any]] = []
    before: int | None = None
    http = world.http(token)
    while True:
        params: dict[str, Any] = {"limit": 1000}
        if before is not None:
            params["before_id"] = before
        page = http.get("/api/v1/audit", params=params).json()["items"]
        if not page:
            return items
        items += page
        before = page[-1]["id"]


def _shows(world: World, route: tuple[str, str], answer: httpx.Response, unit: str) -> bool:
    """Whether a successful answer shows ``unit``'s objects (lists, filters, hunt)."""
    if route in PAGES:
        return _console_shows(world, route, answer, unit)
    json_body = answer.headers.get("content-type", "").startswith("application/json")
    body = answer.json() if json_body and answer.content else None
    match route:
        case ("GET", "/api/v1/alerts"):
            units = {a["unit"] for a in body["items"]}
            assert units <= {unit}, f"?unit={unit} returned alerts of {units}"
            return bool(units)
        case ("GET", "/api/v1/units"):
            names = {u["name"] for u in body["items"]}
            assert names.isdisjoint(NOT_MINE), names
            return unit in names
        case (
            ("GET", "/api/v1/tokens")
            | ("GET", "/api/v1/exceptions")
            | ("GET", "/api/v1/notifications/channels")
        ):
            units = {t["unit"] for t in body["items"]}
            assert units.isdisjoint(NOT_MINE), units
            return unit in units
        case ("GET", "/api/v1/assets"):
            units = {a["unit"] for a in body["items"]}
            assert units.isdisjoint(NOT_MINE), units
            return unit in units
        case ("GET", "/api/v1/retrohunts"):
            units = {j["unit"] for j in body["items"]}
            assert units.isdisjoint(NOT_MINE), units
            return unit in units
        case ("GET", "/api/v1/retrohunts/{job_id}"):
            assert body["id"] == world.retrohunts[unit] and body["units"] == [unit], body
        case ("POST", "/api/v1/retrohunts"):
            assert body["units"] == [unit], body
        case ("DELETE", "/api/v1/assets/{asset_id}"):
            ids = {a["id"] for a in world.as_root("GET", "/api/v1/assets").json()["items"]}
            assert answer.extensions["victim"] not in ids
        case ("GET", "/api/v1/bulletins"):
            titles = {b["title"] for b in body["items"]}
            assert not {f"standing-{u}" for u in NOT_MINE} & titles, titles
            return f"standing-{unit}" in titles
        case ("GET", "/api/v1/deadletters"):
            units = {d["unit"] for d in body["items"]}
            assert units <= MINE, units
            # No batch was set aside in this world: only their absence elsewhere is asserted.
            return unit in MINE
        case ("GET", "/api/v1/warnings"):
            units = {w["unit"] for w in body["items"]}
            assert units <= MINE, units
            # Warnings come from the coordinator as it finds shared observables: own and
            # child may have none yet, so only their absence elsewhere is asserted.
            return unit in units or unit in MINE
        case ("GET", "/api/v1/incidents"):
            titles = {i["title"] for i in body["items"]}
            assert not {f"standing-{u}" for u in NOT_MINE} & titles, titles
            return f"standing-{unit}" in titles
        case ("GET", "/api/v1/incidents/{incident_id}"):
            assert body["id"] == world.incidents[unit] and body["owner_unit"] == unit
        case ("GET", "/api/v1/notifications"):
            units = {c["unit"] for c in body["channels"]}
            assert units.isdisjoint(NOT_MINE), units
            return unit in units
        case ("GET", "/api/v1/audit"):
            added = {
                (r["after"] or {}).get("name")
                for r in _all_audit(world, answer.request.headers["authorization"][7:])
                if r["action"] == "unit.add"
            } | {(r["after"] or {}).get("unit") for r in body["items"]}
            assert added.isdisjoint(NOT_MINE), added
            return unit in added
        case ("POST", "/api/v1/hunt"):
            units = {row[0] for row in body["rows"]}
            assert units <= {unit}, f"hunt units=[{unit}] read rows of {units}"
            return bool(units)
        case ("GET", "/api/v1/alerts/{alert_id}") | ("PATCH", "/api/v1/alerts/{alert_id}"):
            assert body["unit"] == unit and body["id"] == world.alerts[unit]
        case ("DELETE", "/api/v1/tokens/{token_id}"):
            assert world.whoami(answer.extensions["victim"]).status_code == 401
        case ("DELETE", "/api/v1/exceptions/{exception_id}"):
            ids = {e["id"] for e in world.as_root("GET", "/api/v1/exceptions").json()["items"]}
            assert answer.extensions["victim"] not in ids
        case ("DELETE", "/api/v1/notifications/channels/{channel_id}"):
            ids = {c["id"] for c in world.as_root("GET", _CHANNELS).json()["items"]}
            assert answer.extensions["victim"] not in ids
        case ("POST", "/api/v1/auth/login"):
            units = set(world.whoami(body["token"]).json()["units"])
            assert units >= MINE and units.isdisjoint(NOT_MINE), units
        case ("GET", "/api/v1/auth/whoami"):
            assert set(body["units"]) >= MINE and set(body["units"]).isdisjoint(NOT_MINE)
            assert body["unit"] == "north"
    return True


def _cell(unit: str) -> re.Pattern[str]:
    """``unit`` as a table cell, list item or option of a page."""
    return re.compile(rf">\s*{re.escape(unit)}\s*<")


def _console_shows(world: World, route: tuple[str, str], answer: httpx.Response, unit: str) -> bool:
    """Whether a console answer shows ``unit``'s objects; never another unit's."""
    if route == ("GET", "/console/stream"):
        events = answer.extensions["events"]
        units = {e["unit"] for e in events}
        assert units <= MINE, f"the stream announced alerts of {units}"
        assert not {e["id"] for e in events} & world.alert_ids["south"], events
        return unit in units
    if route == ("POST", "/login"):
        assert answer.headers["location"] == "/alerts", answer.headers
        units = set(world.whoami(answer.extensions["session"]).json()["units"])
        assert units >= MINE and units.isdisjoint(NOT_MINE), units
        return True
    if route == ("GET", "/static/{name:path}"):
        assert answer.headers["content-type"].startswith("text/css"), answer.headers
        return True
    if route == ("GET", "/console/retrohunts"):
        assert answer.headers["content-type"].startswith("application/json"), answer.headers
        items = answer.json()["items"]
        assert {j["unit"] for j in items} <= MINE, items
        return [j["id"] for j in items] == [world.retrohunts[unit]]
    if answer.status_code == 303:  # a form post done: it went where it should, and did it
        _console_did(world, route, answer, unit)
        return True
    assert answer.headers["content-type"].startswith("text/html"), answer.headers
    text = answer.text
    _no_foreign(world, route, text)
    match route:
        case ("GET", "/alerts"):
            shown = {int(i) for i in re.findall(r'data-id="(\d+)"', text)}
            assert shown <= world.alert_ids[unit], f"?unit={unit} showed {shown}"
            return bool(shown)
        case ("GET", "/alerts/{alert_id}"):
            return f"<dd>{unit}</dd>" in text and f'"/alerts/{world.alerts[unit]}"' in text
        case ("GET", "/incidents"):
            return f">standing-{unit}<" in text
        case ("GET", "/incidents/{incident_id}"):
            return f"standing-{unit}" in text and f"owner: {unit}" in text
        case ("GET", "/warnings"):
            return any(f'id="w{w}"' in text for w in world.warnings[unit])
        case ("GET", "/rules"):
            return f"standing-{unit}" in text and bool(_cell(unit).search(text))
        case ("POST", "/admin/tokens"):
            secret = re.search(r'id="new-token">([^<]+)<', text)
            assert secret, text
            made = world.whoami(secret.group(1)).json()
            assert made["unit"] == unit and made["role"] == "viewer", made
            return _tokens_of(world, unit) == answer.extensions["tokens"] + 1
        case ("GET", "/overview") | ("GET", "/admin") | ("POST", "/hunt"):
            return bool(_cell(unit).search(text))
        # -- console rules and intel --
        case ("GET", "/rules/tuning"):
            shown = set(re.findall(r"<tr><td>([\w-]+)</td>", text))
            assert shown.isdisjoint(NOT_MINE), shown
            return unit in shown
        # -- console incident sharing and bulletins --
        case ("GET", "/bulletins"):
            return f"standing-{unit}" in text
        # -- console retro-hunts --
        case ("GET", "/hunt") | ("GET", "/hunt/retrohunts/{job_id}"):
            return f"standing-{unit}" in text
    return True  # the login page: nothing of any unit


def _console_did(world: World, route: tuple[str, str], answer: httpx.Response, unit: str) -> None:
    """After a console form post answered 303: where it sends the browser, and the change."""
    location = answer.headers["location"]
    match route:
        case ("POST", "/logout"):
            assert location == "/", location
        case ("POST", "/alerts/bulk"):
            assert location == "/alerts?done=1&refused=0", location
            alert = world.as_root("GET", f"/api/v1/alerts/{world.alerts[unit]}").json()
            assert alert["status"] == "acknowledged", alert
        case ("POST", "/alerts/{alert_id}"):
            assert location == f"/alerts/{world.alerts[unit]}", location
            alert = world.as_root("GET", location.replace("/", "/api/v1/", 1)).json()
            action, text, assignee = answer.extensions["action"]
            if action == "comment":
                assert text in [c["text"] for c in alert["comments"]], alert
            elif action == "assign":
                assert alert["assignee"] == assignee, alert
            else:
                assert alert["status"] == action, alert
        case ("POST", "/incidents"):
            title, alert_id = answer.extensions["created"]
            made = world.as_root("GET", location.replace("/", "/api/v1/", 1)).json()
            assert made["title"] == title and made["owner_unit"] == "north", made
            assert alert_id in [a["id"] for a in made["alerts"]], made
        case ("POST", "/incidents/{incident_id}"):
            base, _ = answer.extensions["victim"]
            assert location == base.replace("/api/v1", ""), location
            after = world.as_root("GET", base).json()
            action, text = answer.extensions["action"]
            if action == "task":
                assert text in [t["title"] for t in after["tasks"]], after
            elif action == "comment":
                assert text in [c["text"] for c in after["comments"]], after
            else:
                assert after["status"] == "closed", after
        case ("POST", "/warnings/{warning_id}/ack"):
            assert location == "/warnings", location
            _, before = answer.extensions["listed"]
            after = _root_item(world, "/api/v1/warnings", before["id"])
            assert after["status"] == "acknowledged", after
        # -- console rules and intel --
        case ("POST", "/rules/switch"):
            assert location == "/rules?done=disabled#h-switch", location
            page = world.http(world.root).get("/rules", headers=HTML).text
            assert re.search(rf"<td>{unit}</td><td><code>probe-\d+</code>", page), unit
        case ("POST", "/rules/exceptions"):
            assert location == "/rules?done=exception#h-exc", location
            items = world.as_root("GET", "/api/v1/exceptions").json()["items"]
            assert any(e["unit"] == unit and e["reason"] == "matrix console probe" for e in items)
        case ("POST", "/rules/exceptions/{exception_id}/delete"):
            assert location == "/rules?done=deleted#h-exc", location
            ids = {e["id"] for e in world.as_root("GET", "/api/v1/exceptions").json()["items"]}
            assert answer.extensions["victim"] not in ids
        # -- console incident sharing and bulletins --
        case ("POST", "/incidents/{incident_id}/share"):
            base, _ = answer.extensions["victim"]
            assert location == base.replace("/api/v1", ""), location
            units = {u["unit"]: u["role"] for u in world.as_root("GET", base).json()["units"]}
            assert units == {unit: "owner", "south": "participant"}, units
        case ("POST", "/incidents/{incident_id}/escalate"):
            base, _ = answer.extensions["victim"]
            assert location == base.replace("/api/v1", ""), location
            after = world.as_root("GET", base).json()
            assert after["owner_unit"] == {"north": "centre", "north-1": "north"}[unit], after
        case ("POST", "/bulletins"):
            assert location == "/bulletins?done=published", location
            items = world.as_root("GET", "/api/v1/bulletins", params={"limit": 1000}).json()
            made = [b for b in items["items"] if b["title"] == answer.extensions["published"]]
            assert [[t["unit"] for t in b["targets"]] for b in made] == [[unit]], made
        case ("POST", "/bulletins/{bulletin_id}/ack"):
            assert location == "/bulletins?done=acknowledged", location
            _, before = answer.extensions["listed"]
            after = _root_item(world, "/api/v1/bulletins", before["id"])
            assert [t["status"] for t in after["targets"]] == ["acknowledged"], after
        # -- console retro-hunts --
        case ("POST", "/hunt/retrohunts"):
            found = re.fullmatch(r"/hunt\?started=(\d+)#h-jobs", location)
            assert found, location
            job = world.as_root("GET", f"/api/v1/retrohunts/{found.group(1)}").json()
            assert job["title"] == answer.extensions["created"], job
            assert (job["unit"], job["units"], job["kind"]) == ("north", [unit], "sigma"), job
        case ("POST", "/hunt/retrohunts/{job_id}/cancel"):
            assert location == "/hunt?done=cancelled#h-jobs", location
            path = f"/api/v1/retrohunts/{answer.extensions['job']}"
            job = world.as_root("GET", path).json()
            deadline = time.monotonic() + 60
            while job["status"] == "running" and time.monotonic() < deadline:
                time.sleep(0.1)  # a running job stops at its next batch
                job = world.as_root("GET", path).json()
            # A small job may have finished before the cancel reached it.
            assert job["status"] in ("cancelled", "done"), job
        case _:
            raise AssertionError(f"{route} answered 303 to {location}")


def _untouched(world: World, route: tuple[str, str], answer: httpx.Response, unit: str) -> None:
    """After a refused write, the other unit's object is as it was."""
    match route:
        case (
            ("PATCH", "/api/v1/alerts/{alert_id}")
            | ("POST", "/api/v1/alerts/{alert_id}/comments")
            | ("POST", "/alerts/{alert_id}")
            | ("POST", "/alerts/bulk")
        ):
            alert = world.as_root("GET", f"/api/v1/alerts/{world.alerts[unit]}").json()
            assert alert["status"] == "new" and alert["comments"] == [], alert
            assert alert["assignee"] is None, alert
        case ("POST", "/incidents"):
            title, _ = answer.extensions["created"]
            listed = world.as_root("GET", "/api/v1/incidents", params={"limit": 1000}).json()
            assert title not in [i["title"] for i in listed["items"]], title
        case ("POST", "/admin/tokens"):
            assert _tokens_of(world, unit) == answer.extensions["tokens"]
        case ("DELETE", "/api/v1/tokens/{token_id}"):
            assert world.whoami(answer.extensions["victim"]).status_code == 200
        case ("DELETE", "/api/v1/exceptions/{exception_id}"):
            ids = {e["id"] for e in world.as_root("GET", "/api/v1/exceptions").json()["items"]}
            assert answer.extensions["victim"] in ids
        case ("DELETE", "/api/v1/notifications/channels/{channel_id}"):
            ids = {c["id"] for c in world.as_root("GET", _CHANNELS).json()["items"]}
            assert answer.extensions["victim"] in ids
        case ("DELETE", "/api/v1/assets/{asset_id}"):
            ids = {a["id"] for a in world.as_root("GET", "/api/v1/assets").json()["items"]}
            assert answer.extensions["victim"] in ids
        case ("POST", "/api/v1/retrohunts/{job_id}/cancel") | (
            "POST",
            "/hunt/retrohunts/{job_id}/cancel",
        ):
            job = world.as_root("GET", f"/api/v1/retrohunts/{answer.extensions['job']}").json()
            assert job["status"] != "cancelled", job
        case ("POST", "/hunt/retrohunts"):
            listed = world.as_root("GET", "/api/v1/retrohunts", params={"limit": 1000}).json()
            titles = {j["title"] for j in listed["items"]}
            assert answer.extensions["created"] not in titles, titles
        case _ if "listed" in answer.extensions:
            path, before = answer.extensions["listed"]
            assert _root_item(world, path, before["id"]) == before
        case _ if "victim" in answer.extensions and "/incidents/" in route[1]:
            base, before = answer.extensions["victim"]
            assert world.as_root("GET", base).json() == before
        case ("POST", "/api/v1/units"):
            units = world.as_root("GET", "/api/v1/units").json()["items"]
            assert not [u for u in units if u["parent"] == unit and u["name"].startswith("probe")]

    match route:  # console rules and intel
        case ("POST", "/rules/exceptions/{exception_id}/delete"):
            ids = {e["id"] for e in world.as_root("GET", "/api/v1/exceptions").json()["items"]}
            assert answer.extensions["victim"] in ids
        case ("POST", "/rules/feeds"):
            assert not (world.centre.home / "feeds").exists()

    match route:  # console incident sharing and bulletins
        case ("POST", "/bulletins"):
            items = world.as_root("GET", "/api/v1/bulletins", params={"limit": 1000}).json()
            titles = {b["title"] for b in items["items"]}
            assert answer.extensions["published"] not in titles


CASES = [
    pytest.param(route, role, target, id=f"{route[0]} {route[1]} {role} {target}")
    for route in EXPECTED
    for role in ROLES
    for target in TARGETS
]


def test_the_table_covers_every_route() -> None:
    missing = sorted(set(ROUTE_RIGHTS) - set(EXPECTED))
    assert not missing, f"routes with no row in EXPECTED (add their expected outcomes): {missing}"
    assert not set(EXPECTED) - set(ROUTE_RIGHTS), "EXPECTED names routes that are gone"
    assert all(set(row) == set(ROLES) for row in EXPECTED.values())
    assert all(len(cells) == len(TARGETS) for row in EXPECTED.values() for cells in row.values())


@pytest.mark.parametrize(("route", "role", "target"), CASES)
def test_matrix(world: World, route: tuple[str, str], role: str, target: str) -> None:
    outcome = EXPECTED[route][role][TARGETS.index(target)]
    unit = UNIT_OF[target]
    answer = _call(world, world.http(world.tokens[role]), route, unit, role)
    where = f"{route} as {role} on {target} ({unit}): {answer.status_code} {answer.text[:300]}"
    if outcome == "ok":
        assert answer.status_code == SUCCESS.get(route, 200), where
        assert _shows(world, route, answer, unit), f"{where}: {unit}'s objects not shown"
    elif outcome == "hidden":
        if (route[0] == "GET" and "{" not in route[1]) or route in LISTS:
            assert answer.status_code == 200, where
            assert not _shows(world, route, answer, unit), f"{where}: {unit} is visible"
        elif route == ("POST", "/alerts/bulk"):
            # Each id is tried in the caller's scope: another unit's counts as refused.
            assert answer.status_code == 303, where
            assert answer.headers["location"] == "/alerts?done=0&refused=1", where
            _untouched(world, route, answer, unit)
        else:
            assert answer.status_code == 404, where
            _refusal(world, route, answer, "not_found", where)
            _untouched(world, route, answer, unit)
    else:
        assert answer.status_code == int(outcome), where
        _refusal(world, route, answer, {403: "forbidden", 404: "not_found"}[int(outcome)], where)
        if outcome == "404":
            _untouched(world, route, answer, unit)


def _refusal(world: World, route: tuple[str, str], answer: httpx.Response, error: str,
             where: str) -> None:  # fmt: skip
    """A refusal is the API's JSON error, or for a console page an HTML error page that
    shows nothing of the object."""
    if answer.headers.get("content-type", "").startswith("application/json"):
        assert answer.json()["error"] == error, where
        return
    assert route in CONSOLE, where
    assert answer.headers["content-type"].startswith("text/html"), where
    _no_foreign(world, route, answer.text)
    assert "standing-" not in answer.text, where


# -- no credential, a wrong one, a revoked one ---------------------------------------------


@pytest.fixture(scope="module")
def revoked(world: World) -> str:
    made = world.as_root("POST", "/api/v1/tokens", json={"unit": "north", "role": "admin"})
    token = made.json()["token"]
    assert world.whoami(token).status_code == 200
    world.as_root("DELETE", f"/api/v1/tokens/{made.json()['id']}")
    return str(token)


GUARDED = [route for route, right in ROUTE_RIGHTS.items() if right != "public"]


@pytest.mark.parametrize("route", GUARDED, ids=[f"{m} {p}" for m, p in GUARDED])
@pytest.mark.parametrize("credential", ["none", "wrong", "revoked", "basic"])
def test_no_valid_credential_is_401(
    world: World, revoked: str, route: tuple[str, str], credential: str
) -> None:
    headers = {
        "none": {},
        "wrong": {"Authorization": "Bearer vdt_" + "A" * 43},
        "revoked": {"Authorization": f"Bearer {revoked}"},
        "basic": {"Authorization": f"Basic {world.tokens['admin']}"},
    }[credential]
    path = re.sub(r"\{[a-z_]+\}", str(world.alerts["north"]), route[1])
    answer = world.http(None).request(route[0], path, json={}, headers=headers)
    assert answer.status_code == 401, (route, credential, answer.text)
    assert answer.json()["error"] == "unauthenticated"
    assert answer.headers["www-authenticate"] == "Bearer"


def test_a_session_is_scoped_like_a_token(world: World) -> None:
    http = world.http(None)
    login = http.post("/api/v1/auth/login", json={"name": "north-viewer", "password": PASSWORD})
    assert login.status_code == 200, login.text
    session = {"Authorization": f"Bearer {login.json()['token']}"}
    assert http.get(f"/api/v1/alerts/{world.alerts['south']}", headers=session).status_code == 404
    assert http.get(f"/api/v1/alerts/{world.alerts['north-1']}", headers=session).status_code == 200
    patched = http.patch(
        f"/api/v1/alerts/{world.alerts['north']}", json={"status": "closed"}, headers=session
    )
    assert patched.status_code == 403
    assert http.post("/api/v1/auth/logout", headers=session).status_code == 204
    assert world.whoami(login.json()["token"]).status_code == 401


# -- the hunt endpoint never returns another unit's rows -----------------------------------


def _hunt(world: World, role: str, **query: Any) -> httpx.Response:
    return world.http(world.tokens[role]).post("/api/v1/hunt", json=query)


def _south_file(world: World) -> Path:
    files = sorted((world.centre.home / "events" / "unit=south").rglob("*.parquet"))
    assert files, "south has no Parquet file: the test would prove nothing"
    return files[0]


@pytest.mark.parametrize("role", ["admin", "viewer"])
def test_hunt_reads_only_the_callers_units(world: World, role: str) -> None:
    answer = _hunt(world, role, sql="SELECT DISTINCT unit FROM events ORDER BY unit")
    assert answer.status_code == 200, answer.text
    assert {row[0] for row in answer.json()["rows"]} == MINE


@pytest.mark.parametrize(
    "sql",
    [
        "SELECT * FROM events WHERE unit = 'south'",
        "SELECT * FROM events WHERE unit <> 'north' AND unit <> 'north-1'",
        "SELECT count(*) FILTER (WHERE unit = 'south') AS n FROM events HAVING n > 0",
    ],
)
def test_hunt_where_unit_of_another_unit_finds_nothing(world: World, sql: str) -> None:
    answer = _hunt(world, "analyst", sql=sql)
    assert answer.status_code == 200, answer.text
    assert answer.json()["rows"] == []


@pytest.mark.parametrize(
    "template",
    [
        "SELECT * FROM read_parquet('{file}')",
        "SELECT * FROM read_parquet('{dir}/**/*.parquet', hive_partitioning = true)",
        "SELECT * FROM '{file}'",
        "SELECT * FROM events UNION ALL SELECT * FROM read_parquet('{file}')",
        "SELECT * FROM glob('{dir}/**')",
        "SELECT * FROM parquet_metadata('{file}')",
        "SELECT * FROM read_text('{file}')",
        "SELECT * FROM read_blob('{file}')",
    ],
)
@pytest.mark.parametrize("units", [None, ["south"], ["north", "south"]])
def test_hunt_cannot_read_another_units_files(
    world: World, template: str, units: list[str] | None
) -> None:
    file = _south_file(world)
    sql = template.format(file=file, dir=file.parents[1])
    answer = _hunt(world, "admin", sql=sql, units=units)
    if answer.status_code == 200:
        rows = answer.json()["rows"]
        assert all(row[:1] != ["south"] for row in rows), rows
        assert "south" not in answer.text and str(file.name) not in answer.text, answer.text
    else:
        assert answer.status_code == 400, answer.text
        assert answer.json()["error"] == "query_refused"


@pytest.mark.parametrize("units", [["south"], ["centre"], ["south", "centre"], ["../south"]])
def test_hunt_units_naming_other_units_read_nothing(world: World, units: list[str]) -> None:
    answer = _hunt(world, "viewer", sql="SELECT unit FROM events", units=units)
    assert answer.status_code == 200, answer.text
    assert answer.json()["rows"] == []


def test_hunt_units_mixing_own_and_other_reads_only_own(world: World) -> None:
    answer = _hunt(
        world, "viewer", sql="SELECT DISTINCT unit FROM events", units=["south", "north-1"]
    )
    assert answer.status_code == 200, answer.text
    assert answer.json()["rows"] == [["north-1"]]
