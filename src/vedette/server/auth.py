"""Who is calling: a bearer token (a sensor's or a script's) or a user's session, as a Scope.

Tokens are looked up by their sha256 in the state store. Ingest sends thousands of requests a
second with the same token, so a resolved token is remembered for a few seconds; revoking a
token through the API forgets it at once, and ``vedette admin token revoke`` takes effect within
:data:`TOKEN_CACHE_SECONDS`.

A user logs in with name and password (argon2, rate-limited in the data layer) and receives a
session token of its own, kept in memory with an idle expiry: a restart logs users out, never
sensors.
"""

from __future__ import annotations

import secrets
import threading
import time
from dataclasses import dataclass

from vedette.store.state.accounts import AuthError, authenticate_token
from vedette.store.state.db import StateDB
from vedette.store.state.scope import Principal, Scope
from vedette.store.state.units import scope_for

TOKEN_CACHE_SECONDS = 5.0
SESSION_IDLE_SECONDS = 8 * 3600.0
SESSION_PREFIX = "vds_"


@dataclass(slots=True)
class _Cached:
    scope: Scope
    until: float


@dataclass(slots=True)
class _Session:
    principal: Principal
    until: float


class Authenticator:
    """Bearer credentials to :class:`Scope`, with a short cache and in-memory user sessions."""

    def __init__(self, state: StateDB) -> None:
        self.state = state
        self._tokens: dict[str, _Cached] = {}
        self._sessions: dict[str, _Session] = {}
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
            if len(self._tokens) > 10_000:
                self._tokens.clear()
            self._tokens[credential] = _Cached(scope, now + TOKEN_CACHE_SECONDS)
        return scope

    def forget_tokens(self) -> None:
        """Drop every cached token (after a revocation or a change of units)."""
        with self._lock:
            self._tokens.clear()

    def open_session(self, principal: Principal) -> str:
        """A new session credential for a logged-in user."""
        credential = SESSION_PREFIX + secrets.token_urlsafe(32)
        with self._lock:
            self._sessions[credential] = _Session(
                principal, time.monotonic() + SESSION_IDLE_SECONDS
            )
        return credential

    def close_session(self, credential: str) -> None:
        """Log out."""
        with self._lock:
            self._sessions.pop(credential, None)

    def _session(self, credential: str, now: float) -> Scope:
        with self._lock:
            cached = self._sessions.get(credential)
            if cached is None or cached.until <= now:
                self._sessions.pop(credential, None)
                raise AuthError("session expired or unknown; log in again")
            cached.until = now + SESSION_IDLE_SECONDS
            principal = cached.principal
        # Recomputed on each use: units added below the user's unit are covered at once.
        with self.state.session(readonly=True) as session:
            return scope_for(session, principal)
