"""Users' sessions in the state store: opened at login, looked up by their sha256, ended at
logout, at a password change or when the user is disabled, and pruned once expired.

A session token is ``vds_`` plus 32 random bytes (URL-safe); only its sha256 is stored, so a
leaked database gives no usable session. A session is valid while now is before its
``idle_until`` (moved on by use) and its ``expires_at`` (the absolute lifetime, never moved).
Its user is read on each lookup: a disabled or deleted user has no valid session, and a
changed role or unit counts at once. Opening and ending a session are audited; expiry and
pruning are not (nobody acted).
"""

from __future__ import annotations

import hmac
import secrets
from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy import delete, or_, select, update
from sqlalchemy.orm import Session

from vedette.store.state.accounts import AuthError, hash_token
from vedette.store.state.audit import append_audit
from vedette.store.state.models import Unit, User, UserSession, utcnow
from vedette.store.state.scope import Principal, Role

SESSION_PREFIX = "vds_"
SESSION_IDLE_SECONDS = 8 * 3600.0
"""A session unused this long is over."""
SESSION_LIFETIME_SECONDS = 7 * 24 * 3600.0
"""A session is over this long after login, used or not."""
SESSION_GONE = "session expired or unknown; log in again"


@dataclass(frozen=True, slots=True)
class SessionInfo:
    """A valid session: its row id, its user as now, and when it was last seen."""

    id: int
    principal: Principal
    last_seen_at: datetime
    expires_at: datetime


def open_session(
    session: Session,
    principal: Principal,
    *,
    idle_seconds: float = SESSION_IDLE_SECONDS,
    lifetime_seconds: float = SESSION_LIFETIME_SECONDS,
    now: datetime | None = None,
) -> str:
    """A new session of a logged-in user; returns the token (shown once). Audited."""
    if principal.kind != "user":
        raise ValueError("sessions are for users")
    now = now or utcnow()
    credential = SESSION_PREFIX + secrets.token_urlsafe(32)
    row = UserSession(
        secret_hash=hash_token(credential),
        user_id=principal.id,
        unit_id=principal.unit_id,
        created_at=now,
        last_seen_at=now,
        idle_until=now + timedelta(seconds=idle_seconds),
        expires_at=now + timedelta(seconds=lifetime_seconds),
    )
    session.add(row)
    session.flush()
    append_audit(
        session,
        actor=f"user:{principal.name}",
        action="session.open",
        object_type="user",
        object_id=principal.id,
        unit_id=principal.unit_id,
        before=None,
        after={"session": row.id, "expires_at": row.expires_at},
        now=now,
    )
    return credential


def find_session(session: Session, credential: str, *, now: datetime | None = None) -> SessionInfo:
    """The valid session of ``credential`` with its user as now; :class:`AuthError` when the
    session is unknown, ended or expired, or its user disabled or deleted."""
    now = now or utcnow()
    digest = hash_token(credential)
    row = session.execute(
        select(UserSession, User, Unit)
        .join(User, User.id == UserSession.user_id)
        .join(Unit, Unit.id == User.unit_id)
        .where(UserSession.secret_hash == digest)
    ).first()
    if row is None or not hmac.compare_digest(row[0].secret_hash, digest):
        raise AuthError(SESSION_GONE)
    found, user, unit = row[0], row[1], row[2]
    if user.disabled or found.idle_until <= now or found.expires_at <= now:
        raise AuthError(SESSION_GONE)
    principal = Principal(
        kind="user",
        id=user.id,
        name=user.name,
        unit_id=unit.id,
        unit_name=unit.name,
        role=Role(user.role),
    )
    return SessionInfo(found.id, principal, found.last_seen_at, found.expires_at)


def touch_session(
    session: Session,
    info: SessionInfo,
    *,
    idle_seconds: float = SESSION_IDLE_SECONDS,
    now: datetime | None = None,
) -> None:
    """Record a use: last seen now, idle expiry moved on; the unit follows the user's."""
    now = now or utcnow()
    session.execute(
        update(UserSession)
        .where(UserSession.id == info.id)
        .values(
            last_seen_at=now,
            idle_until=now + timedelta(seconds=idle_seconds),
            unit_id=info.principal.unit_id,
        )
    )


def close_session(session: Session, credential: str, *, now: datetime | None = None) -> bool:
    """Log out: delete the session of ``credential``; False when there was none. Audited."""
    digest = hash_token(credential)
    row = session.execute(
        select(UserSession, User)
        .join(User, User.id == UserSession.user_id)
        .where(UserSession.secret_hash == digest)
    ).first()
    if row is None:
        return False
    found, user = row[0], row[1]
    session.execute(delete(UserSession).where(UserSession.id == found.id))
    append_audit(
        session,
        actor=f"user:{user.name}",
        action="session.close",
        object_type="user",
        object_id=user.id,
        unit_id=user.unit_id,
        before={"session": found.id},
        after=None,
        now=now,
    )
    return True


def prune_sessions(session: Session, *, now: datetime | None = None) -> int:
    """Delete the expired sessions (housekeeping); how many."""
    now = now or utcnow()
    result = session.execute(
        delete(UserSession).where(or_(UserSession.idle_until <= now, UserSession.expires_at <= now))
    )
    return int(getattr(result, "rowcount", 0) or 0)
