"""Row-level security on PostgreSQL (migrations 0008 and 0015): the repository's unit scoping
doubled.

The database is owned by a plain (non-superuser) role that runs the migrations, as in a
deployment; the api's scoped sessions log in as a member of ``vedette_app``.
"""

from __future__ import annotations

import contextvars
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import psycopg
import pytest
from scalekit import Cluster
from sqlalchemy import func, select, text
from sqlalchemy.engine import make_url
from sqlalchemy.exc import ProgrammingError
from sqlalchemy.orm import Session

from pgserver import plain_database
from vedette.store.state.audit import verify_chain
from vedette.store.state.bulletins import Bulletin, BulletinTarget
from vedette.store.state.db import open_state, set_request_units
from vedette.store.state.deadletters import DeadLetter
from vedette.store.state.incidents import Incident, IncidentAlert, IncidentComment, IncidentTask
from vedette.store.state.models import Alert, AlertComment, RuleException, Token, Unit
from vedette.store.state.retrohunts import RetroHunt
from vedette.store.state.scope import Principal, Role, Scope
from vedette.store.state.units import add_unit
from vedette.store.state.warnings import approve_warning, list_warnings, record_warning


@dataclass
class Roles:
    owner_url: str
    app_url: str
    owner: str
    app: str


def _conninfo(url: str) -> str:
    return make_url(url).set(drivername="postgresql").render_as_string(hide_password=False)


@pytest.fixture
def roles(postgres_server: str) -> Iterator[Roles]:
    """An owner role owning the test database, and an app login role in ``vedette_app``
    (the owner without a default bypass: its raw SQL sees what the policies give it)."""
    made = plain_database(postgres_server, owner_bypass=False)
    owner, app = make_url(made.owner_url), make_url(made.app_url)
    try:
        yield Roles(made.owner_url, made.app_url, str(owner.username), str(app.username))
    finally:
        made.drop()


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


# -- migration 0020: every table whose rows belong to a unit ------------------------------------

# Tables whose rows belong to a unit without a unit column: through the row they hang on.
THROUGH_A_PARENT = {
    "alert_comments": "alerts",
    "incident_alerts": "incidents",
    "outbox": "notification_channels",
}
NOT_UNIT_ROWS = {
    # The tree itself: a scope is computed from it, and names the units above it (escalation,
    # the parent's name shown with a unit); it holds no unit's data.
    "units",
}


def _unit_tables(conn: psycopg.Connection[tuple[str]]) -> set[str]:
    """Every table with a unit column (``unit``, ``unit_id``, ``*_unit_id``) or a foreign key
    to ``units``, read from the catalogue, so a table added later is checked too."""
    rows = conn.execute(
        """
        SELECT c.relname FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
        WHERE n.nspname = current_schema() AND c.relkind = 'r' AND (
            EXISTS (SELECT 1 FROM pg_attribute a WHERE a.attrelid = c.oid AND a.attnum > 0
                    AND NOT a.attisdropped
                    AND (a.attname IN ('unit', 'unit_id') OR a.attname LIKE '%\\_unit\\_id'))
            OR EXISTS (SELECT 1 FROM pg_constraint k WHERE k.conrelid = c.oid
                       AND k.contype = 'f' AND k.confrelid = 'units'::regclass))
        """
    ).fetchall()
    return {r[0] for r in rows} - NOT_UNIT_ROWS


