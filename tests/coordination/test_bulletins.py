"""Bulletins: the centre publishes to chosen units; they acknowledge; it sees who has not."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from sqlalchemy.orm import Session

from vedette.store.state import (
    Forbidden,
    NotFound,
    Principal,
    Role,
    Scope,
    StateDB,
    add_unit,
    open_state,
    scope_for,
    unit_by_name,
)
from vedette.store.state.bulletins import ack_bulletin, list_bulletins, publish_bulletin

pytestmark = pytest.mark.embedded_only(
    "no centre: the state layer in process, on SQLite and PostgreSQL"
)


@pytest.fixture
def db(state_url: str) -> Iterator[StateDB]:
    state = open_state(state_url)
    with state.session() as session:
        add_unit(session, name="hq", parent=None)
        for unit in ("a", "b", "c"):
            add_unit(session, name=unit, parent="hq")
    yield state
    state.close()


def scope(session: Session, unit: str, role: Role = Role.ANALYST) -> Scope:
    row = unit_by_name(session, unit)
    return scope_for(session, Principal("user", row.id, f"{unit}-u", row.id, unit, role))


def test_publish_ack_and_who_has_not(db: StateDB) -> None:
    with db.session() as s:
        hq = scope(s, "hq")
        ioc = [{"type": "ip", "value": "198.51.100.7"}]
        chosen = publish_bulletin(
            s, hq, title="Wave", text="block it", observables=ioc, rules=["r-1"], units=["a", "b"]
        ).id
        everyone = publish_bulletin(s, hq, title="All").id
        with pytest.raises(NotFound):
            publish_bulletin(s, scope(s, "a"), title="up", units=["hq"])  # not below a
        with pytest.raises(Forbidden):
            publish_bulletin(s, scope(s, "hq", Role.VIEWER), title="no")
    with db.session() as s:
        assert ack_bulletin(s, scope(s, "a"), chosen) == ["a"]
        with pytest.raises(NotFound):
            ack_bulletin(s, scope(s, "c"), chosen)  # c was not chosen
        with pytest.raises(Forbidden):
            ack_bulletin(s, scope(s, "b", Role.VIEWER), chosen)
    with db.session(readonly=True) as s:
        published = {b["id"]: b for b in list_bulletins(s, scope(s, "hq"))}
        assert published[chosen]["pending"] == ["b"]
        assert {t["unit"]: t["status"] for t in published[chosen]["targets"]} == {
            "a": "acknowledged",
            "b": "pending",
        }
        assert published[everyone]["pending"] == ["a", "b", "c"]
        seen_by_a = {b["id"]: b for b in list_bulletins(s, scope(s, "a"))}
        assert set(seen_by_a) == {chosen, everyone}
        # A target sees its own acknowledgement only, never the other targets.
        assert [t["unit"] for t in seen_by_a[chosen]["targets"]] == ["a"]
        assert seen_by_a[chosen]["observables"] == ioc and seen_by_a[chosen]["rules"] == ["r-1"]
        assert {b["id"] for b in list_bulletins(s, scope(s, "c"))} == {everyone}
