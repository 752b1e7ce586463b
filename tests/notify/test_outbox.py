"""The outbox in the state store and the dispatcher over it, without the server: routing by
unit subtree, level and kind; the outbox row lives and dies with its alert's transaction;
claims are leased; failures are recorded with back-off and then sent once the receiver is up."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime, timedelta

import pytest
from receivers import WebhookReceiver
from serverkit import free_port
from sqlalchemy import select

from vedette.notify.dispatcher import Dispatcher
from vedette.store.state.alerts import record_detection
from vedette.store.state.db import StateDB, open_state
from vedette.store.state.models import Alert, OutboxRow
from vedette.store.state.notifications import (
    Delivery,
    add_channel,
    claim_due,
    enqueue_for_alert,
    list_channels,
    list_outbox,
    mark_sent,
)
from vedette.store.state.scope import Invalid, NotFound, Principal, Role, Scope
from vedette.store.state.units import add_unit, units_below

T0 = datetime(2026, 3, 1, 12, 0, tzinfo=UTC)
SECRET = "s3cret-for-the-test-receiver"


@pytest.fixture
def state(state_url: str) -> Iterator[StateDB]:
    db = open_state(state_url)
    with db.session() as session:
        add_unit(session, name="hq", parent=None)
        add_unit(session, name="a", parent="hq")
        add_unit(session, name="a1", parent="a")
        add_unit(session, name="b", parent="hq")
    try:
        yield db
    finally:
        db.close()


def _hook(port: int, **extra: object) -> dict[str, object]:
    return {"url": f"http://127.0.0.1:{port}/hook", "timeout": 2, **extra}


def _alert(session: object, unit: str, level: str, rule: str) -> Alert:
    from vedette.store.state.units import unit_by_name

    unit_id = unit_by_name(session, unit).id  # type: ignore[arg-type]
    alert, created = record_detection(
        session,  # type: ignore[arg-type]
        unit_id=unit_id,
        fingerprint=f"{unit}-{rule}",
        kind="sigma",
        rule_id=rule,
        rule_title=f"rule {rule}",
        level=level,
        when=T0,
    )
    assert created
    return alert


def test_routing_by_unit_subtree_level_and_kind(state: StateDB) -> None:
    with state.session() as session:
        for name, unit, level, kinds, enabled in [
            ("hq-low", "hq", "low", ["alert"], True),
            ("a-high", "a", "high", ["alert"], True),
            ("b-low", "b", "low", ["alert"], True),
            ("hq-incidents", "hq", "low", ["incident"], True),
            ("hq-off", "hq", "low", ["alert"], False),
        ]:
            add_channel(session, None, unit=unit, kind="webhook", name=name, config=_hook(9),
                        min_level=level, kinds=kinds, enabled=enabled)  # fmt: skip
    with state.session() as session:
        high = _alert(session, "a1", "high", "r1")
        assert enqueue_for_alert(session, high) == 2
        medium = _alert(session, "a", "medium", "r2")
        assert enqueue_for_alert(session, medium) == 1
        informational = _alert(session, "b", "informational", "r3")
        assert enqueue_for_alert(session, informational) == 0
    with state.session(readonly=True) as session:
        rows = list_outbox(session, None)
        got = sorted((r.channel, r.object_id) for r in rows)
        assert got == sorted(
            [("hq-low", str(high.id)), ("a-high", str(high.id)), ("hq-low", str(medium.id))]
        )
        payload = session.scalars(select(OutboxRow.payload)).first()
        assert payload is not None and payload["unit"] == "a1" and payload["level"] == "high"


def test_the_outbox_row_is_rolled_back_with_its_alert(state: StateDB) -> None:
    with state.session() as session:
        add_channel(session, None, unit="hq", kind="webhook", name="w", config=_hook(9),
                    min_level="low")  # fmt: skip
    with pytest.raises(RuntimeError), state.session() as session:
        enqueue_for_alert(session, _alert(session, "a", "high", "r1"))
        raise RuntimeError("the worker dies before its commit")
    with state.session(readonly=True) as session:
        assert session.scalars(select(OutboxRow)).all() == []
        assert session.scalars(select(Alert)).all() == []


def test_channels_are_scoped_and_checked(state: StateDB) -> None:
    with state.session(readonly=True) as session:
        from vedette.store.state.units import unit_by_name

        b = unit_by_name(session, "b")
        scope_b = Scope(
            Principal("token", 1, "t", b.id, "b", Role.ADMIN), units_below(session, b.id)
        )
        analyst_b = Scope(
            Principal("token", 2, "t", b.id, "b", Role.ANALYST), units_below(session, b.id)
        )
    with state.session() as session:
        with pytest.raises(NotFound):
            add_channel(session, scope_b, unit="a", kind="webhook", name="x", config=_hook(9))
        with pytest.raises(Invalid, match="url"):
            add_channel(session, scope_b, unit="b", kind="webhook", name="x",
                        config={"url": "ftp://host/x"})  # fmt: skip
        with pytest.raises(Invalid, match="to must be a list"):
            add_channel(session, scope_b, unit="b", kind="email", name="x",
                        config={"host": "h", "from": "a@b"})  # fmt: skip
        add_channel(session, None, unit="a", kind="syslog", name="a-siem",
                    config={"host": "127.0.0.1"})  # fmt: skip
        add_channel(session, scope_b, unit="b", kind="webhook", name="b-hook", config=_hook(9))
    with state.session(readonly=True) as session:
        assert [c.name for c in list_channels(session, scope_b)] == ["b-hook"]
        assert [c.name for c in list_channels(session, None)] == ["a-siem", "b-hook"]
        from vedette.store.state.scope import Forbidden

        with pytest.raises(Forbidden):
            list_channels(session, analyst_b)


def test_claims_are_leased_and_marks_are_idempotent(state: StateDB) -> None:
    with state.session() as session:
        add_channel(session, None, unit="hq", kind="webhook", name="w", config=_hook(9),
                    min_level="low")  # fmt: skip
        enqueue_for_alert(session, _alert(session, "a", "high", "r1"))
        enqueue_for_alert(session, _alert(session, "a", "high", "r2"))
    now = datetime.now(UTC)
    if state.dialect == "postgresql":
        # Two dispatchers at once: the second skips the row the first holds, never waits.
        with state.session() as one, state.session() as two:
            held = claim_due(one, now, limit=1)
            other = claim_due(two, now, limit=1)
            assert len(held) == len(other) == 1 and held[0].id != other[0].id
            one.rollback()
            two.rollback()
    with state.session() as session:
        first = claim_due(session, now, limit=1)
    with state.session() as session:
        second = claim_due(session, now)
    with state.session() as session:
        third = claim_due(session, now)
    assert len(first) == 1 and len(second) == 1 and third == []
    assert first[0].id != second[0].id
    with state.session() as session:
        assert mark_sent(session, first[0].id) is True
        assert mark_sent(session, first[0].id) is False
    # The unmarked claim comes back when its lease (4 x timeout + 5 s) is over, the sent one not.
    with state.session() as session:
        again = claim_due(session, now + timedelta(seconds=14))
    assert [d.id for d in again] == [second[0].id]


def test_dispatcher_backs_off_while_the_receiver_is_down_then_sends_once(
    state: StateDB,
) -> None:
    port = free_port()
    with state.session() as session:
        add_channel(session, None, unit="hq", kind="webhook", name="w", secret=SECRET,
                    config=_hook(port, retry_base=10, retry_cap=40), min_level="low")  # fmt: skip
        for rule in ("r1", "r2", "r3"):
            enqueue_for_alert(session, _alert(session, "a1", "high", rule))
    clock = [datetime.now(UTC)]
    dispatcher = Dispatcher(state, clock=lambda: clock[0])
    delays = []
    for _ in range(4):
        assert dispatcher.run_once() == 3  # all three claimed ...
        with state.session(readonly=True) as session:
            rows = session.scalars(select(OutboxRow).order_by(OutboxRow.id)).all()
        assert {r.sent_at for r in rows} == {None}
        # ... the first fails, and the channel's other rows wait for its next try untried.
        first, *rest = rows
        assert first.last_error and "refused" in first.last_error.lower(), first.last_error
        assert all(r.attempts == 0 and r.last_error is None for r in rest)
        assert {r.next_attempt_at for r in rows} == {first.next_attempt_at}
        delays.append((first.next_attempt_at - clock[0]).total_seconds())
        assert dispatcher.run_once() == 0  # nothing due before the back-off ends
        clock[0] = first.next_attempt_at
    # 10, 20, 40, 40 s, each within the 10 % jitter.
    for got, want in zip(delays, [10, 20, 40, 40], strict=True):
        assert want * 0.89 <= got <= want * 1.11, delays
    assert dispatcher.stats.outcomes[("w", "failed")] == 4
    with state.session(readonly=True) as session:
        (channel,) = list_channels(session, None)
    assert (channel.pending, channel.failing, channel.sent) == (3, 1, 0)
    receiver = WebhookReceiver(port, SECRET).start()
    try:
        assert dispatcher.run_once() == 3
        assert dispatcher.run_once() == 0
        clock[0] += timedelta(hours=1)
        assert dispatcher.run_once() == 0
    finally:
        receiver.stop()
    items = receiver.items()
    assert sorted(i.delivery for i in items) == sorted(r.id for r in rows)
    assert all(i.signature_ok for i in items)
    assert {i.body["data"]["rule_id"] for i in items} == {"r1", "r2", "r3"}
    with state.session(readonly=True) as session:
        assert list_outbox(session, None) == []
        sent = session.scalars(select(OutboxRow).order_by(OutboxRow.id)).all()
    assert [r.attempts for r in sent] == [5, 1, 1]
    assert all(r.sent_at is not None and r.last_error is None for r in sent)
    assert dispatcher.stats.outcomes[("w", "sent")] == 3


def test_a_clean_stop_hands_untried_rows_back_at_once(state: StateDB) -> None:
    with state.session() as session:
        add_channel(session, None, unit="hq", kind="webhook", name="w", config=_hook(9),
                    min_level="low")  # fmt: skip
        for rule in ("r1", "r2", "r3"):
            enqueue_for_alert(session, _alert(session, "a", "high", rule))
    now = datetime.now(UTC)
    taken: list[int] = []

    def stop_after_one(delivery: Delivery) -> None:
        taken.append(delivery.id)
        first.stop()  # the centre stops while this send is in progress

    first = Dispatcher(state, sender=stop_after_one, clock=lambda: now)
    assert first.run_once() == 3
    assert len(taken) == 1
    with state.session(readonly=True) as session:
        rows = session.scalars(select(OutboxRow).order_by(OutboxRow.id)).all()
    assert [r.sent_at is not None for r in rows] == [True, False, False]
    assert all(r.next_attempt_at == now and r.attempts == 0 for r in rows[1:])
    second = Dispatcher(state, sender=lambda d: taken.append(d.id), clock=lambda: now)
    assert second.run_once() == 2
    assert sorted(taken) == [r.id for r in rows]