def test_every_table_whose_rows_belong_to_a_unit_has_forced_row_level_security(
    roles: Roles,
) -> None:
    open_state(roles.owner_url).close()
    with psycopg.connect(_conninfo(roles.owner_url)) as conn:
        tables = _unit_tables(conn) | set(THROUGH_A_PARENT)
        rows = conn.execute(
            """
            SELECT c.relname, c.relrowsecurity, c.relforcerowsecurity,
                   (SELECT count(*) FROM pg_policy p WHERE p.polrelid = c.oid)
            FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
            WHERE n.nspname = current_schema() AND c.relkind = 'r'
            """
        ).fetchall()
    state = {name: (enabled, forced, policies) for name, enabled, forced, policies in rows}
    # The catalogue query finds them (a sanity check of the query, not the list to check).
    assert {"alerts", "audit", "users", "incident_shares", "ingest_ledger"} <= tables
    missing = {t: state[t] for t in tables if state[t] != (True, True, state[t][2])}
    assert missing == {}, f"tables of units without ENABLE + FORCE ROW LEVEL SECURITY: {missing}"
    assert all(state[t][2] >= 1 for t in tables), {t: state[t] for t in tables}
    # Anything not under a policy holds no unit's rows: say so here when adding a table.
    assert set(state) - tables == {
        "alembic_version", "units", "positions", "partition_leases", "partition_members",
        "duty_leases", "role_members",
    }  # fmt: skip


@dataclass
class All:
    hq: int
    a: int
    b: int
    job_of_a: int
    job_of_b: int
    channel_of_hq: int
    channel_of_b: int
    incident_of_b: int


def _seed_all(owner_url: str, app_url: str) -> All:
    """0015's seed, then in each of a and b a row of every other table of units, and hq's
    own rows (a channel, an audit record); a's incident is shared with b (and its alert)."""
    from vedette.store.state.alert_keys import AlertKey
    from vedette.store.state.assets import CriticalAsset
    from vedette.store.state.audit import append_audit
    from vedette.store.state.incidents import IncidentShare
    from vedette.store.state.ingest_ledger import IngestKey
    from vedette.store.state.models import (
        IngestRate,
        NotificationChannel,
        OutboxRow,
        UnitStats,
        User,
        UserSession,
    )
    from vedette.store.state.retrohunt_tasks import RetroHuntTask
    from vedette.store.state.rule_switches import DisabledRule
    from vedette.store.state.warnings import EarlyWarning

    seeded = _seed_more(owner_url, app_url)
    state = open_state(owner_url, scoped_url=app_url)
    now = datetime.now(UTC)
    try:
        with state.session() as session:
            jobs: dict[int, int] = {}
            channels: dict[int, int] = {}
            for unit, name in ((seeded.hq, "hq"), (seeded.a, "a"), (seeded.b, "b")):
                channel = NotificationChannel(unit_id=unit, kind="webhook", name=f"hook-{name}",
                                              config={"url": "http://127.0.0.1:9/"},
                                              secret="s3cret", min_level="low",
                                              kinds=["incident"], enabled=True)  # fmt: skip
                session.add(channel)
                session.flush()
                channels[unit] = channel.id
                session.add(OutboxRow(channel_id=channel.id, kind="incident", object_type="x",
                                      object_id="1", payload={}, next_attempt_at=now))  # fmt: skip
                append_audit(session, actor="x", action="t", object_type="t", object_id=name,
                             unit_id=unit, before=None, after=None)  # fmt: skip
                if unit == seeded.hq:
                    continue
                user = User(unit_id=unit, name=f"user-{name}", role="analyst",
                            password_hash="x")  # fmt: skip
                session.add(user)
                session.flush()
                session.add(UserSession(secret_hash=f"session-{name}", user_id=user.id,
                                        unit_id=unit, idle_until=now, expires_at=now))  # fmt: skip
                session.add(UnitStats(unit_id=unit, events_received=1, events_stored=1))
                session.add(IngestRate(unit_id=unit, bucket=0, events=1))
                session.add(IngestKey(unit=name, key="k", seq=1, count=1, created_at=0.0))
                session.add(CriticalAsset(unit_id=unit, kind="host", value=f"{name}-dc1",
                                          criticality="critical", created_by="x"))  # fmt: skip
                session.add(DisabledRule(unit_id=unit, rule_id="r", author="x"))
                alert = session.scalars(select(Alert).where(Alert.unit_id == unit)).one()
                session.add(AlertKey(alert_id=alert.id, key=name, unit_id=unit))
                session.add(AlertComment(alert_id=alert.id, author="x", text="c"))
                session.add(Token(unit_id=unit, role="analyst", name=name, secret_hash=name * 64,
                                  prefix=name))  # fmt: skip
                session.add(RuleException(unit_id=unit, author="x", reason="r"))
                session.add(EarlyWarning(unit_id=unit, source_alert_id=alert.id, level="high",
                                         title="w"))  # fmt: skip
                job = session.scalars(
                    select(RetroHunt).where(RetroHunt.owner_unit_id == unit)
                ).one()
                jobs[unit] = job.id
                session.add(RetroHuntTask(job_id=job.id, unit_id=unit, unit=name,
                                          day="2026-01-01"))  # fmt: skip
            append_audit(session, actor="x", action="t", object_type="t", object_id="centre",
                         unit_id=None, before=None, after=None)  # fmt: skip
            # a's incident shared with b, with its alert.
            incident_of_a = session.scalars(
                select(Incident.id).where(Incident.owner_unit_id == seeded.a)
            ).one()
            alert_of_a = session.scalars(select(Alert.id).where(Alert.unit_id == seeded.a)).one()
            session.add(IncidentShare(incident_id=incident_of_a, unit_id=seeded.b,
                                      alert_ids=[alert_of_a], added_by="x"))  # fmt: skip
        return All(seeded.hq, seeded.a, seeded.b, jobs[seeded.a], jobs[seeded.b],
                   channels[seeded.hq], channels[seeded.b], seeded.incident_of_b)  # fmt: skip
    finally:
        state.close()


