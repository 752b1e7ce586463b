"""Housekeeping on a timer: the silent-unit check and the deletion of expired users' sessions
(retention and compaction are the event store's own, :meth:`ParquetEventStore.apply_retention`
and :mod:`vedette.server.compaction`).

The embedded centre runs housekeeping in its own process (:class:`vedette.server.centre.Centre`);
the scale-out mode in the scheduler that holds the scheduler duty
(:mod:`vedette.server.scheduler`), so it runs once for the whole centre whatever the number of
api processes.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from datetime import UTC, datetime

from sqlalchemy.orm import Session

from vedette.store.state.alerts import fingerprint, record_detection
from vedette.store.state.db import StateDB
from vedette.store.state.notifications import enqueue_for_alert
from vedette.store.state.positions import mark_silent_alerted, silent_units
from vedette.store.state.sessions import prune_sessions

log = logging.getLogger("vedette.server")

SILENT_RULE_ID = "vedette-sensor-silent"
RETENTION_EVERY_SECONDS = 3600.0


def raise_silent_alerts(
    state: StateDB,
    *,
    dedup_window_seconds: float,
    now: datetime | None = None,
    fence: Callable[[Session], None] | None = None,
) -> int:
    """An alert for each unit that has sent events and gone quiet past its threshold.

    ``fence`` (scale-out) runs in the transaction and refuses it when the scheduler duty was
    lost, so a stalled scheduler raises nothing its successor raises too.
    """
    now = now or datetime.now(UTC)
    raised = 0
    with state.session() as session:
        for unit in silent_units(session, now):
            key = {"last_received_at": unit.last_received_at.isoformat()}
            alert, new = record_detection(
                session,
                unit_id=unit.unit_id,
                fingerprint=fingerprint(SILENT_RULE_ID, unit.name, key),
                kind="health",
                rule_id=SILENT_RULE_ID,
                rule_title=f"Sensor silent: no event from {unit.name} for "
                f"{int((now - unit.last_received_at).total_seconds())} s "
                f"(threshold {unit.silent_after_seconds} s)",
                level="high",
                when=now,
                matched={"last_received_at": unit.last_received_at.isoformat()},
                dedup_window_s=dedup_window_seconds,
            )
            if new:
                enqueue_for_alert(session, alert)  # notifications, same transaction
            mark_silent_alerted(session, unit.unit_id)
            raised += 1
        if raised and fence is not None:
            fence(session)
    return raised


def prune_expired_sessions(state: StateDB, *, now: datetime | None = None) -> int:
    """Delete the users' sessions past their idle or absolute expiry; how many."""
    with state.session() as session:
        pruned = prune_sessions(session, now=now)
    if pruned:
        log.info("%d expired user sessions deleted", pruned)
    return pruned
