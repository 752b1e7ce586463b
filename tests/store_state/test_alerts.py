"""Alerts: fingerprint dedup within a window, keyset pagination, status changes, comments."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Any

import pytest
from sqlalchemy import select

from vedette.store.state import (
    Forbidden,
    Invalid,
    Role,
    add_comment,
    fingerprint,
    get_alert,
    list_alerts,
    list_comments,
    record_detection,
    update_alert,
)
from vedette.store.state.models import AuditRecord

if TYPE_CHECKING:
    from conftest import World

T0 = datetime(2026, 3, 1, 12, 0, tzinfo=UTC)


def _detect(world: World, unit: str, fp: str, when: datetime, **extra: Any) -> tuple[int, bool]:
    with world.db.session() as session:
        alert, created = record_detection(
            session,
            unit_id=world.ids[unit],
            fingerprint=fp,
            kind="sigma",
            rule_id=extra.pop("rule_id", "r1"),
            rule_title="Rule one",
            level=extra.pop("level", "high"),
            when=when,
            host="pc1",
            attack=[
                {
                    "id": "T1059",
                    "name": "Command and Scripting Interpreter",
                    "tactics": ["execution"],
                }
            ],
            **extra,
        )
        return alert.id, created


def test_fingerprint_is_stable_and_canonical() -> None:
    a = fingerprint("r1", "north", {"host": "pc1", "user": "bob"})
    assert a == fingerprint("r1", "north", {"user": "bob", "host": "pc1"})
    assert a != fingerprint("r1", "south", {"host": "pc1", "user": "bob"})
    assert a != fingerprint("r2", "north", {"host": "pc1", "user": "bob"})
    assert len(a) == 64 and int(a, 16) >= 0


def test_dedup_within_window_counts_and_reopens_after(world: World) -> None:
    first, created = _detect(world, "north", "fp", T0)
    assert created
    again, created = _detect(world, "north", "fp", T0 + timedelta(minutes=50), n=3)
    assert (again, created) == (first, False)
    # A late event inside the window counts too, and moves first_seen back.
    late, created = _detect(world, "north", "fp", T0 - timedelta(minutes=5))
    assert (late, created) == (first, False)
    # Another unit with the same fingerprint is another alert.
    other, created = _detect(world, "south", "fp", T0)
    assert created and other != first
    # Past the window (measured from last_seen) is a new alert.
    beyond, created = _detect(world, "north", "fp", T0 + timedelta(minutes=50 + 61))
    assert created and beyond != first
    scope = world.scope("centre", Role.VIEWER)
    with world.db.session() as session:
        alert = get_alert(session, scope, first)
        assert alert.count == 5
        assert alert.first_seen == T0 - timedelta(minutes=5)
        assert alert.last_seen == T0 + timedelta(minutes=50)
        assert alert.last_seen.tzinfo is not None
        assert alert.attack[0]["tactics"] == ["execution"]


def test_closed_alert_is_not_reused(world: World) -> None:
    first, _ = _detect(world, "north", "fp", T0)
    analyst = world.scope("north", Role.ANALYST)
    with world.db.session() as session:
        update_alert(session, analyst, first, status="closed", close_reason="benign")
    second, created = _detect(world, "north", "fp", T0 + timedelta(minutes=1))
    assert created and second != first


def test_record_detection_does_not_commit(world: World) -> None:
    with world.session() as session:
        record_detection(
            session,
            unit_id=world.ids["north"],
            fingerprint="fp",
            kind="sigma",
            rule_id="r1",
            rule_title="t",
            level="low",
            when=T0,
        )
        session.rollback()
    viewer = world.scope("north", Role.VIEWER)
    with world.db.session() as session:
        assert list_alerts(session, viewer) == ([], None)


def test_pagination_walks_every_alert_once_newest_first(world: World) -> None:
    made = [_detect(world, "north-a", f"fp{i}", T0)[0] for i in range(7)]
    _detect(world, "south", "other", T0)
    scope = world.scope("north", Role.VIEWER)
    seen: list[int] = []
    cursor = None
    pages = 0
    with world.db.session() as session:
        while True:
            items, cursor = list_alerts(session, scope, limit=3, cursor=cursor)
            seen.extend(a.id for a in items)
            pages += 1
            if cursor is None:
                break
            assert isinstance(cursor, str) and str(items[-1].id) not in cursor
    assert seen == sorted(made, reverse=True)
    assert pages == 3
    with world.db.session() as session, pytest.raises(Invalid):
        list_alerts(session, scope, cursor="not-a-cursor")


def test_filters(world: World) -> None:
    a, _ = _detect(world, "north", "f1", T0, rule_id="r1", level="high")
    b, _ = _detect(world, "north-a", "f2", T0, rule_id="r2", level="low")
    scope = world.scope("north", Role.VIEWER)
    with world.db.session() as session:
        assert [x.id for x in list_alerts(session, scope, rule_id="r2")[0]] == [b]
        assert [x.id for x in list_alerts(session, scope, level="high")[0]] == [a]
        assert [x.id for x in list_alerts(session, scope, unit="north-a")[0]] == [b]
        assert [x.id for x in list_alerts(session, scope, status="new")[0]] == [b, a]
        assert list_alerts(session, scope, status="closed")[0] == []
        with pytest.raises(Invalid):
            list_alerts(session, scope, status="bogus")


def test_update_rules_and_audit(world: World) -> None:
    alert_id, _ = _detect(world, "north", "fp", T0)
    analyst = world.scope("north", Role.ANALYST)
    with world.db.session() as session:
        with pytest.raises(Invalid):
            update_alert(session, analyst, alert_id, status="closed")
        with pytest.raises(Invalid):
            update_alert(session, analyst, alert_id, close_reason="benign")
        with pytest.raises(Invalid):
            update_alert(session, analyst, alert_id, status="closed", close_reason="maybe")
        update_alert(session, analyst, alert_id, status="in_progress", assignee="alice")
    with world.db.session() as session:
        alert = update_alert(
            session, analyst, alert_id, status="closed", close_reason="true_positive"
        )
        assert (alert.status, alert.close_reason, alert.assignee) == (
            "closed",
            "true_positive",
            "alice",
        )
    with world.db.session() as session:
        alert = update_alert(session, analyst, alert_id, status="new", assignee=None)
        assert (alert.status, alert.close_reason, alert.assignee) == ("new", None, None)
        records = session.scalars(
            select(AuditRecord).where(AuditRecord.action == "alert.update").order_by(AuditRecord.id)
        ).all()
    assert [r.after["status"] for r in records] == ["in_progress", "closed", "new"]
    assert records[1].before == {"status": "in_progress", "close_reason": None, "assignee": "alice"}
    assert records[0].actor == analyst.actor


def test_comments(world: World) -> None:
    alert_id, _ = _detect(world, "north", "fp", T0)
    viewer = world.scope("north", Role.VIEWER)
    with world.db.session() as session, pytest.raises(Forbidden):
        add_comment(session, viewer, alert_id, text="hi")
    analyst = world.scope("centre", Role.ANALYST)
    with world.db.session() as session:
        add_comment(session, analyst, alert_id, text="looking")
        add_comment(session, analyst, alert_id, text="benign admin script")
    with world.db.session() as session:
        texts = [c.text for c in list_comments(session, viewer, alert_id)]
    assert texts == ["looking", "benign admin script"]
