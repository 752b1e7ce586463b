"""Incidents, early warnings and bulletins reach the channels that want them, through the same
outbox as alerts, in the transaction that creates them."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from sqlalchemy import select

from vedette.store.state.bulletins import publish_bulletin
from vedette.store.state.db import StateDB, open_state
from vedette.store.state.incidents import create_incident
from vedette.store.state.models import OutboxRow
from vedette.store.state.notifications import add_channel
from vedette.store.state.scope import Principal, Role, Scope
from vedette.store.state.units import add_unit, unit_by_name, units_below
from vedette.store.state.warnings import record_warning


@pytest.fixture
def state(state_url: str) -> Iterator[StateDB]:
    db = open_state(state_url)
    with db.session() as session:
        add_unit(session, name="hq", parent=None)
        add_unit(session, name="a", parent="hq")
        add_unit(session, name="b", parent="hq")
        hook = {"url": "http://127.0.0.1:9/hook", "timeout": 2}
        for name, unit, kinds in [
            ("a-coordination", "a", ["incident", "warning", "bulletin"]),
            ("a-alerts-only", "a", ["alert"]),
            ("b-all", "b", ["alert", "incident", "warning", "bulletin"]),
        ]:
            add_channel(session, None, unit=unit, kind="webhook", name=name, config=hook,
                        secret="k" * 32, min_level="medium", kinds=kinds)  # fmt: skip
    try:
        yield db
    finally:
        db.close()


def _scope(session: object, unit: str, role: Role = Role.ANALYST) -> Scope:
    row = unit_by_name(session, unit)  # type: ignore[arg-type]
    principal = Principal(kind="user", id=1, name="t", unit_id=row.id, unit_name=unit, role=role)
    return Scope(principal=principal, unit_ids=units_below(session, row.id))  # type: ignore[arg-type]


def _rows(state: StateDB) -> list[tuple[str, str, str]]:
    from vedette.store.state.models import NotificationChannel

    with state.session(readonly=True) as session:
        found = session.execute(
            select(NotificationChannel.name, OutboxRow.kind, OutboxRow.object_type).join(
                NotificationChannel, NotificationChannel.id == OutboxRow.channel_id
            )
        ).all()
    return sorted((name, kind, what) for name, kind, what in found)


def test_incident_warning_and_bulletin_are_queued_for_the_channels_that_want_them(
    state: StateDB,
) -> None:
    with state.session() as session:
        create_incident(session, _scope(session, "a"), title="Intrusion on ws-1", severity="high")
    assert _rows(state) == [("a-coordination", "incident", "incident")]
    with state.session() as session:
        record_warning(
            session,
            unit_id=unit_by_name(session, "b").id,
            source_incident_id=None,
            source_alert_id=1,
            level="high",
            title="Seen in another unit",
            observables=[{"type": "ipv4", "value": "203.0.113.9"}],
            attack=[],
            hits=[],
            hits_total=1,
        )
    assert ("b-all", "warning", "warning") in _rows(state)
    with state.session() as session:
        publish_bulletin(session, _scope(session, "hq"), title="Patch now", units=["a", "b"])
    rows = _rows(state)
    assert ("a-coordination", "bulletin", "bulletin") in rows
    assert ("b-all", "bulletin", "bulletin") in rows
    # The alert-only channel of unit a took none of them.
    assert not [r for r in rows if r[0] == "a-alerts-only"]


def test_a_failed_incident_transaction_queues_nothing(state: StateDB) -> None:
    with pytest.raises(RuntimeError), state.session() as session:
        create_incident(session, _scope(session, "a"), title="Never committed", severity="high")
        raise RuntimeError("rolled back")
    assert _rows(state) == []
