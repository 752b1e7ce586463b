"""Scopes: a role on a unit covers the units below; other units' objects are not found."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import TYPE_CHECKING

import pytest

from vedette.store.state import (
    Forbidden,
    Invalid,
    NotFound,
    Role,
    add_unit,
    get_alert,
    list_alerts,
    list_units,
    record_detection,
    update_alert,
)

if TYPE_CHECKING:  # the fixture's type; conftest is not importable under importlib mode
    from conftest import World

T0 = datetime(2026, 3, 1, 12, 0, tzinfo=UTC)


def _one_alert_per_unit(world: World) -> dict[str, int]:
    alert_ids = {}
    with world.db.session() as session:
        for name, unit_id in world.ids.items():
            alert, _ = record_detection(
                session,
                unit_id=unit_id,
                fingerprint=f"fp-{name}",
                kind="sigma",
                rule_id="r1",
                rule_title="Rule one",
                level="high",
                when=T0,
                host=f"host-{name}",
            )
            alert_ids[name] = alert.id
    return alert_ids


VISIBLE = {
    "centre": {"centre", "north", "north-a", "south"},
    "north": {"north", "north-a"},
    "north-a": {"north-a"},
    "south": {"south"},
}


@pytest.mark.parametrize("home", sorted(VISIBLE))
def test_lists_and_gets_follow_the_tree(world: World, home: str) -> None:
    alert_ids = _one_alert_per_unit(world)
    scope = world.scope(home, Role.VIEWER)
    assert scope.unit_ids == frozenset(world.ids[n] for n in VISIBLE[home])
    with world.db.session() as session:
        items, _ = list_alerts(session, scope)
        assert {a.unit.name for a in items} == VISIBLE[home]
        assert {u.name for u in list_units(session, scope)} == VISIBLE[home]
        for name, alert_id in alert_ids.items():
            if name in VISIBLE[home]:
                assert get_alert(session, scope, alert_id).unit_id == world.ids[name]
            else:
                with pytest.raises(NotFound):
                    get_alert(session, scope, alert_id)
        # Filtering by a unit outside the scope gives nothing, not an error.
        outside = set(world.ids) - VISIBLE[home]
        for name in outside:
            assert list_alerts(session, scope, unit=name) == ([], None)


def test_foreign_alert_is_not_found_even_for_a_role_that_may_not_write(world: World) -> None:
    alert_ids = _one_alert_per_unit(world)
    viewer = world.scope("north", Role.VIEWER)
    with world.db.session() as session:
        # Another unit's alert: NotFound, never Forbidden.
        with pytest.raises(NotFound):
            update_alert(session, viewer, alert_ids["south"], status="acknowledged")
        with pytest.raises(NotFound):
            update_alert(session, viewer, alert_ids["centre"], status="acknowledged")
        # Its own unit's alert: the role lacks the right.
        with pytest.raises(Forbidden):
            update_alert(session, viewer, alert_ids["north-a"], status="acknowledged")
    analyst = world.scope("north", Role.ANALYST)
    with world.db.session() as session:
        alert = update_alert(session, analyst, alert_ids["north-a"], status="acknowledged")
        assert alert.status == "acknowledged"


def test_ingest_tokens_cannot_read_alerts(world: World) -> None:
    _one_alert_per_unit(world)
    ingest = world.scope("north", Role.INGEST)
    assert ingest.can_ingest() and not ingest.can_read()
    with world.db.session() as session, pytest.raises(Forbidden):
        list_alerts(session, ingest)


def test_units_list_hides_parents_outside_scope(world: World) -> None:
    admin = world.scope("north", Role.ADMIN)
    with world.db.session() as session:
        units = {u.name: u for u in list_units(session, admin)}
    assert units["north"].parent is None  # the centre is not the caller's to see
    assert units["north-a"].parent == "north"
    assert units["north-a"].events_received == 0


def test_unit_rules(world: World) -> None:
    with world.db.session() as session:
        with pytest.raises(Invalid):
            add_unit(session, name="second-root", parent=None, actor="t")
        with pytest.raises(Invalid):
            add_unit(session, name="bad name!", parent="centre", actor="t")
        with pytest.raises(Invalid):
            add_unit(session, name="north", parent="centre", actor="t")
        with pytest.raises(NotFound):
            add_unit(session, name="orphan", parent="nowhere", actor="t")
