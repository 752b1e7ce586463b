"""The scheduler duty's lease on PostgreSQL: one holder at a time, taken over once the holder's
lease expired, every acquisition a new epoch, and a commit fenced by holder, epoch and expiry
(a stalled holder, or one that lost and regained the duty, cannot commit with its old epoch).
The lease times are given explicitly, so nothing here waits for a clock."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from sqlalchemy import select

from vedette.store.state.db import StateDB, open_state
from vedette.store.state.duties import (
    SCHEDULER,
    check_duty,
    claim_duty,
    duty_table,
    leave,
    live_members,
    release_duty,
    renew_member,
)
from vedette.store.state.leases import LeaseLost
from vedette.store.state.models import Position
from vedette.store.state.positions import set_position

TTL = 10.0


@pytest.fixture
def state(database: str) -> Iterator[StateDB]:
    db = open_state(database)
    try:
        yield db
    finally:
        db.close()


def _claim(state: StateDB, owner: str, now: float) -> int | None:
    with state.session() as session:
        return claim_duty(session, SCHEDULER, owner, now, TTL)


def _fenced_write(state: StateDB, owner: str, epoch: int, now: float, value: int) -> None:
    """A write of the duty as the scheduler makes it: the fence, then the position."""
    with state.session() as session:
        check_duty(session, SCHEDULER, owner, epoch, now)
        set_position(session, "coordinate", value)


def _position(state: StateDB) -> int | None:
    with state.session(readonly=True) as session:
        return session.scalar(select(Position.value).where(Position.name == "coordinate"))


def test_one_holder_takeover_after_expiry_and_fenced_commits(state: StateDB) -> None:
    t = 1_000_000.0
    first = _claim(state, "a", t)
    assert first == 1
    assert _claim(state, "b", t + 1) is None  # a's lease is live
    assert _claim(state, "a", t + 2) == first  # a renewal keeps the epoch
    _fenced_write(state, "a", first, t + 3, 10)
    # a stalls: no renewal past t + 2 + TTL; b takes the duty over in a new epoch.
    second = _claim(state, "b", t + 2 + TTL + 0.1)
    assert second == first + 1
    with pytest.raises(LeaseLost):
        _fenced_write(state, "a", first, t + 2 + TTL + 0.2, 99)
    assert _position(state) == 10  # the stalled holder's write was refused whole
    _fenced_write(state, "b", second, t + 2 + TTL + 0.3, 20)
    assert _position(state) == 20
    assert _claim(state, "a", t + 2 + TTL + 0.4) is None  # a woke up: b holds it
    with state.session(readonly=True) as session:
        (row,) = duty_table(session, t + 2 + TTL + 0.5)
    assert (row.owner, row.live, row.epoch, row.moves, row.takeovers) == ("b", True, 2, 1, 1)


def test_expired_lease_regained_by_its_holder_is_a_new_epoch(state: StateDB) -> None:
    t = 2_000_000.0
    first = _claim(state, "a", t)
    assert first is not None
    # Nobody else came, but a's lease lapsed (its database link was down, say): work still in
    # flight from the old epoch must not commit once a's new epoch runs.
    again = _claim(state, "a", t + TTL + 1)
    assert again == first + 1
    with pytest.raises(LeaseLost):
        _fenced_write(state, "a", first, t + TTL + 2, 5)
    _fenced_write(state, "a", again, t + TTL + 2, 6)
    # The lease expired without anyone renewing it: even its holder's fence refuses.
    with pytest.raises(LeaseLost):
        _fenced_write(state, "a", again, t + 2 * TTL + 2, 7)
    assert _position(state) == 6


def test_release_hands_over_at_once_and_members_come_and_go(state: StateDB) -> None:
    t = 3_000_000.0
    held = _claim(state, "a", t)
    assert held is not None
    with state.session() as session:
        release_duty(session, SCHEDULER, "a")
    taken = _claim(state, "b", t + 1)  # no wait for an expiry
    assert taken == held + 1
    with state.session(readonly=True) as session:
        (row,) = duty_table(session, t + 1)
    assert (row.owner, row.moves, row.takeovers) == ("b", 1, 0)  # a move, not a takeover
    with state.session() as session:
        renew_member(session, "b", "scheduler", t, TTL, {"active": True})
        renew_member(session, "n1", "notifier", t, TTL, {"errors": 0})
    with state.session() as session:
        leave(session, "n1")
    with state.session(readonly=True) as session:
        assert [(m.owner, m.role, m.stats) for m in live_members(session, t + 1)] == [
            ("b", "scheduler", {"active": True})
        ]
        assert live_members(session, t + TTL + 1) == []  # b stopped renewing


@pytest.mark.parametrize(
    ("role", "args", "missing"),
    [
        ("scheduler", ["--database", "postgresql://vedette@pg/vedette"], "--store"),
        ("notifier", [], "--database"),
        ("api", ["--database", "postgresql://vedette@pg/vedette", "--store", "s"], "--nats"),
    ],
)
def test_serve_says_which_flag_a_role_needs(
    role: str, args: list[str], missing: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    from vedette.cli.main import main

    code = main(["serve", "--role", role, "--home", str(tmp_path), *args])
    err = capsys.readouterr().err
    assert code != 0 and f"--role {role} needs {missing}" in err, err
    assert "Traceback" not in err
    sqlite = main(["serve", "--role", "notifier", "--home", str(tmp_path), "--database",
                   f"sqlite:///{tmp_path / 'state.db'}"])  # fmt: skip
    assert sqlite != 0 and "--database must be PostgreSQL" in capsys.readouterr().err