def test_no_table_of_units_shows_a_row_without_a_scope(roles: Roles) -> None:
    """Every table the catalogue names as a unit's holds rows here, and none is visible to the
    app role, asking for the bypass or not, nor to the owner without the bypass."""
    _seed_all(roles.owner_url, roles.app_url)
    with psycopg.connect(_conninfo(roles.owner_url)) as conn:
        tables = sorted(_unit_tables(conn) | set(THROUGH_A_PARENT))

    def counts(conn: psycopg.Connection[tuple[int]]) -> dict[str, int]:
        out = {}
        for table in tables:
            row = conn.execute(f"SELECT count(*) FROM {table}").fetchone()
            assert row is not None
            out[table] = row[0]
        return out

    nothing = dict.fromkeys(tables, 0)
    with psycopg.connect(_conninfo(roles.app_url)) as conn:
        assert counts(conn) == nothing
        conn.execute("SET vedette.bypass = 'on'")
        assert counts(conn) == nothing
        # Nor through the definer functions, which answer for the caller's scope only.
        assert conn.execute("SELECT count(*) FROM vedette_notify_channels(1)").fetchone() == (0,)
    with psycopg.connect(_conninfo(roles.owner_url)) as conn:
        assert counts(conn) == nothing
        conn.execute("SET vedette.bypass = 'on'")
        seen = counts(conn)
    # Seeded, so each of them was really checked (a new table needs a row in _seed_all).
    assert {t: n for t, n in seen.items() if n == 0} == {}


