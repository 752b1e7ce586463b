"""Users and tokens: argon2 passwords, lockout after repeated failures, hashed tokens."""

from __future__ import annotations

import hashlib
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING

import pytest
from sqlalchemy import select

from vedette.store.state import (
    AuthError,
    Forbidden,
    Invalid,
    NotFound,
    Role,
    add_token,
    add_user,
    authenticate_password,
    authenticate_token,
    list_tokens,
    revoke_token,
)
from vedette.store.state.accounts import LOCK_AFTER, LOGIN_FAILED
from vedette.store.state.models import Token, User

if TYPE_CHECKING:
    from conftest import World

T0 = datetime(2026, 3, 1, 12, 0, tzinfo=UTC)


def test_password_login(world: World) -> None:
    with world.db.session() as session:
        add_user(session, name="alice", unit="north", role="analyst", password="correct horse")
    with world.db.session() as session:
        stored = session.scalar(select(User.password_hash).where(User.name == "alice"))
        assert stored is not None and stored.startswith("$argon2id$")
        assert "correct horse" not in stored
        principal = authenticate_password(session, "alice", "correct horse", now=T0)
    assert (principal.kind, principal.name, principal.unit_name, principal.role) == (
        "user",
        "alice",
        "north",
        Role.ANALYST,
    )
    with world.db.session() as session:
        with pytest.raises(Invalid):
            add_user(session, name="alice", unit="north", role="analyst", password="x" * 9)
        with pytest.raises(Invalid):
            add_user(session, name="bob", unit="north", role="root", password="x" * 9)
        with pytest.raises(NotFound):
            add_user(session, name="bob", unit="nowhere", role="viewer", password="x" * 9)


def test_unknown_user_and_wrong_password_say_the_same(world: World) -> None:
    with world.db.session() as session:
        add_user(session, name="alice", unit="north", role="viewer", password="correct horse")
    messages = []
    for name, password in [("alice", "wrong horse"), ("nobody", "correct horse")]:
        with world.db.session() as session, pytest.raises(AuthError) as caught:
            authenticate_password(session, name, password, now=T0)
        messages.append(str(caught.value))
    assert messages == [LOGIN_FAILED, LOGIN_FAILED]


def test_lockout_grows_and_survives_the_failed_request(world: World) -> None:
    with world.db.session() as session:
        add_user(session, name="alice", unit="north", role="viewer", password="correct horse")

    def attempt(password: str, now: datetime) -> AuthError | None:
        # The caller's session rolls back on the error, as a web request's would.
        try:
            with world.db.session() as session:
                authenticate_password(session, "alice", password, now=now)
        except AuthError as exc:
            return exc
        return None

    for i in range(LOCK_AFTER - 1):
        error = attempt("wrong", T0 + timedelta(seconds=i))
        assert error is not None and error.retry_after is None
    error = attempt("wrong", T0 + timedelta(seconds=10))
    assert error is not None and error.retry_after is not None
    first_lock = error.retry_after
    # Locked: even the right password is refused, with the time left.
    error = attempt("correct horse", T0 + timedelta(seconds=11))
    assert error is not None and error.retry_after == pytest.approx(first_lock - 1)
    # After the lock, one more failure locks for longer.
    after = T0 + timedelta(seconds=10 + first_lock + 1)
    error = attempt("wrong", after)
    assert error is not None and error.retry_after is not None
    assert error.retry_after > first_lock
    # After that lock, the right password works and resets the count.
    later = after + timedelta(seconds=error.retry_after + 1)
    assert attempt("correct horse", later) is None
    with world.db.session() as session:
        user = session.scalar(select(User).where(User.name == "alice"))
        assert user is not None and (user.failed_logins, user.locked_until) == (0, None)


def test_token_is_stored_hashed_and_can_be_revoked(world: World) -> None:
    with world.db.session() as session:
        token, secret = add_token(session, unit="north-a", role="ingest")
    assert secret.startswith("vdt_") and len(secret) >= 4 + 43
    with world.db.session() as session:
        row = session.get(Token, token.id)
        assert row is not None
        assert row.secret_hash == hashlib.sha256(secret.encode()).hexdigest()
        assert secret not in (row.secret_hash, row.name) and secret.startswith(row.prefix)
        principal = authenticate_token(session, secret)
        assert (principal.kind, principal.unit_name, principal.role) == (
            "token",
            "north-a",
            Role.INGEST,
        )
        with pytest.raises(AuthError):
            authenticate_token(session, secret[:-1] + ("A" if secret[-1] != "A" else "B"))
    # Only an admin of a unit covering the token's unit may revoke it; others do not see it.
    south_admin = world.scope("south", Role.ADMIN)
    north_analyst = world.scope("north", Role.ANALYST)
    admin = world.scope("north", Role.ADMIN)
    with world.db.session() as session:
        with pytest.raises(NotFound):
            revoke_token(session, south_admin, token.id)
        with pytest.raises(Forbidden):
            revoke_token(session, north_analyst, token.id)
        assert token.id in [t.id for t in list_tokens(session, admin)]
        revoke_token(session, admin, token.id)
    with world.db.session() as session, pytest.raises(AuthError):
        authenticate_token(session, secret)
