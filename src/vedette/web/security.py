"""The console's browser-side defences: CSRF tokens, security headers and cookie flags.

CSRF: a logged-in user's token is derived from the session credential (SHA-256 with a
purpose prefix), so it needs no server state and another site cannot compute it (the session
cookie is HttpOnly and never leaves this origin). The login form, before any session, uses a
double-submit cookie. Every form and every console ``POST`` carries the token; it is compared
in constant time.

Headers: a Content-Security-Policy that allows scripts, styles, images and connections from
this origin only and no inline script or style, plus the usual anti-framing and no-sniff
headers. Cookies: ``HttpOnly``, ``SameSite=Strict``, ``Secure`` when served over TLS.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets

from starlette.requests import Request
from starlette.responses import Response

LOGIN_COOKIE = "vedette_login_csrf"
SESSION_COOKIE = "vedette_session"
THEME_COOKIE = "vedette_theme"
THEMES = ("dark", "light")
YEAR = 365 * 86400

CSP = (
    "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
    "font-src 'self'; connect-src 'self'; form-action 'self'; frame-ancestors 'none'; "
    "base-uri 'none'"
)

HEADERS = {
    "Content-Security-Policy": CSP,
    "X-Content-Type-Options": "nosniff",
    "X-Frame-Options": "DENY",
    "Referrer-Policy": "same-origin",
    "Cache-Control": "no-store",
}


def session_csrf(credential: str) -> str:
    """The CSRF token of a session credential."""
    return hashlib.sha256(b"vedette-console-csrf:" + credential.encode()).hexdigest()


def same(given: str | None, expected: str | None) -> bool:
    """Constant-time equality of two tokens; false when either is missing."""
    if not given or not expected:
        return False
    return hmac.compare_digest(given.encode(), expected.encode())


def new_login_token() -> str:
    """A fresh double-submit token for the login form."""
    return secrets.token_urlsafe(32)


def is_tls(request: Request) -> bool:
    """The request came over TLS (cookies then get ``Secure``)."""
    return request.scope.get("scheme") == "https"


def set_cookie(
    response: Response, request: Request, name: str, value: str, *, max_age: int | None = None
) -> None:
    """Set a cookie with the console's flags: HttpOnly, SameSite=Strict, Secure under TLS."""
    response.set_cookie(
        name,
        value,
        max_age=max_age,
        httponly=True,
        samesite="strict",
        secure=is_tls(request),
        path="/",
    )


def protect(response: Response) -> Response:
    """Add the security headers to a console answer."""
    for key, value in HEADERS.items():
        response.headers.setdefault(key, value)
    return response
