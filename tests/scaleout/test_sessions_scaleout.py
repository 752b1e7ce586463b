"""Users' sessions across two api processes of one scale-out set (PostgreSQL, row-level
security on): a session opened on one api works on the other, survives the first's SIGKILL,
and a logout or a disabled user on one counts on the other within the lookup cache's seconds.
Housekeeping (the scheduler) deletes expired sessions."""

from __future__ import annotations

import re
import time
from collections.abc import Callable
from pathlib import Path

import httpx
import psycopg
from scalekit import Cluster
from serverkit import Centre
from test_faults import clusters  # noqa: F401

from vedette.server.auth import SESSION_CACHE_SECONDS

PASSWORD = "correct horse battery staple"  # serverkit.admin's $VEDETTE_PASSWORD
SETTLE = SESSION_CACHE_SECONDS + 4.0


def _login(api: Centre, name: str) -> str:
    answer = httpx.post(
        api.url + "/api/v1/auth/login", json={"name": name, "password": PASSWORD}, timeout=30
    )
    assert answer.status_code == 200, answer.text
    return str(answer.json()["token"])


def _status(api: Centre, token: str) -> int:
    return httpx.get(
        api.url + "/api/v1/auth/whoami", headers={"Authorization": f"Bearer {token}"}, timeout=30
    ).status_code


def _within(seconds: float, check: Callable[[], bool]) -> None:
    start = time.monotonic()
    while time.monotonic() - start < seconds:
        if check():
            return
        time.sleep(0.25)
    raise AssertionError(f"not within {seconds} s")


def test_a_session_opened_on_one_api_works_on_the_other(
    work_dir: Path,
    nats_server: str,
    database: str,
    clusters: list[Cluster],  # noqa: F811
) -> None:
    # Housekeeping every 2 s, so that the scheduler's deletion of expired sessions is seen.
    cluster = Cluster(
        work_dir, nats_server, database, partitions=2, extra_args=("--silent-check", "2")
    )
    clusters.append(cluster)
    second = cluster.add_api()
    cluster.add_units([("hq", None), ("branch-a", "hq")])
    for name, unit in (("ana", "branch-a"), ("bob", "branch-a")):
        cluster.admin("user", "add", name, "--unit", unit, "--role", "analyst")
    cluster.start(workers=0, schedulers=1, notifiers=0)
    first = cluster.api
    # The console's form on the first api, the cookie sent to the second.
    with httpx.Client(base_url=first.url, headers={"Accept": "text/html"}, timeout=30) as http:
        form = http.get("/")
        csrf = re.search(r'name="csrf" value="([^"]+)"', form.text)
        assert csrf
        answer = http.post(
            "/login", data={"csrf": csrf.group(1), "name": "ana", "password": PASSWORD}
        )
        assert answer.status_code == 303, answer.text
        cookie = http.cookies["vedette_session"]
    token, other, bobs = _login(first, "ana"), _login(first, "ana"), _login(first, "bob")
    for credential in (cookie, token, other, bobs):
        assert _status(second, credential) == 200
    page = httpx.get(second.url + "/alerts", cookies={"vedette_session": cookie}, timeout=30)
    assert page.status_code == 200
    # The first api dies: its sessions live on (in PostgreSQL), on both once it is back.
    first.kill()
    assert _status(second, token) == 200
    first.start()
    assert _status(first, token) == 200
    # Logout on the second: refused there at once, on the first within the cache's seconds.
    assert _status(first, other) == 200  # cached on the first now
    answer = httpx.post(
        second.url + "/api/v1/auth/logout",
        headers={"Authorization": f"Bearer {other}"},
        timeout=30,
    )
    assert answer.status_code == 204
    assert _status(second, other) == 401
    _within(SETTLE, lambda: _status(first, other) == 401)
    # A user disabled (the admin command, on the shared database) is out on both apis.
    assert "1 sessions ended" in cluster.admin("user", "set", "bob", "--disable")
    _within(SETTLE, lambda: _status(first, bobs) == 401 and _status(second, bobs) == 401)
    assert _status(second, token) == 200 and _status(first, cookie) == 200
    # Only hashes are stored, under row-level security like every unit table.
    with psycopg.connect(database) as conn:
        conn.execute("SET vedette.bypass = 'on'")  # the owner sees rows only so (FORCE)
        rows = conn.execute("SELECT secret_hash, unit_id FROM user_sessions").fetchall()
        forced = conn.execute(
            "SELECT relforcerowsecurity FROM pg_class WHERE relname = 'user_sessions'"
        ).fetchone()
    assert rows and all(token not in h and cookie not in h for h, _ in rows)
    assert forced == (True,)
    # Housekeeping: the scheduler deletes a session past its expiry (moved back here).
    with psycopg.connect(database) as conn:
        conn.execute("SET vedette.bypass = 'on'")
        conn.execute("UPDATE user_sessions SET expires_at = now() - interval '1 minute'")
        conn.commit()
    _within(SETTLE, lambda: _status(first, token) == 401 and _status(second, cookie) == 401)

    def left() -> int:
        with psycopg.connect(database) as conn:
            conn.execute("SET vedette.bypass = 'on'")
            row = conn.execute("SELECT count(*) FROM user_sessions").fetchone()
        assert row is not None
        return int(row[0])

    _within(15.0, lambda: left() == 0)
