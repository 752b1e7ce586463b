"""Rule exceptions: scoped management, expiry, and matching detections for the pipeline."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING

import pytest

from vedette.store.state import (
    Forbidden,
    Invalid,
    NotFound,
    Role,
    active_exceptions,
    add_exception,
    delete_exception,
    list_exceptions,
    matches,
)
from vedette.store.state.exceptions import ActiveException

if TYPE_CHECKING:
    from conftest import World

NOW = datetime(2026, 3, 1, 12, 0, tzinfo=UTC)


def test_exceptions_are_scoped_and_expire(world: World) -> None:
    north = world.scope("north", Role.ANALYST)
    south = world.scope("south", Role.ANALYST)
    viewer = world.scope("north", Role.VIEWER)
    with world.db.session() as session:
        kept = add_exception(
            session, north, unit="north-a", rule_id="r1", conditions={"User": "svc"}, reason="x"
        )
        add_exception(
            session,
            north,
            unit="north",
            rule_id=None,
            conditions={"Image": ["a.exe", "b.exe"]},
            reason="old",
            expires_at=NOW - timedelta(days=1),
        )
        with pytest.raises(NotFound):
            add_exception(session, south, unit="north", rule_id="r1", conditions={}, reason="x")
        with pytest.raises(Forbidden):
            add_exception(session, viewer, unit="north", rule_id="r1", conditions={}, reason="x")
        with pytest.raises(Invalid):
            add_exception(session, north, unit="north", rule_id=None, conditions={}, reason="x")
        with pytest.raises(Invalid):
            add_exception(
                session, north, unit="north", rule_id="r1", conditions={"a": []}, reason="x"
            )
    with world.db.session() as session:
        assert [e.id for e in list_exceptions(session, viewer, now=NOW)] == [kept.id]
        assert len(list_exceptions(session, viewer, include_expired=True, now=NOW)) == 2
        assert list_exceptions(session, south, now=NOW) == []
        assert [e.id for e in active_exceptions(session, NOW)] == [kept.id]
        with pytest.raises(NotFound):
            delete_exception(session, south, kept.id)
        with pytest.raises(Forbidden):
            delete_exception(session, viewer, kept.id)
        delete_exception(session, north, kept.id)
    with world.db.session() as session:
        assert active_exceptions(session, NOW) == []


def test_exception_covers_units_below(world: World) -> None:
    centre = world.scope("centre", Role.ADMIN)
    with world.db.session() as session:
        add_exception(session, centre, unit="north", rule_id="r1", conditions={}, reason="x")
    with world.db.session() as session:
        (active,) = active_exceptions(session, NOW)
    assert active.unit_names == {"north", "north-a"}
    assert matches(active, "north-a", "r1", {})
    assert not matches(active, "south", "r1", {})
    assert not matches(active, "centre", "r1", {})
    assert not matches(active, "north", "r2", {})


def test_matching_conditions() -> None:
    exc = ActiveException(
        id=1,
        unit_names=frozenset({"north"}),
        rule_id=None,
        conditions={"User": "SVC_backup", "Image": ["C:\\a.exe", "C:\\b.exe"], "EventID": 4688},
    )
    fields = {"User": "svc_BACKUP", "Image": "c:\\B.EXE", "EventID": "4688", "Other": 1}
    assert matches(exc, "north", "any-rule", fields)
    assert not matches(exc, "north", "r", {**fields, "Image": "c:\\c.exe"})
    assert not matches(exc, "north", "r", {k: v for k, v in fields.items() if k != "User"})
    assert matches(exc, "north", "r", {**fields, "Image": ["x.exe", "C:\\a.exe"]})
