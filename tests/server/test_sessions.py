"""Users' sessions through the real server: they survive SIGTERM and SIGKILL restarts, die at
logout (also after a restart), follow the user's role and disabled state within the lookup
cache's seconds, end on a password change, and expire when idle.

Contract tests: under ``VEDETTE_TEST_CENTRE=scaleout`` the same runs against the scale-out set
(PostgreSQL state, restart of every process)."""

from __future__ import annotations

import os
import re
import subprocess
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import httpx
import pytest
import scaleoutkit
from serverkit import VEDETTE, Centre, admin, make_centre

from vedette.server.auth import SESSION_CACHE_SECONDS

pytestmark = pytest.mark.contract

PASSWORD = "correct horse battery staple"  # serverkit.admin's $VEDETTE_PASSWORD
HTML = {"Accept": "text/html"}
SETTLE = SESSION_CACHE_SECONDS + 4.0
"""A change made elsewhere counts within the cache's seconds (plus slack for a busy host)."""


@pytest.fixture
def centres() -> Iterator[list[Centre]]:
    started: list[Centre] = []
    yield started
    for centre in started:
        centre.kill()


def _centre(tmp_path: Path, started: list[Centre], *args: str) -> Centre:
    centre = make_centre(tmp_path / "home", args=args)
    started.append(centre)
    for name, unit, role in (("ana", "branch-a", "analyst"), ("chief", "hq", "admin")):
        admin(centre.home, "user", "add", name, "--unit", unit, "--role", role)
    return centre.start()


def _api_login(centre: Centre, name: str) -> str:
    answer = httpx.post(
        centre.url + "/api/v1/auth/login", json={"name": name, "password": PASSWORD}, timeout=30
    )
    assert answer.status_code == 200, answer.text
    token = answer.json()["token"]
    assert isinstance(token, str) and token.startswith("vds_")
    return token


def _csrf(html: str) -> str:
    found = re.search(r'name="csrf" value="([^"]+)"', html)
    assert found, html[:500]
    return found.group(1)


def _console_login(centre: Centre, name: str) -> httpx.Client:
    """A browser-like client logged in through the console's form (cookie session)."""
    http = httpx.Client(base_url=centre.url, headers=HTML, timeout=30)
    form = http.get("/")
    answer = http.post(
        "/login",
        data={"csrf": _csrf(form.text), "name": name, "password": PASSWORD, "next": "/alerts"},
    )
    assert answer.status_code == 303, answer.text
    assert http.cookies.get("vedette_session", "").startswith("vds_")
    return http


def _status(centre: Centre, token: str, path: str = "/api/v1/auth/whoami") -> int:
    answer = httpx.get(centre.url + path, headers={"Authorization": f"Bearer {token}"}, timeout=30)
    return answer.status_code


def _page(http: httpx.Client) -> int:
    """200 for a logged-in browser; 401 when the console sends it to the login page."""
    answer = http.get("/alerts")
    if answer.is_redirect and answer.headers["location"].startswith("/?next="):
        return 401
    return answer.status_code


def _within(seconds: float, check: Callable[[], bool]) -> float:
    """Seconds until ``check`` holds (fails the test past ``seconds``)."""
    start = time.monotonic()
    while time.monotonic() - start < seconds:
        if check():
            return time.monotonic() - start
        time.sleep(0.25)
    raise AssertionError(f"not within {seconds} s")


def _set_user(centre: Centre, *args: str, stdin: str | None = None) -> str:
    """``vedette admin user set ...`` against the running centre's state store."""
    database = scaleoutkit.database_of(centre.home)
    extra = ["--database", database] if database else []
    done = subprocess.run(
        [*VEDETTE, "admin", "--home", str(centre.home), *extra, "user", "set", *args],
        input=stdin,
        capture_output=True,
        text=True,
        env=dict(os.environ),
        timeout=120,
    )
    assert done.returncode == 0, done.stderr
    return done.stdout


def test_sessions_survive_restarts_and_logout_ends_them_for_good(
    tmp_path: Path, centres: list[Centre]
) -> None:
    centre = _centre(tmp_path, centres)
    token, kept = _api_login(centre, "ana"), _api_login(centre, "ana")
    browser = _console_login(centre, "ana")
    try:
        assert _status(centre, token) == 200 and _page(browser) == 200
        for restart in (centre.stop, centre.kill):
            restart()
            centre.start()
            assert _status(centre, token) == 200, restart
            assert _page(browser) == 200, restart
            whoami = httpx.get(
                centre.url + "/api/v1/auth/whoami",
                headers={"Authorization": f"Bearer {token}"},
                timeout=30,
            ).json()
            assert (whoami["name"], whoami["role"], whoami["unit"]) == (
                "ana",
                "analyst",
                "branch-a",
            )
        # Logout through the API: the token is refused at once, the user's other sessions live.
        answer = httpx.post(
            centre.url + "/api/v1/auth/logout",
            headers={"Authorization": f"Bearer {token}"},
            timeout=30,
        )
        assert answer.status_code == 204
        assert _status(centre, token) == 401
        assert _status(centre, kept) == 200 and _page(browser) == 200
        # Logout through the console's form.
        page = browser.get("/alerts")
        cookie = browser.cookies["vedette_session"]
        answer = browser.post("/logout", data={"csrf": _csrf(page.text)})
        assert answer.status_code == 303
        assert _status(centre, cookie) == 401
        centre.kill()
        centre.start()
        assert _status(centre, token) == 401 and _status(centre, cookie) == 401
        assert _status(centre, kept) == 200
        # An unknown session token is refused like a wrong one, never a 500.
        assert _status(centre, "vds_" + "A" * 43) == 401
    finally:
        browser.close()


