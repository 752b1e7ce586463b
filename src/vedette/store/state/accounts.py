"""Users and tokens: creation, password and token authentication, login rate limiting.

Passwords are hashed with argon2id. Tokens are ``vdt_`` plus 32 random bytes (URL-safe), shown
once and stored as their sha256: a leaked database gives no usable token. After
``LOCK_AFTER`` failed logins in a row an account is locked for ``LOCK_BASE_S`` seconds, doubling
with each further failure up to ``LOCK_MAX_S``; the error text is the same for an unknown user,
a wrong password, a disabled or a locked account.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
from datetime import datetime, timedelta
from functools import cache

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError
from sqlalchemy import delete, select
from sqlalchemy.orm import Session

from vedette.errors import VedetteError
from vedette.store.state.audit import append_audit
from vedette.store.state.models import Token, Unit, User, UserSession, utcnow
from vedette.store.state.scope import Invalid, NotFound, Principal, Role, Scope, require
from vedette.store.state.units import unit_by_name

TOKEN_PREFIX = "vdt_"
LOCK_AFTER = 5
LOCK_BASE_S = 30.0
LOCK_MAX_S = 3600.0
LOGIN_FAILED = "unknown user or wrong password"

_hasher = PasswordHasher()


@cache
def _dummy_hash() -> str:
    """Verified against when the user is unknown, so that both answers take the same time."""
    return _hasher.hash(secrets.token_urlsafe(16))


class AuthError(VedetteError):
    """Authentication failed; ``retry_after`` (seconds) is set while an account is locked."""

    def __init__(self, message: str, *, retry_after: float | None = None) -> None:
        super().__init__(message)
        self.retry_after = retry_after


def _role(role: Role | str) -> Role:
    try:
        return Role(role)
    except ValueError as exc:
        raise Invalid(f"unknown role {role!r}; one of {', '.join(r.value for r in Role)}") from exc


def hash_token(token: str) -> str:
    """The stored form of a token: sha256, hex."""
    return hashlib.sha256(token.encode()).hexdigest()


def add_user(
    session: Session,
    *,
    name: str,
    unit: str,
    role: Role | str,
    password: str,
    locale: str = "en",
    actor: str = "system",
) -> User:
    """Add a user of ``unit`` with ``role``; the password is stored as an argon2 hash. Audited."""
    if not name or len(name) > 128:
        raise Invalid("a user name is 1-128 characters")
    if len(password) < 8:
        raise Invalid("a password has at least 8 characters")
    if session.scalar(select(User.id).where(User.name == name)) is not None:
        raise Invalid(f"user {name!r} exists")
    home = unit_by_name(session, unit)
    user = User(
        name=name,
        unit_id=home.id,
        role=_role(role).value,
        password_hash=_hasher.hash(password),
        locale=locale,
        disabled=False,
        failed_logins=0,
    )
    session.add(user)
    session.flush()
    append_audit(
        session,
        actor=actor,
        action="user.add",
        object_type="user",
        object_id=user.id,
        unit_id=home.id,
        before=None,
        after={"name": name, "unit": unit, "role": user.role, "locale": locale},
    )
    return user


def update_user(
    session: Session,
    name: str,
    *,
    role: Role | str | None = None,
    disabled: bool | None = None,
    password: str | None = None,
    actor: str = "system",
) -> tuple[User, int]:
    """Change a user's role, disabled state or password (unscoped: the admin command's).

    A new password or disabling ends every session of the user at once (a role change needs
    not: a session reads its user's role on each lookup). Returns the user and the number of
    sessions ended. Audited (never the password, only that it changed).
    """
    user = session.scalar(select(User).where(User.name == name))
    if user is None:
        raise NotFound(f"no user {name!r}")
    before: dict[str, object] = {}
    after: dict[str, object] = {}
    if role is not None and _role(role).value != user.role:
        before["role"], after["role"] = user.role, _role(role).value
        user.role = _role(role).value
    if disabled is not None and disabled != user.disabled:
        before["disabled"], after["disabled"] = user.disabled, disabled
        user.disabled = disabled
    if password is not None:
        if len(password) < 8:
            raise Invalid("a password has at least 8 characters")
        user.password_hash = _hasher.hash(password)
        user.failed_logins = 0
        user.locked_until = None
        after["password"] = "changed"
    ended = 0
    if password is not None or user.disabled:
        result = session.execute(delete(UserSession).where(UserSession.user_id == user.id))
        ended = int(getattr(result, "rowcount", 0) or 0)
    if after:
        after["sessions_ended"] = ended
        append_audit(
            session,
            actor=actor,
            action="user.update",
            object_type="user",
            object_id=user.id,
            unit_id=user.unit_id,
            before=before,
            after=after,
        )
    session.flush()
    return user, ended


def add_token(
    session: Session, *, unit: str, role: Role | str, name: str = "", actor: str = "system"
) -> tuple[Token, str]:
    """Add a token of ``unit`` with ``role``; returns the row and the plaintext (shown once)."""
    home = unit_by_name(session, unit)
    plaintext = TOKEN_PREFIX + secrets.token_urlsafe(32)
    token = Token(
        unit_id=home.id,
        role=_role(role).value,
        name=name or f"{unit}-{_role(role).value}",
        secret_hash=hash_token(plaintext),
        prefix=plaintext[:12],
    )
    session.add(token)
    session.flush()
    append_audit(
        session,
        actor=actor,
        action="token.add",
        object_type="token",
        object_id=token.id,
        unit_id=home.id,
        before=None,
        after={"name": token.name, "unit": unit, "role": token.role, "prefix": token.prefix},
    )
    return token, plaintext


def _principal(kind: str, row: User | Token, unit: Unit) -> Principal:
    return Principal(
        kind="user" if kind == "user" else "token",
        id=row.id,
        name=row.name,
        unit_id=unit.id,
        unit_name=unit.name,
        role=Role(row.role),
    )


def authenticate_token(session: Session, token: str) -> Principal:
    """The principal of a bearer token; :class:`AuthError` when unknown or revoked.

    The lookup is by sha256, so timing reveals nothing about the secret; the final comparison
    is constant-time anyway.
    """
    digest = hash_token(token)
    row = session.execute(
        select(Token, Unit).join(Unit, Unit.id == Token.unit_id).where(Token.secret_hash == digest)
    ).first()
    if row is None or not hmac.compare_digest(row[0].secret_hash, digest):
        raise AuthError("invalid or revoked token")
    found, unit = row[0], row[1]
    if found.revoked_at is not None:
        raise AuthError("invalid or revoked token")
    return _principal("token", found, unit)


def mark_token_used(session: Session, token_id: int, *, now: datetime | None = None) -> None:
    """Record when a token was last used (not committed; callers may do it once a minute)."""
    token = session.get(Token, token_id)
    if token is not None:
        token.last_used_at = now or utcnow()


def list_tokens(session: Session, scope: Scope) -> list[Token]:
    """Tokens of the caller's units (admins only); secrets are never stored, so never listed."""
    require(scope.can_admin(), "manage tokens")
    rows = session.scalars(
        select(Token).where(Token.unit_id.in_(scope.unit_ids)).order_by(Token.id)
    )
    return list(rows)


def list_users(session: Session, scope: Scope) -> list[User]:
    """Users of the caller's units (admins only); password hashes stay in the row, never shown."""
    require(scope.can_admin(), "manage users")
    rows = session.scalars(select(User).where(User.unit_id.in_(scope.unit_ids)).order_by(User.name))
    return list(rows)


def revoke_token(
    session: Session,
    scope: Scope,
    token_id: int,
    *,
    actor: str | None = None,
    now: datetime | None = None,
) -> Token:
    """Revoke a token of the caller's units (admins only). Audited."""
    token = session.get(Token, token_id)
    if token is None or not scope.covers(token.unit_id):
        raise NotFound(f"no token {token_id}")
    require(scope.can_admin(), "manage tokens")
    if token.revoked_at is None:
        token.revoked_at = now or utcnow()
        append_audit(
            session,
            actor=actor or scope.actor,
            action="token.revoke",
            object_type="token",
            object_id=token.id,
            unit_id=token.unit_id,
            before={"revoked_at": None},
            after={"revoked_at": token.revoked_at},
            now=now,
        )
    return token


def _lock_seconds(failures: int) -> float:
    return min(LOCK_MAX_S, LOCK_BASE_S * float(2 ** max(0, failures - LOCK_AFTER)))


def authenticate_password(
    session: Session, name: str, password: str, *, now: datetime | None = None
) -> Principal:
    """The principal of a user name and password, or :class:`AuthError`.

    The outcome (failure count, lock, reset) is committed here before returning or raising:
    a login is its own transaction, and a failure must count even though the caller's request
    then fails.
    """
    now = now or utcnow()
    row = session.execute(
        select(User, Unit).join(Unit, Unit.id == User.unit_id).where(User.name == name)
    ).first()
    if row is None:
        _verify(_dummy_hash(), password)
        raise AuthError(LOGIN_FAILED)
    user, unit = row[0], row[1]
    if user.locked_until is not None and user.locked_until > now:
        raise AuthError(LOGIN_FAILED, retry_after=(user.locked_until - now).total_seconds())
    if not _verify(user.password_hash, password) or user.disabled:
        user.failed_logins += 1
        retry_after = None
        if user.failed_logins >= LOCK_AFTER:
            retry_after = _lock_seconds(user.failed_logins)
            user.locked_until = now + timedelta(seconds=retry_after)
        session.commit()
        raise AuthError(LOGIN_FAILED, retry_after=retry_after)
    if user.failed_logins or user.locked_until is not None:
        user.failed_logins = 0
        user.locked_until = None
    if _hasher.check_needs_rehash(user.password_hash):
        user.password_hash = _hasher.hash(password)
    session.commit()
    return _principal("user", user, unit)


def _verify(password_hash: str, password: str) -> bool:
    try:
        return _hasher.verify(password_hash, password)
    except (VerificationError, InvalidHashError):
        return False
