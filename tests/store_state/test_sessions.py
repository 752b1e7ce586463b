"""Users' sessions in the state store (SQLite and PostgreSQL): hashed, live user, expiry,
logout, password change and disabling, pruning, audit."""

from __future__ import annotations

import hashlib
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING

import pytest
from sqlalchemy import func, select

from vedette.store.state import AuthError, Role, add_user, authenticate_password, verify_chain
from vedette.store.state.accounts import update_user
from vedette.store.state.models import AuditRecord, User, UserSession
from vedette.store.state.sessions import (
    close_session,
    find_session,
    open_session,
    prune_sessions,
    touch_session,
)

if TYPE_CHECKING:
    from conftest import World

T0 = datetime(2026, 3, 1, 12, 0, tzinfo=UTC)
PASSWORD = "correct horse"


def _login(world: World, name: str = "alice", *, now: datetime = T0) -> str:
    with world.db.session() as session:
        principal = authenticate_password(session, name, PASSWORD, now=now)
    with world.db.session() as session:
        return open_session(session, principal, idle_seconds=3600, lifetime_seconds=86400, now=now)


@pytest.fixture
def alice(world: World) -> World:
    with world.db.session() as session:
        add_user(session, name="alice", unit="north", role="analyst", password=PASSWORD)
    return world


def test_a_session_is_stored_hashed_and_reads_its_user_as_now(alice: World) -> None:
    world = alice
    credential = _login(world)
    assert credential.startswith("vds_") and len(credential) >= 4 + 43
    with world.db.session() as session:
        row = session.scalar(select(UserSession))
        assert row is not None
        assert row.secret_hash == hashlib.sha256(credential.encode()).hexdigest()
        assert row.unit_id == world.ids["north"]
        info = find_session(session, credential, now=T0 + timedelta(minutes=1))
        assert (info.principal.name, info.principal.unit_name, info.principal.role) == (
            "alice",
            "north",
            Role.ANALYST,
        )
        with pytest.raises(AuthError):
            find_session(session, credential[:-1] + ("A" if credential[-1] != "A" else "B"))
    # A role change counts on the next lookup, without a new login.
    with world.db.session() as session:
        update_user(session, "alice", role="viewer", actor="test")
    with world.db.session() as session:
        info = find_session(session, credential, now=T0 + timedelta(minutes=2))
        assert info.principal.role is Role.VIEWER
        # Unchanged sessions survive a role change.
        assert session.scalar(select(func.count()).select_from(UserSession)) == 1


def test_idle_and_absolute_expiry_and_pruning(alice: World) -> None:
    world = alice
    credential = _login(world)
    with world.db.session() as session:
        find_session(session, credential, now=T0 + timedelta(minutes=59))
        with pytest.raises(AuthError):
            find_session(session, credential, now=T0 + timedelta(minutes=61))
    # Used, the idle expiry moves on; the absolute one never does.
    with world.db.session() as session:
        info = find_session(session, credential, now=T0 + timedelta(minutes=50))
        touch_session(session, info, idle_seconds=3600, now=T0 + timedelta(minutes=50))
    with world.db.session() as session:
        info = find_session(session, credential, now=T0 + timedelta(minutes=100))
        touch_session(session, info, idle_seconds=3600, now=T0 + timedelta(hours=23, minutes=30))
    with world.db.session() as session:
        find_session(session, credential, now=T0 + timedelta(hours=23, minutes=59))
        with pytest.raises(AuthError):
            find_session(session, credential, now=T0 + timedelta(hours=24, minutes=1))
    other = _login(world, now=T0 + timedelta(hours=23, minutes=30))
    with world.db.session() as session:
        assert prune_sessions(session, now=T0 + timedelta(hours=23, minutes=40)) == 0
        assert prune_sessions(session, now=T0 + timedelta(hours=24, minutes=1)) == 1
    with world.db.session() as session:
        assert session.scalar(select(func.count()).select_from(UserSession)) == 1
        find_session(session, other, now=T0 + timedelta(hours=24, minutes=1))


def test_logout_password_change_and_disabling_end_sessions(alice: World) -> None:
    world = alice
    with world.db.session() as session:
        add_user(session, name="bob", unit="south", role="viewer", password=PASSWORD)
    first, second, bobs = _login(world), _login(world), _login(world, "bob")
    with world.db.session() as session:
        assert close_session(session, first)
        assert not close_session(session, first)
    with world.db.session() as session:
        with pytest.raises(AuthError):
            find_session(session, first, now=T0)
        find_session(session, second, now=T0)
        _, ended = update_user(session, "alice", password="another horse", actor="test")
        assert ended == 1
    with world.db.session() as session:
        with pytest.raises(AuthError):
            find_session(session, second, now=T0)
        find_session(session, bobs, now=T0)
        _, ended = update_user(session, "bob", disabled=True, actor="test")
        assert ended == 1
    with world.db.session() as session:
        with pytest.raises(AuthError):
            find_session(session, bobs, now=T0)
        assert session.scalar(select(func.count()).select_from(UserSession)) == 0
    # A session still in the table of a user disabled another way is refused all the same.
    with world.db.session() as session:
        update_user(session, "bob", disabled=False, actor="test")
    again = _login(world, "bob")
    with world.db.session() as session:
        user = session.scalar(select(User).where(User.name == "bob"))
        assert user is not None
        user.disabled = True
    with world.db.session() as session, pytest.raises(AuthError):
        find_session(session, again, now=T0)
    # Opening, closing and every change are in the audit trail, whose chain holds.
    with world.db.session() as session:
        actions = list(session.scalars(select(AuditRecord.action).order_by(AuditRecord.id)))
        assert actions.count("session.open") == 4
        assert actions.count("session.close") == 1
        assert actions.count("user.update") == 3
        text = " ".join(str(r.after) for r in session.scalars(select(AuditRecord)))
        assert "another horse" not in text and first not in text
        assert verify_chain(session) == (True, None)


def test_a_deleted_users_sessions_go_with_the_user(alice: World) -> None:
    world = alice
    credential = _login(world)
    with world.db.session() as session:
        user = session.scalar(select(User).where(User.name == "alice"))
        assert user is not None
        session.delete(user)
    with world.db.session() as session:
        # ON DELETE CASCADE on both databases (SQLite runs with foreign keys on).
        assert session.scalar(select(func.count()).select_from(UserSession)) == 0
        with pytest.raises(AuthError):
            find_session(session, credential, now=T0)
