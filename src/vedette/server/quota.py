"""Per-unit ingest quotas: a token bucket per unit, refilled at the unit's events per second.

A unit that sends more than its sustained rate (after a burst of ten seconds' worth) gets 429
with the time after which its batch would fit; other units are not slowed by it.
"""

from __future__ import annotations

import threading
import time
from dataclasses import dataclass

BURST_SECONDS = 10.0


@dataclass(slots=True)
class _Bucket:
    tokens: float
    stamp: float


class UnitQuota:
    """Token buckets by unit name; ``rate`` events/s, capacity ``rate * BURST_SECONDS``."""

    def __init__(self, rate: float) -> None:
        self.rate = rate
        self.capacity = max(rate * BURST_SECONDS, 1.0)
        self._buckets: dict[str, _Bucket] = {}
        self._lock = threading.Lock()
        self.refused: dict[str, int] = {}

    def take(self, unit: str, events: int) -> float | None:
        """Take ``events`` from the unit's bucket: None when allowed, else seconds to wait."""
        if self.rate <= 0:
            return None
        now = time.monotonic()
        with self._lock:
            bucket = self._buckets.get(unit)
            if bucket is None:
                bucket = self._buckets[unit] = _Bucket(self.capacity, now)
            bucket.tokens = min(self.capacity, bucket.tokens + (now - bucket.stamp) * self.rate)
            bucket.stamp = now
            # A batch bigger than the whole bucket is let through when the bucket is full,
            # or it could never be sent.
            need = min(float(events), self.capacity)
            if bucket.tokens >= need:
                bucket.tokens -= events
                return None
            self.refused[unit] = self.refused.get(unit, 0) + 1
            return (need - bucket.tokens) / self.rate

    def give_back(self, unit: str, events: int) -> None:
        """Return tokens for a batch that was not stored after all (503, duplicate)."""
        with self._lock:
            bucket = self._buckets.get(unit)
            if bucket is not None:
                bucket.tokens = min(self.capacity, bucket.tokens + events)
