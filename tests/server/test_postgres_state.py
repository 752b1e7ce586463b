"""The smoke scenario with the state in a real PostgreSQL: ``vedette admin`` and ``vedette
serve`` both given ``--database URL``.

The server is started by ``tests/pgserver.py`` (or named by ``VEDETTE_TEST_POSTGRES_URL``);
each run gets a database of its own. Without PostgreSQL the test skips, except under ``CI``,
where it fails.
"""

from __future__ import annotations

import os
import shutil
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import psycopg
import pytest
from serverkit import Centre, add_token, admin, free_port

from pgserver import plain_database, postgres_url
from vedette.store.state.db import APP_DATABASE_ENV

pytestmark = pytest.mark.embedded_only(
    "the embedded centre with its state on PostgreSQL; the scale-out set always has it there"
)

SAMPLES = Path(__file__).resolve().parents[2] / "samples" / "windows" / "WS-FIN-07"


@pytest.fixture(scope="module")
def database() -> Iterator[str]:
    """A new, empty database on a PostgreSQL server; dropped afterwards."""
    # Not tmp_path: sessions side by side prune each other's pytest folders (pgserver.py).
    private = Path(tempfile.mkdtemp(prefix="vedette-serve-pg-"))
    try:
        try:
            server_url, stop = postgres_url(private / "postgres")
        except Exception as exc:
            if os.environ.get("CI"):
                raise
            pytest.skip(f"no PostgreSQL server: {exc}")
        # Owned by a plain role, as in a deployment: row-level security applies to the
        # server's scoped sessions (a superuser would bypass it), made as the app role.
        roles = plain_database(server_url)
        try:
            with pytest.MonkeyPatch.context() as patch:
                patch.setenv(APP_DATABASE_ENV, roles.app_url)
                yield roles.owner_url
        finally:
            roles.drop()
            stop()
    finally:
        shutil.rmtree(private, ignore_errors=True)


def _rows(url: str, sql: str) -> list[tuple[object, ...]]:
    with psycopg.connect(url) as conn:
        return list(conn.execute(sql).fetchall())


def _wait_alert(centre: Centre, token: str, title: str, timeout: float = 60) -> dict[str, Any]:
    """The first alert whose rule title starts with ``title``, once the worker raised it."""
    deadline = time.monotonic() + timeout
    with centre.client(token) as http:
        while time.monotonic() < deadline:
            items = http.get("/api/v1/alerts", params={"limit": 1000}).json()["items"]
            found = [a for a in items if a["rule_title"].startswith(title)]
            if found:
                return dict(found[0])
            time.sleep(0.2)
    raise AssertionError(f"no {title} alert in {timeout} s: {centre.log()}")


def test_smoke_with_the_state_in_postgresql(tmp_path: Path, database: str) -> None:
    home = tmp_path / "home"
    admin(home, "unit", "add", "hq", database=database)
    admin(home, "unit", "add", "branch-a", "--parent", "hq", database=database)
    admin(home, "user", "add", "ana", "--unit", "hq", "--role", "analyst", database=database)
    ingest = add_token(home, "branch-a", "ingest", database=database)
    analyst = add_token(home, "hq", "analyst", database=database)
    doomed = add_token(home, "branch-a", "ingest", database=database)
    # The admin command wrote to PostgreSQL, not to a SQLite file in the home folder.
    assert sorted(r[0] for r in _rows(database, "SELECT name FROM units")) == ["branch-a", "hq"]
    assert not list(home.glob("**/*.db")), list(home.glob("**/*.db"))

    centre = Centre(home=home, port=free_port(), args=["--database", database])
    body = (SAMPLES / "sysmon.jsonl").read_bytes()
    events = len([line for line in body.splitlines() if line.strip()])
    centre.start()
    try:
        with centre.client(ingest) as http:
            answer = http.post(
                "/api/v1/events", content=body, headers={"Content-Type": "application/x-ndjson"}
            )
        assert answer.status_code == 202, answer.text
        assert answer.json()["accepted"] == events
        centre.wait_stored(analyst, "branch-a", events)
        lsass = _wait_alert(centre, analyst, "LSASS")
        with centre.client(analyst) as http:
            assert lsass["unit"] == "branch-a" and lsass["host"] == "WS-FIN-07.corp.example"
            assert {
                "id": "T1003.001",
                "name": "LSASS Memory",
                "tactics": ["credential-access"],
            } in (lsass["attack"])
            worked = http.patch(
                f"/api/v1/alerts/{lsass['id']}",
                json={"status": "closed", "close_reason": "true_positive"},
            )
            assert worked.status_code == 200, worked.text
        # Alerts, their work and the audit trail are rows of PostgreSQL.
        stored = _rows(
            database, f"SELECT status, close_reason FROM alerts WHERE id = {lsass['id']}"
        )
        assert stored == [("closed", "true_positive")]
        # A user logs in against PostgreSQL.
        login = httpx.post(
            centre.url + "/api/v1/auth/login",
            json={"name": "ana", "password": "correct horse battery staple"},
            timeout=30,
        )
        assert login.status_code == 200 and login.json()["role"] == "analyst", login.text
        # A token revoked with `vedette admin --database` stops working (within the cache).
        with centre.client(doomed) as http:
            assert http.get("/api/v1/auth/whoami").status_code == 200
        token_id = _rows(database, f"SELECT id FROM tokens WHERE prefix = '{doomed[:12]}'")
        admin(home, "token", "revoke", str(token_id[0][0]), database=database)
        deadline = time.monotonic() + 30
        status = 200
        while time.monotonic() < deadline and status != 401:
            with centre.client(doomed) as http:
                status = http.get("/api/v1/auth/whoami").status_code
            time.sleep(0.5)
        assert status == 401
    finally:
        assert centre.stop() == 0
    # Alerts are rows of PostgreSQL; a restart replays nothing into them twice.
    alerts_before = _rows(database, "SELECT count(*), sum(count) FROM alerts")
    assert alerts_before[0][0] >= 1
    centre.start()
    try:
        unit = centre.wait_stored(analyst, "branch-a", events, timeout=10)
        assert unit["events_received"] == events and unit["events_stored"] == events
        with centre.client(analyst) as http:
            again = http.get(f"/api/v1/alerts/{lsass['id']}").json()
            listed = http.get("/api/v1/alerts", params={"limit": 1000}).json()["items"]
        assert again["status"] == "closed" and again["close_reason"] == "true_positive"
        assert _rows(database, "SELECT count(*), sum(count) FROM alerts") == alerts_before
        assert len(listed) == alerts_before[0][0]
    finally:
        assert centre.stop() == 0
    assert not list(home.glob("**/state*.db")), "the state went to SQLite after all"