def test_every_table_of_units_scopes_reads_and_refuses_cross_unit_writes(roles: Roles) -> None:
    from vedette.store.state.assets import CriticalAsset
    from vedette.store.state.audit import append_audit
    from vedette.store.state.incidents import IncidentShare
    from vedette.store.state.ingest_ledger import IngestKey
    from vedette.store.state.models import (
        AuditRecord,
        NotificationChannel,
        OutboxRow,
        UnitStats,
        User,
    )
    from vedette.store.state.notifications import enqueue
    from vedette.store.state.retrohunt_tasks import RetroHuntTask

    seeded = _seed_all(roles.owner_url, roles.app_url)
    state = open_state(roles.owner_url, scoped_url=roles.app_url)
    a, b, hq = seeded.a, seeded.b, seeded.hq
    now = datetime.now(UTC)

    def reads(unit: int) -> dict[str, Any]:
        set_request_units(frozenset({unit}))
        with state.session() as session:
            return {
                "users": session.scalars(select(User.unit_id)).all(),
                "stats": session.scalars(select(UnitStats.unit_id)).all(),
                "ledger": session.scalars(select(IngestKey.unit)).all(),
                "tasks": session.scalars(select(RetroHuntTask.unit_id)).all(),
                "assets": sorted(session.scalars(select(CriticalAsset.unit_id))),
                "shares": session.scalars(select(IncidentShare.unit_id)).all(),
                "channels": session.scalars(select(NotificationChannel.unit_id)).all(),
                "outbox": session.scalar(select(func.count()).select_from(OutboxRow)),
                "audit": sorted(session.scalars(select(AuditRecord.object_id))),
            }

    def centre() -> list[str]:
        set_request_units(frozenset({hq, a, b}))
        with state.session() as session:
            return sorted(session.scalars(select(AuditRecord.object_id)))

    def refused(unit: int, make: Callable[[Session], object]) -> None:
        set_request_units(frozenset({unit}))
        with (
            pytest.raises(ProgrammingError, match="row-level security"),
            state.session() as session,
        ):
            made = make(session)
            if made is not None:
                session.add(made)
            session.flush()

    def writes_of_a() -> None:
        refused(a, lambda s: User(unit_id=b, name="intruder", role="admin", password_hash="x"))
        refused(a, lambda s: UnitStats(unit_id=hq, events_received=5))
        refused(a, lambda s: IngestKey(unit="b", key="k2", seq=1, count=1, created_at=0.0))
        refused(a, lambda s: RetroHuntTask(job_id=seeded.job_of_b, unit_id=b, unit="b",
                                           day="2026-01-02"))  # fmt: skip
        # Its own job, another unit's day: refused too.
        refused(a, lambda s: RetroHuntTask(job_id=seeded.job_of_a, unit_id=b, unit="b",
                                           day="2026-01-02"))  # fmt: skip
        refused(a, lambda s: CriticalAsset(unit_id=b, kind="host", value="x",
                                           criticality="high", created_by="x"))  # fmt: skip
        refused(a, lambda s: IncidentShare(incident_id=seeded.incident_of_b, unit_id=a,
                                           added_by="x"))  # fmt: skip
        refused(a, lambda s: NotificationChannel(unit_id=b, kind="webhook", name="x",
                                                 config={}, min_level="low", kinds=[]))  # fmt: skip
        # An outbox row for a sibling's channel (never one a's events notify).
        refused(a, lambda s: OutboxRow(channel_id=seeded.channel_of_b, kind="incident",
                                       object_type="x", object_id="2", payload={},
                                       next_attempt_at=now))  # fmt: skip
        # An audit record about a sibling with which a shares no incident.
        refused(a, lambda s: append_audit(s, actor="x", action="t", object_type="t",
                                          object_id="forged", unit_id=b, before=None,
                                          after=None))  # fmt: skip
        # The audit trail is append only, even for the scope's own records.
        set_request_units(frozenset({a}))
        with state.session() as session:
            changed = session.execute(
                text("UPDATE audit SET actor = 'y' WHERE object_id = 'a'")
            ).rowcount
            assert changed == 0
        # What a legitimately writes about the units above it: notifications of hq's channel
        # (an incident of a notifies hq), an audit record about hq (an escalation).
        with state.session() as session:
            assert enqueue(session, kind="incident", unit_id=a, level="high",
                           object_type="incident", object_id=9, payload={}) == 2  # fmt: skip
            append_audit(session, actor="x", action="escalate", object_type="incident",
                         object_id="up", unit_id=hq, before=None, after=None)  # fmt: skip
        with state.session() as session:
            # Its own channel's new row it reads back; hq's it does not.
            assert session.scalar(select(func.count()).select_from(OutboxRow)) == 2
            assert "up" not in session.scalars(select(AuditRecord.object_id)).all()

    try:
        of_a = contextvars.copy_context().run(reads, a)
        of_b = contextvars.copy_context().run(reads, b)
        assert of_a == {"users": [a], "stats": [a], "ledger": ["a"], "tasks": [a],
                        "assets": [a], "shares": [b], "channels": [a], "outbox": 1,
                        "audit": ["a"]}  # fmt: skip
        # b takes part in a's incident: its share, and a's assets (its shared alert's
        # priority); not a's users, channels or audit.
        assert of_b == {"users": [b], "stats": [b], "ledger": ["b"], "tasks": [b],
                        "assets": [a, b], "shares": [b], "channels": [b], "outbox": 1,
                        "audit": ["b"]}  # fmt: skip
        assert contextvars.copy_context().run(centre) == ["a", "b", "centre", "hq"]
        contextvars.copy_context().run(writes_of_a)
        with state.session() as session:  # system: what a wrote is there, hq's row included
            hq_rows = session.scalar(
                select(func.count())
                .select_from(OutboxRow)
                .where(OutboxRow.channel_id == seeded.channel_of_hq)
            )
            assert hq_rows == 2
            ok, first_bad = verify_chain(session)
            assert (ok, first_bad) == (True, None)
    finally:
        state.close()


