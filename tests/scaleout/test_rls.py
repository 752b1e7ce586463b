"""Row-level security on PostgreSQL (migration 0008): the repository's unit scoping doubled.

The database is owned by a plain (non-superuser) role that runs the migrations, as in a
deployment; the api's scoped sessions log in as a member of ``vedette_app``.
"""

from __future__ import annotations

import contextvars
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

import psycopg
import pytest
from scalekit import Cluster
from sqlalchemy import func, select
from sqlalchemy.engine import make_url
from sqlalchemy.exc import ProgrammingError

from vedette.store.state.db import open_state, set_request_units
from vedette.store.state.models import Alert, AlertComment, RuleException, Token, Unit


@dataclass
class Roles:
    owner_url: str
    app_url: str
    owner: str
    app: str


def _conninfo(url: str) -> str:
    return make_url(url).set(drivername="postgresql").render_as_string(hide_password=False)


@pytest.fixture
def roles(database: str) -> Iterator[Roles]:
    """An owner role owning the test database, and an app login role in ``vedette_app``."""
    suffix = uuid.uuid4().hex[:10]
    owner, app = f"vt_owner_{suffix}", f"vt_api_{suffix}"
    url = make_url(database)
    with psycopg.connect(_conninfo(database), autocommit=True) as conn:
        conn.execute(
            "DO $$ BEGIN IF NOT EXISTS (SELECT 1 FROM pg_roles WHERE rolname = 'vedette_app')"
            " THEN CREATE ROLE vedette_app NOLOGIN; END IF; END $$"
        )
        conn.execute(f"CREATE ROLE {owner} LOGIN")
        conn.execute(f"CREATE ROLE {app} LOGIN IN ROLE vedette_app")
        conn.execute(f'ALTER DATABASE "{url.database}" OWNER TO {owner}')
    yield Roles(
        url.set(username=owner).render_as_string(hide_password=False),
        url.set(username=app).render_as_string(hide_password=False),
        owner,
        app,
    )
    with psycopg.connect(_conninfo(database), autocommit=True) as conn:
        conn.execute(f'ALTER DATABASE "{url.database}" OWNER TO {url.username}')
        for role in (owner, app):
            conn.execute(f"REASSIGN OWNED BY {role} TO {url.username}")
            conn.execute(f"DROP OWNED BY {role}")
            conn.execute(f"DROP ROLE {role}")


def _seed(owner_url: str, app_url: str) -> tuple[int, int, int]:
    """Units a and b, one alert with a comment, a token and an exception in each."""
    state = open_state(owner_url, scoped_url=app_url)
    now = datetime.now(UTC)
    try:
        with state.session() as session:
            ids, alert_ids = [], []
            for name in ("a", "b"):
                unit = Unit(name=name)
                session.add(unit)
                session.flush()
                alert = Alert(
                    unit_id=unit.id,
                    fingerprint=name * 8,
                    kind="sigma",
                    rule_id="r",
                    rule_title="t",
                    level="high",
                    first_seen=now,
                    last_seen=now,
                )
                session.add(alert)
                session.flush()
                session.add(AlertComment(alert_id=alert.id, author="x", text="c"))
                session.add(
                    Token(
                        unit_id=unit.id,
                        role="analyst",
                        name=name,
                        secret_hash=name * 64,
                        prefix=name,
                    )
                )
                session.add(RuleException(unit_id=unit.id, author="x", reason="r"))
                ids.append(unit.id)
                alert_ids.append(alert.id)
        return ids[0], ids[1], alert_ids[1]
    finally:
        state.close()


TABLES = ("alerts", "alert_comments", "tokens", "rule_exceptions")


def test_without_a_scope_no_row_is_visible_even_asking_for_the_bypass(roles: Roles) -> None:
    _seed(roles.owner_url, roles.app_url)
    with psycopg.connect(_conninfo(roles.app_url)) as conn:
        for table in TABLES:
            assert conn.execute(f"SELECT count(*) FROM {table}").fetchone() == (0,), table
        # Any role may set a custom setting: the policy honours it for the owner only.
        conn.execute("SET vedette.bypass = 'on'")
        for table in TABLES:
            assert conn.execute(f"SELECT count(*) FROM {table}").fetchone() == (0,), table
        # Nor can it become the owner.
        with pytest.raises(psycopg.errors.InsufficientPrivilege):
            conn.execute(f"SET ROLE {roles.owner}")
    # FORCE: the owner itself sees nothing without asking for the bypass ...
    with psycopg.connect(_conninfo(roles.owner_url)) as conn:
        for table in TABLES:
            assert conn.execute(f"SELECT count(*) FROM {table}").fetchone() == (0,), table
        # ... and everything with it (the worker, migrations, the admin CLI).
        conn.execute("SET vedette.bypass = 'on'")
        for table in TABLES:
            assert conn.execute(f"SELECT count(*) FROM {table}").fetchone() == (2,), table


