"""Who is calling: a bearer token (a sensor's or a script's) or a user's session, as a Scope.

Tokens are looked up by their sha256 in the state store. Ingest sends thousands of requests a
second with the same token, so a resolved token is remembered for a few seconds; revoking a
token through the API forgets it at once, and ``vedette admin token revoke`` takes effect within
:data:`TOKEN_CACHE_SECONDS`.

A user logs in with name and password (argon2, rate-limited in the data layer) and receives a
session token (``vds_``) stored, as its sha256, in the state store
(:mod:`vedette.store.state.sessions`): a session survives a restart and is valid on every api
process of a scale-out set. It ends after :data:`SESSION_IDLE_SECONDS` unused or
``SESSION_LIFETIME_SECONDS`` after login, at logout, and when the user's password changes or
the user is disabled. Each lookup reads the user as it is now (role, unit, disabled); a lookup
is remembered for :data:`SESSION_CACHE_SECONDS`, so a change made elsewhere (another api
process, ``vedette admin user set``) counts within that time, and a logout at once in the
process that served it. The last use is written at most once a minute per session, so
browsing does not write on every request.
"""

from __future__ import annotations

import threading
import time
from dataclasses import dataclass
from datetime import timedelta

from vedette.store.state import sessions
from vedette.store.state.accounts import AuthError, authenticate_token
from vedette.store.state.db import StateDB
from vedette.store.state.models import utcnow
from vedette.store.state.scope import Principal, Scope
from vedette.store.state.sessions import (
    SESSION_IDLE_SECONDS,
    SESSION_LIFETIME_SECONDS,
    SESSION_PREFIX,
)
from vedette.store.state.units import scope_for

TOKEN_CACHE_SECONDS = 5.0
SESSION_CACHE_SECONDS = 5.0
"""A session lookup is remembered this long (a disabled user or a logout elsewhere counts
within it)."""
SESSION_TOUCH_SECONDS = 60.0
"""A session's last use is written at most this often (a quarter of the idle limit if less);
keep the idle limit well above :data:`SESSION_CACHE_SECONDS` plus this."""
_CACHE_MAX = 10_000

__all__ = [
    "SESSION_CACHE_SECONDS",
    "SESSION_IDLE_SECONDS",
    "SESSION_LIFETIME_SECONDS",
    "SESSION_PREFIX",
    "TOKEN_CACHE_SECONDS",
    "Authenticator",
]


@dataclass(slots=True)
class _Cached:
    scope: Scope
    until: float


class Authenticator:
    """Bearer credentials to :class:`Scope`: tokens and user sessions, with a short cache."""

    def __init__(
        self,
        state: StateDB,
        *,
        idle_seconds: float = SESSION_IDLE_SECONDS,
        lifetime_seconds: float = SESSION_LIFETIME_SECONDS,
    ) -> None:
        self.state = state
        self.idle_seconds = idle_seconds
        self.lifetime_seconds = lifetime_seconds
        self._tokens: dict[str, _Cached] = {}
        self._sessions: dict[str, _Cached] = {}
        self._lock = threading.Lock()

    def scope(self, credential: str) -> Scope:
        """The caller's scope; :class:`AuthError` when the credential is unknown or revoked."""
        now = time.monotonic()
        if credential.startswith(SESSION_PREFIX):
            return self._session(credential, now)
        with self._lock:
            cached = self._tokens.get(credential)
        if cached is not None and cached.until > now:
            return cached.scope
        with self.state.session(readonly=True) as session:
            principal = authenticate_token(session, credential)
            scope = scope_for(session, principal)
        with self._lock:
            if len(self._tokens) > _CACHE_MAX:
                self._tokens.clear()
            self._tokens[credential] = _Cached(scope, now + TOKEN_CACHE_SECONDS)
        return scope

    def forget_tokens(self) -> None:
        """Drop every cached token and session (after a revocation or a change of units)."""
        with self._lock:
            self._tokens.clear()
            self._sessions.clear()

    def open_session(self, principal: Principal) -> str:
        """A new session credential for a logged-in user (stored, audited)."""
        with self.state.session(system=True) as session:
            return sessions.open_session(
                session,
                principal,
                idle_seconds=self.idle_seconds,
                lifetime_seconds=self.lifetime_seconds,
            )

    def close_session(self, credential: str) -> None:
        """Log out: the session is deleted, here at once and in other processes within
        :data:`SESSION_CACHE_SECONDS`."""
        with self._lock:
            self._sessions.pop(credential, None)
        if credential.startswith(SESSION_PREFIX):
            # System session: the credential itself proves whose session it is.
            with self.state.session(system=True) as session:
                sessions.close_session(session, credential)

    def _session(self, credential: str, now: float) -> Scope:
        with self._lock:
            cached = self._sessions.get(credential)
        if cached is not None and cached.until > now:
            return cached.scope
        wall = utcnow()
        # System sessions: authentication runs before the request has a scope.
        try:
            with self.state.session(readonly=True, system=True) as session:
                info = sessions.find_session(session, credential, now=wall)
                # Recomputed on each lookup: units added below the user's unit count at once.
                scope = scope_for(session, info.principal)
        except AuthError:
            with self._lock:
                self._sessions.pop(credential, None)
            raise
        # A quarter of the idle limit when that is shorter (a short limit set for a test or a
        # strict site must not expire a session in use).
        every = min(SESSION_TOUCH_SECONDS, self.idle_seconds / 4)
        if wall - info.last_seen_at >= timedelta(seconds=every):
            with self.state.session(system=True) as session:
                sessions.touch_session(session, info, idle_seconds=self.idle_seconds, now=wall)
        with self._lock:
            if len(self._sessions) > _CACHE_MAX:
                self._sessions.clear()
            self._sessions[credential] = _Cached(scope, now + SESSION_CACHE_SECONDS)
        return scope
