"""How late the api's event loop runs: every request, ingest acknowledgement and listener waits
on it, so a stall (a blocking call on the loop, a long collection) is latency for every unit.

A task sleeps ``tick`` seconds over and over; how much later than asked it wakes is the stall.
The worst stall of the last minute is on ``/metrics``; a stall of ``slow_seconds`` or more is
counted and logged with its length, so an operator sees a pause where it happened.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections import deque

log = logging.getLogger("vedette.server")

__all__ = ["LoopWatch"]


class LoopWatch:
    """Measures the event loop's stalls; run :meth:`run` as a task on that loop."""

    def __init__(
        self, *, tick: float = 0.25, slow_seconds: float = 1.0, window_seconds: float = 60.0
    ) -> None:
        self.tick = tick
        self.slow_seconds = slow_seconds
        self.window_seconds = window_seconds
        self.slow_stalls = 0
        self._recent: deque[tuple[float, float]] = deque()  # (when, stall) of the window

    def worst_recent(self) -> float:
        """The longest stall of the last ``window_seconds``."""
        self._forget(time.monotonic())
        return max((stall for _, stall in self._recent), default=0.0)

    async def run(self) -> None:
        while True:
            asked = time.monotonic()
            await asyncio.sleep(self.tick)
            now = time.monotonic()
            self.note(now, now - asked - self.tick)

    def note(self, now: float, stall: float) -> None:
        """Record one wake-up ``stall`` seconds late."""
        self._forget(now)
        if stall <= 0.0:
            return
        self._recent.append((now, stall))  # a window holds window_seconds / tick at most
        if stall >= self.slow_seconds:
            self.slow_stalls += 1
            log.warning("the event loop stalled %.2f s", stall)

    def _forget(self, now: float) -> None:
        while self._recent and now - self._recent[0][0] > self.window_seconds:
            self._recent.popleft()
