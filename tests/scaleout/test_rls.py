"""Row-level security on PostgreSQL (migrations 0008 and 0015): the repository's unit scoping
doubled.

The database is owned by a plain (non-superuser) role that runs the migrations, as in a
deployment; the api's scoped sessions log in as a member of ``vedette_app``.
"""

from __future__ import annotations

import contextvars
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

import psycopg
import pytest
from scalekit import Cluster
from sqlalchemy import func, select
from sqlalchemy.engine import make_url
from sqlalchemy.exc import ProgrammingError

from vedette.store.state.bulletins import Bulletin, BulletinTarget
from vedette.store.state.db import open_state, set_request_units
from vedette.store.state.deadletters import DeadLetter
from vedette.store.state.incidents import Incident, IncidentAlert, IncidentComment, IncidentTask
from vedette.store.state.models import Alert, AlertComment, RuleException, Token, Unit
from vedette.store.state.retrohunts import RetroHunt


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


# -- migration 0015: bulletins, retro-hunts, incident rows, dead letters -------------------------

MORE_TABLES = (
    "bulletins",
    "bulletin_targets",
    "retrohunts",
    "incident_alerts",
    "incident_tasks",
    "incident_comments",
    "dead_letters",
)


@dataclass
class Seeded:
    hq: int
    a: int
    b: int
    incident_of_b: int


def _seed_more(owner_url: str, app_url: str) -> Seeded:
    """hq above a and b; in each of a and b: an incident with an alert, a task and a comment,
    a retro-hunt, a bulletin to itself, a dead letter; and a bulletin of hq to b only."""
    state = open_state(owner_url, scoped_url=app_url)
    now = datetime.now(UTC)
    try:
        with state.session() as session:
            hq = Unit(name="hq")
            session.add(hq)
            session.flush()
            ids: dict[str, int] = {}
            incidents: dict[str, int] = {}
            for name in ("a", "b"):
                unit = Unit(name=name, parent_id=hq.id)
                session.add(unit)
                session.flush()
                ids[name] = unit.id
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
                incident = Incident(owner_unit_id=unit.id, origin_unit_id=unit.id, title=name,
                                    severity="high", status="open", created_by="x")  # fmt: skip
                session.add_all([alert, incident])
                session.flush()
                incidents[name] = incident.id
                session.add(IncidentAlert(incident_id=incident.id, alert_id=alert.id, added_by="x"))
                session.add(IncidentTask(incident_id=incident.id, unit_id=unit.id, title="t",
                                         status="open", created_by="x"))  # fmt: skip
                session.add(
                    IncidentComment(incident_id=incident.id, unit_id=unit.id, author="x", text="c")
                )
                session.add(RetroHunt(owner_unit_id=unit.id, kind="sigma", title=name,
                                      created_by="x"))  # fmt: skip
                bulletin = Bulletin(unit_id=unit.id, title=name, text="", created_by="x")
                session.add(bulletin)
                session.flush()
                session.add(BulletinTarget(bulletin_id=bulletin.id, unit_id=unit.id))
                session.add(DeadLetter(source="detect", seq=unit.id, unit=name, kind="json",
                                       records=1, attempts=3, reason="r", payload=b""))  # fmt: skip
            to_b = Bulletin(unit_id=hq.id, title="to b", text="", created_by="x")
            session.add(to_b)
            session.flush()
            session.add(BulletinTarget(bulletin_id=to_b.id, unit_id=ids["b"]))
        return Seeded(hq.id, ids["a"], ids["b"], incidents["b"])
    finally:
        state.close()


def _counts(conn: psycopg.Connection[tuple[int]]) -> dict[str, int]:
    counts = {}
    for table in MORE_TABLES:
        row = conn.execute(f"SELECT count(*) FROM {table}").fetchone()
        assert row is not None
        counts[table] = row[0]
    return counts


