"""The dispatcher: a thread that sends due outbox rows and records each outcome.

Each round: a read-only look for due rows (so an idle centre takes no write lock), then one
short transaction that claims a batch (a lease moves each row's ``next_attempt_at`` on), then,
outside any transaction, one send per row, each followed by its own transaction that marks it
sent (the receiver acknowledged) or failed (attempts + 1, the error, the next try after an
exponential back-off with a cap). A crash between a send and its mark leaves the row claimed:
it is sent again when the lease ends, with the same delivery id. Delivery is at-least-once;
a receiver that drops delivery ids it has seen makes it exactly-once.
"""

from __future__ import annotations

import logging
import random
import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Final

from vedette.notify.sender import DeliveryError, send
from vedette.store.state.channel_config import Retry, parse_config
from vedette.store.state.db import StateDB, unavailable
from vedette.store.state.models import utcnow
from vedette.store.state.notifications import (
    Delivery,
    claim_due,
    defer,
    due_count,
    mark_failed,
    mark_sent,
    pending_by_channel,
)

log = logging.getLogger("vedette.notify")

POLL_SECONDS: Final = 0.5
BATCH: Final = 50
PENDING_REFRESH_SECONDS: Final = 5.0


@dataclass(slots=True)
class DispatchStats:
    """Outcomes per channel name since start, and unsent rows per channel (for metrics)."""

    outcomes: dict[tuple[str, str], int] = field(default_factory=dict)
    pending: dict[str, int] = field(default_factory=dict)
    errors: int = 0

    def count(self, channel: str, outcome: str) -> None:
        """One more ``outcome`` (``sent`` or ``failed``) for ``channel``."""
        key = (channel, outcome)
        self.outcomes[key] = self.outcomes.get(key, 0) + 1


class Dispatcher:
    """Sends the outbox of one state store; ``start`` and ``stop`` from the centre."""

    def __init__(
        self,
        state: StateDB,
        *,
        sender: Callable[[Delivery], None] = send,
        poll_seconds: float = POLL_SECONDS,
        clock: Callable[[], datetime] = utcnow,
    ) -> None:
        self.state = state
        self.sender = sender
        self.poll_seconds = poll_seconds
        self.clock = clock
        self.stats = DispatchStats()
        self._stop = threading.Event()
        self._wake = threading.Event()
        self._thread: threading.Thread | None = None
        self._pending_at: datetime | None = None

    def start(self) -> None:
        """Start the thread (once)."""
        if self._thread is None:
            self._thread = threading.Thread(target=self._run, name="vedette-notify", daemon=True)
            self._thread.start()

    def wake(self) -> None:
        """Look for due rows now instead of at the next poll."""
        self._wake.set()

    def stop(self, timeout: float = 30.0) -> None:
        """Stop after the send in progress (its row is marked before the thread ends)."""
        self._stop.set()
        self._wake.set()
        if self._thread is not None:
            self._thread.join(timeout)
            self._thread = None

    def _run(self) -> None:
        while not self._stop.is_set():
            try:
                sent = self.run_once()
            except Exception as exc:
                self.stats.errors += 1
                if unavailable(exc):  # a restart of the database: one line, not a traceback
                    log.warning("notification dispatch waits for the state store: %s", exc)
                else:
                    log.exception("notification dispatch failed; trying again")
                sent = 0
            if sent == 0:
                self._wake.wait(self.poll_seconds)
                self._wake.clear()

    def run_once(self) -> int:
        """One round: claim what is due, send it, record each outcome; how many were tried."""
        now = self.clock()
        self._refresh_pending(now)
        with self.state.session(readonly=True) as session:
            if due_count(session, now) == 0:
                return 0
        with self.state.session() as session:
            claimed = claim_due(session, now, limit=BATCH)
        # A channel that just failed is not tried again in this round: its other rows wait
        # for its next try (one hung receiver must not hold the others for a batch of timeouts).
        down: dict[int, datetime] = {}
        deferred: dict[datetime, list[int]] = {}
        for delivery in claimed:
            if self._stop.is_set():
                # A clean stop hands the untried rows back at once (a crash waits the lease).
                deferred.setdefault(now, []).append(delivery.id)
                continue
            until = down.get(delivery.channel_id)
            if until is not None:
                deferred.setdefault(until, []).append(delivery.id)
                continue
            next_try = self._deliver(delivery)
            if next_try is not None:
                down[delivery.channel_id] = next_try
        if deferred:
            with self.state.session() as session:
                for until, ids in deferred.items():
                    defer(session, ids, until)
        self._pending_at = None
        return len(claimed)

    def _deliver(self, delivery: Delivery) -> datetime | None:
        """Send one; None when sent, else the time of its next try."""
        try:
            self.sender(delivery)
        except Exception as exc:
            reason = str(exc) if isinstance(exc, DeliveryError) else f"{type(exc).__name__}: {exc}"
            return self._failed(delivery, reason)
        with self.state.session() as session:
            mark_sent(session, delivery.id, self.clock())
        self.stats.count(delivery.channel_name, "sent")
        return None

    def _failed(self, delivery: Delivery, reason: str) -> datetime:
        attempts = delivery.attempts + 1
        try:
            retry = parse_config(delivery.channel_kind, delivery.config).retry
        except ValueError:
            retry = Retry()
        # Jitter spreads the retries of many rows failing together (one receiver down).
        delay = min(retry.cap_s, retry.delay(attempts) * random.uniform(0.9, 1.1))
        next_try = self.clock() + timedelta(seconds=delay)
        with self.state.session() as session:
            mark_failed(session, delivery.id, reason, next_try)
        self.stats.count(delivery.channel_name, "failed")
        log.warning(
            "notification %d to %s failed (attempt %d, next in %.0f s): %s",
            delivery.id,
            delivery.channel_name,
            attempts,
            delay,
            reason,
        )
        return next_try

    def _refresh_pending(self, now: datetime) -> None:
        if self._pending_at is not None and now - self._pending_at < timedelta(
            seconds=PENDING_REFRESH_SECONDS
        ):
            return
        with self.state.session(readonly=True) as session:
            self.stats.pending = pending_by_channel(session)
        self._pending_at = now