def test_a_scoped_session_sees_its_units_and_cannot_write_another_units_row(
    roles: Roles,
) -> None:
    a, b, alert_of_b = _seed(roles.owner_url, roles.app_url)
    state = open_state(roles.owner_url, scoped_url=roles.app_url)

    def scoped() -> None:
        set_request_units(frozenset({a}))
        with state.session() as session:
            # Raw SQL without a WHERE: the database applies the scope.
            assert session.scalars(select(Alert.unit_id)).all() == [a]
            assert session.scalar(select(func.count()).select_from(AlertComment)) == 1
            assert session.scalars(select(Token.unit_id)).all() == [a]
        now = datetime.now(UTC)
        with (
            pytest.raises(ProgrammingError, match="row-level security"),
            state.session() as session,
        ):
            session.add(
                Alert(
                    unit_id=b,
                    fingerprint="x" * 8,
                    kind="sigma",
                    rule_id="r",
                    rule_title="t",
                    level="high",
                    first_seen=now,
                    last_seen=now,
                )
            )
        with (
            pytest.raises(ProgrammingError, match="row-level security"),
            state.session() as session,
        ):
            own = session.scalars(select(Alert)).one()
            own.unit_id = b  # moving a row out of the scope is a cross-unit write too
        with (
            pytest.raises(ProgrammingError, match="row-level security"),
            state.session() as session,
        ):
            session.add(RuleException(unit_id=b, author="x", reason="r"))
        # A comment on an alert of another unit: that alert does not exist for this scope.
        with (
            pytest.raises(ProgrammingError, match="row-level security"),
            state.session() as session,
        ):
            session.add(AlertComment(alert_id=alert_of_b, author="x", text="c"))

    try:
        contextvars.copy_context().run(scoped)
        # Outside the request's context the same StateDB is a system one again.
        with state.session() as session:
            assert sorted(session.scalars(select(Alert.unit_id)).all()) == [a, b]
    finally:
        state.close()


def test_the_scoped_api_path_works_under_rls(
    roles: Roles, work_dir: Path, nats_server: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    from test_smoke import SAMPLES

    monkeypatch.setenv("VEDETTE_APP_DATABASE_URL", roles.app_url)
    cluster = Cluster(work_dir, nats_server, roles.owner_url, rules=(), partitions=2)
    cluster.add_units([("hq", None), ("branch-a", "hq"), ("branch-b", "hq")])
    ingest = cluster.token("branch-a", "ingest")
    analyst_a = cluster.token("branch-a", "analyst")
    analyst_b = cluster.token("branch-b", "analyst")
    body = (SAMPLES / "sysmon.jsonl").read_bytes()
    events = len([line for line in body.splitlines() if line.strip()])
    cluster.start(workers=1)
    api = cluster.api
    try:
        with api.client(ingest) as http:
            answer = http.post(
                "/api/v1/events", content=body, headers={"Content-Type": "application/x-ndjson"}
            )
        assert answer.status_code == 202, answer.text
        api.wait_stored(analyst_a, "branch-a", events)
        with api.client(analyst_a) as http:
            alerts = http.get("/api/v1/alerts", params={"limit": 1000}).json()["items"]
            assert alerts and {a["unit"] for a in alerts} == {"branch-a"}
            first = alerts[0]["id"]
            patched = http.patch(f"/api/v1/alerts/{first}", json={"status": "acknowledged"})
            assert patched.status_code == 200, patched.text
            comment = http.post(f"/api/v1/alerts/{first}/comments", json={"text": "seen"})
            assert comment.status_code in (200, 201), comment.text
        with api.client(analyst_b) as http:
            assert http.get("/api/v1/alerts").json()["items"] == []
            assert http.get(f"/api/v1/alerts/{first}").status_code == 404
        # The api's scoped sessions log in as the app role (its pool keeps them open).
        with psycopg.connect(_conninfo(roles.owner_url)) as conn:
            query = "SELECT count(*) FROM pg_stat_activity WHERE usename = %s"
            row = conn.execute(query, (roles.app,)).fetchone()
            assert row is not None and row[0] >= 1
    finally:
        cluster.kill_all()