def test_more_tables_show_no_row_without_a_scope(roles: Roles) -> None:
    _seed_more(roles.owner_url, roles.app_url)
    nothing = dict.fromkeys(MORE_TABLES, 0)
    with psycopg.connect(_conninfo(roles.app_url)) as conn:
        assert _counts(conn) == nothing
        conn.execute("SET vedette.bypass = 'on'")  # honoured for the owner only
        assert _counts(conn) == nothing
    with psycopg.connect(_conninfo(roles.owner_url)) as conn:
        assert _counts(conn) == nothing  # FORCE: the owner too, without the bypass
        conn.execute("SET vedette.bypass = 'on'")
        assert _counts(conn) == {**dict.fromkeys(MORE_TABLES, 2), "bulletins": 3,
                                 "bulletin_targets": 3}  # fmt: skip


def test_more_tables_scope_reads_and_refuse_cross_unit_writes(roles: Roles) -> None:
    seeded = _seed_more(roles.owner_url, roles.app_url)
    state = open_state(roles.owner_url, scoped_url=roles.app_url)

    def as_unit(unit: int) -> None:
        set_request_units(frozenset({unit}))
        with state.session() as session:
            assert session.scalars(select(RetroHunt.owner_unit_id)).all() == [unit]
            targets = session.scalars(select(BulletinTarget.unit_id)).all()
            assert targets == [unit] * (1 if unit == seeded.a else 2)  # b: its own and hq's
            for model in (IncidentAlert, IncidentTask, IncidentComment):
                assert session.scalar(select(func.count()).select_from(model)) == 1, model
            assert session.scalars(select(DeadLetter.unit)).all() == ["a" if unit == seeded.a
                                                                      else "b"]  # fmt: skip
            titles = sorted(session.scalars(select(Bulletin.title)))
        # A bulletin addressed to the unit is visible to it; another unit's is not.
        assert titles == (["a"] if unit == seeded.a else ["b", "to b"])

    def refused(unit: int, make: Callable[[], object]) -> None:
        set_request_units(frozenset({unit}))
        with (
            pytest.raises(ProgrammingError, match="row-level security"),
            state.session() as session,
        ):
            session.add(make())

    def cross_unit_writes() -> None:
        a, b, theirs = seeded.a, seeded.b, seeded.incident_of_b
        refused(a, lambda: RetroHunt(owner_unit_id=b, kind="sigma", title="x", created_by="x"))
        refused(a, lambda: Bulletin(unit_id=b, title="x", text="", created_by="x"))
        refused(a, lambda: BulletinTarget(bulletin_id=1, unit_id=b))
        refused(a, lambda: IncidentTask(incident_id=theirs, unit_id=a, title="t", status="open",
                                        created_by="x"))  # fmt: skip
        refused(a, lambda: IncidentComment(incident_id=theirs, unit_id=a, author="x", text="c"))
        # Dead letters are the workers' (system) writes only, even for the scope's own unit.
        refused(a, lambda: DeadLetter(source="detect", seq=99, unit="a", kind="json", records=1,
                                      attempts=3, reason="r", payload=b""))  # fmt: skip

    try:
        contextvars.copy_context().run(as_unit, seeded.a)
        contextvars.copy_context().run(as_unit, seeded.b)
        contextvars.copy_context().run(cross_unit_writes)
    finally:
        state.close()


