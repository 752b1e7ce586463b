"""Sending one batch to the centre and deciding what its answer means.

``POST /api/v1/events`` answers 202 (stored) or 200 (a duplicate key: stored before); 503 and
429 carry ``Retry-After``; 401/403 mean the token is bad and no retry will help; 400, 413
and 415 refuse the batch's content, which a resend would not change.
"""

from __future__ import annotations

import enum
import random
from dataclasses import dataclass

import httpx

from vedette import __version__
from vedette.forward.state import Buffered

INGEST_PATH = "/api/v1/events"
MAX_RETRY_AFTER = 300.0
"""The longest ``Retry-After`` obeyed: a proxy's answer of hours must not stall the forwarder."""


class Outcome(enum.Enum):
    """What to do with a batch after one attempt."""

    STORED = "stored"
    DUPLICATE = "duplicate"
    RETRY = "retry"
    REJECTED = "rejected"
    FATAL = "fatal"


@dataclass(slots=True, frozen=True)
class Answer:
    """One attempt's outcome, why, and how long the centre asked us to wait."""

    outcome: Outcome
    reason: str
    retry_after: float | None = None


class Backoff:
    """Exponential back-off with jitter between ``base`` and ``cap`` seconds."""

    def __init__(self, base: float = 0.5, cap: float = 30.0) -> None:
        self.base = base
        self.cap = cap
        self.failures = 0

    def next_delay(self, asked: float | None = None) -> float:
        """The wait after one more failure; the centre's ``Retry-After`` when it is longer."""
        self.failures += 1
        ceiling = min(self.cap, self.base * 2 ** (self.failures - 1))
        delay = random.uniform(ceiling / 2, ceiling)  # jitter: forwarders do not retry in step
        if asked is None:
            return delay
        return max(delay, min(asked, MAX_RETRY_AFTER))

    def reset(self) -> None:
        """A success: start again from ``base``."""
        self.failures = 0


def _retry_after(response: httpx.Response) -> float | None:
    value = response.headers.get("retry-after", "")
    try:
        return max(0.0, float(value))
    except ValueError:
        return None


def _message(response: httpx.Response) -> str:
    try:
        body = response.json()
    except ValueError:
        return response.text[:200]
    if isinstance(body, dict) and isinstance(body.get("message"), str):
        return str(body["message"])
    return response.text[:200]


class Sender:
    """An HTTP client to one centre, sending buffered batches with their keys."""

    def __init__(self, url: str, token: str, unit: str | None = None, timeout: float = 30.0):
        self._client = httpx.Client(
            base_url=url.rstrip("/"),
            headers={
                "Authorization": f"Bearer {token}",
                "User-Agent": f"vedette-forward/{__version__}",
            },
            timeout=timeout,
        )
        self._params = {"unit": unit} if unit else {}

    def close(self) -> None:
        """Close the connection pool."""
        self._client.close()

    def send(self, batch: Buffered) -> Answer:
        """Send ``batch`` once; never raises for the centre's or the network's trouble."""
        try:
            response = self._client.post(
                INGEST_PATH,
                content=batch.body,
                params=self._params,
                headers={
                    "Content-Type": batch.content_type,
                    "Content-Encoding": "gzip",
                    "Idempotency-Key": batch.key,
                },
            )
        except httpx.HTTPError as exc:
            return Answer(Outcome.RETRY, f"centre unreachable: {type(exc).__name__}: {exc}")
        return classify(response)


def classify(response: httpx.Response) -> Answer:
    """The outcome an answer of ``POST /api/v1/events`` means."""
    status = response.status_code
    message = _message(response)
    if status in (200, 202):
        try:
            duplicate = bool(response.json().get("duplicate"))
        except (ValueError, AttributeError):
            duplicate = False
        return Answer(Outcome.DUPLICATE if duplicate else Outcome.STORED, str(status))
    if status in (401, 403):
        what = "refused the token" if status == 401 else "does not let this token send events"
        return Answer(Outcome.FATAL, f"the centre {what} ({status}: {message})")
    if status == 404:
        return Answer(Outcome.FATAL, f"{response.url} is not a Vedette centre's ingest (404)")
    if status in (400, 413, 415, 422):
        return Answer(Outcome.REJECTED, f"{status}: {message}")
    # 429, 503, other 5xx, anything unexpected: the centre may take it later
    return Answer(Outcome.RETRY, f"centre answered {status}: {message}", _retry_after(response))
