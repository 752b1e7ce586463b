"""Incidents in the state store, SQLite and PostgreSQL: grouping, alert moves, sharing."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from sqlalchemy.orm import Session

from vedette.store.state import (
    Forbidden,
    Invalid,
    NotFound,
    Principal,
    Role,
    Scope,
    StateDB,
    add_unit,
    open_state,
    record_detection,
    scope_for,
    verify_chain,
)
from vedette.store.state import incidents as svc

pytestmark = pytest.mark.embedded_only(
    "no centre: the state layer in process, on SQLite and PostgreSQL"
)

T0 = datetime(2024, 5, 1, 12, 0, tzinfo=UTC)


@pytest.fixture
def db(state_url: str) -> Iterator[StateDB]:
    state = open_state(state_url)
    with state.session() as session:
        add_unit(session, name="hq", parent=None)
        add_unit(session, name="a", parent="hq")
        add_unit(session, name="b", parent="hq")
    yield state
    state.close()


def scope(session: Session, unit: str, role: Role = Role.ANALYST) -> Scope:
    from vedette.store.state import unit_by_name

    row = unit_by_name(session, unit)
    principal = Principal("user", row.id, f"{unit}-{role.value}", row.id, unit, role)
    return scope_for(session, principal)


_N = iter(range(1, 10_000))


def alert(
    session: Session,
    unit: str,
    *,
    level: str = "medium",
    host: str | None = "ws1",
    when: datetime = T0,
    user: str | None = None,
    observables: list[dict[str, str]] | None = None,
    kind: str = "sigma",
) -> int:
    from vedette.store.state import unit_by_name

    sample: dict[str, Any] = {"User": user} if user else {}
    row, _ = record_detection(
        session,
        unit_id=unit_by_name(session, unit).id,
        fingerprint=f"fp{next(_N)}",
        kind=kind,
        rule_id="r",
        rule_title="Rule",
        level=level,
        when=when,
        host=host,
        sample_event=sample,
        observables=observables,
    )
    return row.id


def group(session: Session, alert_id: int, **kw: Any) -> int | None:
    found = svc.group_alert(session, alert_id, **kw)
    return found.id if found is not None else None


def test_grouping_by_host_user_observable_within_the_window(db: StateDB) -> None:
    with db.session() as s:
        low = alert(s, "a", level="low", host="ws1", when=T0 - timedelta(minutes=5))
        high = alert(s, "a", level="high", host="ws1")
        assert group(s, low) is None  # below the open level, no incident yet
        incident = group(s, high)
        assert incident is not None
        # The new incident took in the earlier alert of the same host.
        assert svc.incident_of_alert(s, low) == incident
        same_user = alert(s, "a", host="ws2", user="CORP\\alice", when=T0 + timedelta(minutes=1))
        alice_too = alert(s, "a", host="ws1", user="CORP\\alice", when=T0 + timedelta(minutes=2))
        assert group(s, alice_too) == incident
        assert group(s, same_user) == incident  # joined through the user of alice_too
        ioc = [{"type": "ip", "field": "DestinationIp", "value": "198.51.100.7"}]
        by_ioc = alert(s, "a", host="ws9", observables=ioc, when=T0 + timedelta(minutes=3))
        assert group(s, by_ioc) is None  # ws9 shares nothing with the incident yet
        ioc_high = alert(s, "a", level="high", host="ws10", observables=ioc)
        ioc_incident = group(s, ioc_high)
        assert ioc_incident not in (None, incident)
        same_ioc = alert(s, "a", host="ws11", observables=ioc, when=T0 + timedelta(minutes=4))
        assert group(s, same_ioc) == ioc_incident
        s.flush()
        # SYSTEM is on every host: it joins nothing.
        system = alert(s, "a", host="ws7", user="NT AUTHORITY\\SYSTEM")
        assert group(s, system) is None
        # Same host, past the window: a new incident when high.
        late = alert(s, "a", level="critical", host="ws1", when=T0 + timedelta(hours=3))
        other = group(s, late)
        assert other is not None and other != incident
        # Another unit's alert on the same host name never joins a's incident.
        b_alert = alert(s, "b", level="low", host="ws1")
        assert group(s, b_alert) is None
        health = alert(s, "a", level="high", kind="health", host=None)
        assert group(s, health) is None
        detail = svc.incident_detail(s, scope(s, "a"), incident)
        assert detail["severity"] == "high"
        assert detail["timeline"][0]["alert_id"] == low


def test_attach_detach_merge_split_and_audit(db: StateDB) -> None:
    with db.session() as s:
        sa = scope(s, "a")
        ids = [alert(s, "a", host=f"h{i}") for i in range(4)]
        first = svc.create_incident(s, sa, title="one", alert_ids=ids[:2]).id
        second = svc.create_incident(s, sa, title="two", severity="high", alert_ids=ids[2:]).id
        with pytest.raises(Invalid):
            svc.attach_alerts(s, sa, first, [ids[2]])  # in incident two
        svc.detach_alerts(s, sa, second, [ids[3]])
        assert svc.incident_of_alert(s, ids[3]) is None
        svc.merge_incidents(s, sa, first, [second])
        merged = svc.incident_detail(s, sa, first)
        assert {a["id"] for a in merged["alerts"]} == set(ids[:3])
        assert merged["severity"] == "high"
        assert svc.incident_detail(s, sa, second)["status"] == "closed"
        new = svc.split_incident(s, sa, first, [ids[0]], title="split").id
        assert [a["id"] for a in svc.incident_detail(s, sa, new)["alerts"]] == [ids[0]]
        actions = [r["action"] for r in svc.incident_audit(s, first)]
        assert actions[:2] == ["incident.create", "incident.attach"]
        assert {"incident.merge", "incident.split"} <= set(actions)
        # b's analyst: a's incidents do not exist.
        sb = scope(s, "b")
        for call in (
            lambda: svc.incident_detail(s, sb, first),
            lambda: svc.update_incident(s, sb, first, status="closed"),
            lambda: svc.attach_alerts(s, sb, first, [ids[3]]),
            lambda: svc.share_incident(s, sb, first, unit="b"),
        ):
            with pytest.raises(NotFound):
                call()
        assert svc.list_incidents(s, sb) == []
        # A viewer reads, never writes.
        with pytest.raises(Forbidden):
            svc.update_incident(s, scope(s, "a", Role.VIEWER), first, status="closed")
    with db.session(readonly=True) as s:
        assert verify_chain(s) == (True, None)


def test_share_profile_limits_what_a_participant_sees(db: StateDB) -> None:
    ioc = [
        {"type": "ip", "field": "DestinationIp", "value": "198.51.100.7"},
        {"type": "domain", "field": "QueryName", "value": "evil.example.org"},
    ]
    with db.session() as s:
        sa, sb = scope(s, "a"), scope(s, "b")
        one = alert(s, "a", observables=ioc[:1], host="h1")
        two = alert(s, "a", observables=ioc[1:], host="h2")
        incident = svc.create_incident(s, sa, title="x", alert_ids=[one, two]).id
        with pytest.raises(Invalid):
            svc.share_incident(s, sa, incident, unit="b", observables=["203.0.113.1"])
        with pytest.raises(Invalid):
            svc.share_incident(s, sa, incident, unit="b", alert_ids=[999])
        svc.share_incident(s, sa, incident, unit="b", alert_ids=[two], observables=["198.51.100.7"])
        seen = svc.incident_detail(s, sb, incident)
        assert [a["id"] for a in seen["alerts"]] == [two]
        assert seen["observables"] == [{"type": "ip", "value": "198.51.100.7"}]
        assert "audit" not in seen and seen["access"] == "participant"
        assert [i["id"] for i in svc.list_incidents(s, sb)] == [incident]
        with pytest.raises(Forbidden):
            svc.update_incident(s, sb, incident, status="closed")
        with pytest.raises(Forbidden):
            svc.add_task(s, sb, incident, title="mine now")
        task = svc.add_task(s, sa, incident, title="look", unit="b", due_at=T0)
        hidden = svc.add_task(s, sa, incident, title="a's own")
        svc.update_task(s, sb, incident, task.id, status="done")
        with pytest.raises(NotFound):
            svc.update_task(s, sb, incident, hidden.id, status="done")
        svc.add_incident_comment(s, sa, incident, text="internal")
        svc.add_incident_comment(s, sb, incident, text="from b")
        seen = svc.incident_detail(s, sb, incident)
        assert [t["title"] for t in seen["tasks"]] == ["look"]
        assert [c["text"] for c in seen["comments"]] == ["from b"]
        owner = svc.incident_detail(s, sa, incident)
        assert [c["text"] for c in owner["comments"]] == ["internal", "from b"]
        share = next(u for u in owner["units"] if u["unit"] == "b")
        assert share["shared_alerts"] == [two]


def test_escalation_moves_ownership_up_and_keeps_the_former_owner_in(db: StateDB) -> None:
    with db.session() as s:
        sa = scope(s, "a")
        one = alert(s, "a", level="high")
        incident = svc.create_incident(s, sa, title="x", alert_ids=[one]).id
        svc.escalate_incident(s, sa, incident, reason="beyond us")
        seen = svc.incident_detail(s, sa, incident)
        assert seen["access"] == "participant" and seen["owner_unit"] == "hq"
        assert [a["id"] for a in seen["alerts"]] == [one]
        hq = scope(s, "hq", Role.ADMIN)
        assert svc.incident_detail(s, hq, incident)["access"] == "owner"
        with pytest.raises(Invalid):
            svc.escalate_incident(s, hq, incident)  # the centre has nothing above
        # Grouping still follows the origin unit after escalation.
        again = alert(s, "a", level="low", when=T0 + timedelta(minutes=1))
        assert group(s, again) == incident