def test_bulletins_incidents_and_retro_hunts_through_the_scoped_api_under_rls(
    roles: Roles, work_dir: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The routes on these tables still work when the api's requests run as the app role."""
    from serverkit import Centre, admin, free_port

    monkeypatch.setenv("VEDETTE_APP_DATABASE_URL", roles.app_url)
    home = work_dir / "centre"
    for name, parent in (("hq", None), ("branch-a", "hq"), ("branch-b", "hq")):
        admin(home, "unit", "add", name, *(["--parent", parent] if parent else []),
              database=roles.owner_url)  # fmt: skip

    def token(unit: str, role: str) -> str:
        out = admin(home, "token", "add", "--unit", unit, "--role", role,
                    database=roles.owner_url)  # fmt: skip
        return out.strip().splitlines()[-1]

    hq, a, b = token("hq", "admin"), token("branch-a", "analyst"), token("branch-b", "analyst")
    centre = Centre(home=home, port=free_port(), args=["--database", roles.owner_url])
    centre.start()
    try:
        with centre.client(hq) as http:
            sent = http.post(
                "/api/v1/bulletins", json={"title": "patch now", "units": ["branch-a"]}
            )
            assert sent.status_code == 201, sent.text
        with centre.client(a) as http:
            seen = http.get("/api/v1/bulletins").json()["items"]
            assert [x["title"] for x in seen] == ["patch now"]
            acked = http.post(f"/api/v1/bulletins/{seen[0]['id']}/ack", json={})
            assert acked.status_code == 200, acked.text
            made = http.post("/api/v1/incidents", json={"title": "lateral movement"})
            assert made.status_code == 201, made.text
            incident = made.json()["id"]
            task = http.post(f"/api/v1/incidents/{incident}/tasks", json={"title": "isolate"})
            assert task.status_code == 201, task.text
            comment = http.post(f"/api/v1/incidents/{incident}/comments", json={"text": "on it"})
            assert comment.status_code == 201, comment.text
            shared = http.post(f"/api/v1/incidents/{incident}/share", json={"unit": "branch-b"})
            assert shared.status_code == 200, shared.text
            handed = http.post(
                f"/api/v1/incidents/{incident}/tasks", json={"title": "check", "unit": "branch-b"}
            )
            assert handed.status_code == 201, handed.text
            for_b = handed.json()["id"]
            job = http.post("/api/v1/retrohunts", json={
                "rule": "title: t\nlogsource: {product: windows}\n"
                        "detection: {sel: {EventID: 1}, condition: sel}\n",
            })  # fmt: skip
            assert job.status_code == 201, job.text
            assert [j["id"] for j in http.get("/api/v1/retrohunts").json()["items"]] == [
                job.json()["id"]
            ]
        with centre.client(b) as http:
            # The participant sees the shared incident and may comment; not a's bulletin or job.
            assert http.get("/api/v1/bulletins").json()["items"] == []
            assert http.get("/api/v1/retrohunts").json()["items"] == []
            assert http.get(f"/api/v1/retrohunts/{job.json()['id']}").status_code == 404
            theirs = http.get(f"/api/v1/incidents/{incident}")
            assert theirs.status_code == 200, theirs.text
            reply = http.post(f"/api/v1/incidents/{incident}/comments", json={"text": "seen"})
            assert reply.status_code == 201, reply.text
            done = http.patch(
                f"/api/v1/incidents/{incident}/tasks/{for_b}", json={"status": "done"}
            )
            assert done.status_code == 200, done.text
        with centre.client(a) as http:
            # The owner side: merge a second incident in (its task and comment move), escalate.
            other = http.post("/api/v1/incidents", json={"title": "second"}).json()["id"]
            http.post(f"/api/v1/incidents/{other}/tasks", json={"title": "t2"})
            http.post(f"/api/v1/incidents/{other}/comments", json={"text": "c2"})
            merged = http.patch(f"/api/v1/incidents/{incident}", json={"merge": [other]})
            assert merged.status_code == 200, merged.text
            detail = merged.json()
            assert {t["title"] for t in detail["tasks"]} == {"isolate", "check", "t2"}
            assert [c["text"] for c in detail["comments"]] == ["on it", "seen", "c2"]
            up = http.post(f"/api/v1/incidents/{incident}/escalate", json={"reason": "needs hq"})
            assert up.status_code == 200, up.text
            assert http.get(f"/api/v1/incidents/{incident}/export").status_code == 200
        with centre.client(hq) as http:
            listed = http.get("/api/v1/bulletins").json()["items"]
            assert listed and listed[0]["title"] == "patch now"
            assert http.get("/api/v1/deadletters").status_code == 200
    finally:
        centre.kill()