def test_role_change_disabling_and_new_password_count_within_seconds(
    tmp_path: Path, centres: list[Centre]
) -> None:
    centre = _centre(tmp_path, centres)
    chief = _api_login(centre, "chief")
    ana, browser = _api_login(centre, "ana"), _console_login(centre, "ana")
    try:
        assert _status(centre, chief, "/api/v1/tokens") == 200
        # Lowered to viewer: admin routes refused, the session itself lives on.
        assert "0 sessions ended" in _set_user(centre, "chief", "--role", "viewer")
        _within(SETTLE, lambda: _status(centre, chief, "/api/v1/tokens") == 403)
        assert _status(centre, chief) == 200
        # Disabled: every session of the user ends, and logging in again is refused.
        assert "2 sessions ended" in _set_user(centre, "ana", "--disable")
        _within(SETTLE, lambda: _status(centre, ana) == 401 and _page(browser) == 401)
        refused = httpx.post(
            centre.url + "/api/v1/auth/login",
            json={"name": "ana", "password": PASSWORD},
            timeout=30,
        )
        assert refused.status_code == 401
        # Enabled again with a new password; a new password ends the sessions opened before.
        _set_user(centre, "ana", "--enable")
        again = _api_login(centre, "ana")
        assert _status(centre, again) == 200
        new = "another horse battery staple"
        assert "1 sessions ended" in _set_user(centre, "ana", "--password-stdin", stdin=new + "\n")
        _within(SETTLE, lambda: _status(centre, again) == 401)
        answer = httpx.post(
            centre.url + "/api/v1/auth/login", json={"name": "ana", "password": new}, timeout=30
        )
        assert answer.status_code == 200
        # The restart does not bring a dead session back.
        centre.kill()
        centre.start()
        assert _status(centre, again) == 401 and _status(centre, ana) == 401
        assert _status(centre, answer.json()["token"]) == 200
    finally:
        browser.close()


def test_an_idle_session_expires_and_a_used_one_lives_to_its_lifetime(
    tmp_path: Path, centres: list[Centre]
) -> None:
    # 12 s idle limit: above the 5 s lookup cache plus the 3 s between writes of the last use.
    centre = _centre(tmp_path, centres, "--session-idle", "12", "--session-lifetime", "32")
    start = time.monotonic()
    used, idle = _api_login(centre, "ana"), _api_login(centre, "ana")
    while time.monotonic() - start < 20:
        assert _status(centre, used) == 200
        time.sleep(1.0)
    assert _status(centre, idle) == 401
    assert _status(centre, used) == 200
    # Used all along, it still ends at its absolute lifetime (plus at most the cache).
    while _status(centre, used) == 200:
        assert time.monotonic() - start < 32 + SETTLE
        time.sleep(1.0)
    assert time.monotonic() - start >= 32


def test_browsing_writes_the_last_use_at_most_once_a_minute(
    tmp_path: Path, centres: list[Centre]
) -> None:
    from sqlalchemy import select

    from vedette.paths import ServerHome
    from vedette.store.state.db import make_engine
    from vedette.store.state.models import UserSession

    centre = _centre(tmp_path, centres)
    token = _api_login(centre, "ana")
    # The owner's engine (the row-level-security bypass on PostgreSQL), as the server's own.
    engine = make_engine(scaleoutkit.database_of(centre.home) or ServerHome(centre.home).state_url)

    def seen() -> tuple[object, object]:
        with engine.connect() as conn:
            row = conn.execute(select(UserSession.created_at, UserSession.last_seen_at)).one()
        return row[0], row[1]

    try:
        created, last = seen()
        assert created == last
        # 40 requests over more than the lookup cache's seconds: lookups, but no write yet.
        start = time.monotonic()
        for _ in range(40):
            assert _status(centre, token) == 200
            time.sleep(0.2)
        assert time.monotonic() - start > SESSION_CACHE_SECONDS
        assert seen() == (created, last)
    finally:
        engine.dispose()