def _analyst(unit: int) -> Scope:
    principal = Principal("token", 1, "t", unit, "u", Role.ANALYST)
    return Scope(principal=principal, unit_ids=frozenset({unit}))


def test_a_scoped_admin_adds_a_unit_below_its_own_and_not_below_another(roles: Roles) -> None:
    """The request's scope was read when it began: the unit it makes below its own is its own
    too (the audit record about it is written in the same transaction); below another unit,
    the database refuses it even though add_unit itself checks no scope (the route does)."""
    a, _b, _ = _seed(roles.owner_url, roles.app_url)
    state = open_state(roles.owner_url, scoped_url=roles.app_url)

    def scoped() -> None:
        set_request_units(frozenset({a}))
        with state.session() as session:
            made = add_unit(session, name="a-child", parent="a", actor="token:t")
            assert session.scalars(select(Unit.name).where(Unit.id == made.id)).all() == ["a-child"]
        with (
            pytest.raises(ProgrammingError, match="row-level security"),
            state.session() as session,
        ):
            add_unit(session, name="b-child", parent="b", actor="token:t")

    try:
        contextvars.copy_context().run(scoped)
        with state.session() as session:
            names = session.scalars(select(Unit.name).order_by(Unit.name)).all()
            added = session.scalars(
                text("SELECT after->>'name' FROM audit WHERE action = 'unit.add'")
            ).all()
        assert names == ["a", "a-child", "b"]
        assert added == ["a-child"]
    finally:
        state.close()


def test_the_source_side_reads_and_approves_a_draft_of_another_unit_under_rls(
    roles: Roles,
) -> None:
    """A draft warning belongs to the warned unit (b) but only the source alert's side (a)
    reads it (migration 0022) and approves it; b sees it once approved, a then no longer."""
    a, b, _ = _seed(roles.owner_url, roles.app_url)
    state = open_state(roles.owner_url, scoped_url=roles.app_url)
    try:
        with state.session() as session:
            alert_of_a = session.scalars(select(Alert.id).where(Alert.unit_id == a)).one()
            draft, _ = record_warning(session, unit_id=b, source_incident_id=None,
                                      source_alert_id=alert_of_a, level="high", title="w",
                                      observables=[], attack=[], hits=[{"host": "h"}],
                                      hits_total=1, draft=True)  # fmt: skip

        def listed(unit: int) -> list[tuple[int, str, list[Any]]]:
            set_request_units(frozenset({unit}))
            with state.session() as session:
                rows = list_warnings(session, _analyst(unit))
            return [(w["id"], w["status"], w["hits"]) for w in rows]

        def approve() -> str:
            set_request_units(frozenset({a}))
            with state.session() as session:
                return str(approve_warning(session, _analyst(a), draft.id)["status"])

        run = contextvars.copy_context().run
        assert run(listed, a) == [(draft.id, "draft", [])]  # no hits: b's events
        assert run(listed, b) == []  # not b's until approved
        assert run(approve) == "new"
        assert run(listed, b) == [(draft.id, "new", [{"host": "h"}])]
        assert run(listed, a) == []
        with state.session() as session:
            about = session.scalars(
                text("SELECT unit_id FROM audit WHERE action = 'warning.approve'")
            ).all()
        assert about == [b]
    finally:
        state.close()
