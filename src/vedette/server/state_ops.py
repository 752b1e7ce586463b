"""The worker's side of the state store: alerts and positions, committed together.

Detections of one fingerprint in one commit are folded first (count, first and last time), so a
burst of ten thousand failed logons is one row update, not ten thousand.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime

from sqlalchemy.orm import Session

from vedette.alerts.facts import AlertFacts
from vedette.events import Detection
from vedette.server.worker import DETECT, STORE
from vedette.store.spool import SpoolBatch
from vedette.store.state.alerts import DetectionFold, fingerprint, record_detections
from vedette.store.state.db import StateDB
from vedette.store.state.deadletters import record_dead_letter
from vedette.store.state.exceptions import ActiveException, active_exceptions, matches
from vedette.store.state.models import Unit
from vedette.store.state.notifications import enqueue_for_alert
from vedette.store.state.positions import add_received, add_stored, get_position, set_position
from vedette.store.state.rule_switches import disabled_by_unit
from vedette.store.state.units import unit_by_name

EXCEPTIONS_REFRESH_SECONDS = 5.0


@dataclass(slots=True)
class _Fold:
    facts: AlertFacts
    count: int
    first: datetime
    last: datetime


class PipelineState:
    """Implements the worker's ``WorkerState`` over a :class:`StateDB`."""

    def __init__(
        self,
        state: StateDB,
        *,
        dedup_window_seconds: float,
        detect_position: str = DETECT,
        store_position: str = STORE,
        fence: Callable[[Session], None] | None = None,
    ) -> None:
        self.state = state
        self.dedup_window_seconds = dedup_window_seconds
        # Scale-out: one worker per partition keeps positions of its own ("detect:p3"), and
        # ``fence`` runs inside each write transaction to refuse a commit once the partition's
        # lease is lost (vedette.server.partitions); the embedded mode uses neither.
        self.detect_position = detect_position
        self.store_position = store_position
        self.fence = fence
        self._unit_ids: dict[str, int] = {}
        self._exceptions: list[ActiveException] = []
        self._disabled: Mapping[str, frozenset[str]] = {}
        self._exceptions_at = 0.0
        self._lock = threading.Lock()
        # Coordination (incidents, early warning): told the ids of new alerts after each commit.
        self.on_new_alerts: Callable[[list[int]], None] | None = None
        # A worker in a child process (vedette.server.worker_process) is told of changes.
        self.on_exceptions_changed: Callable[[], None] | None = None

    def positions(self) -> tuple[int, int]:
        """The committed (detect, store) positions."""
        with self.state.session(readonly=True) as session:
            return (
                get_position(session, self.detect_position),
                get_position(session, self.store_position),
            )

    def unit_id(self, name: str) -> int:
        """The id of a unit by name (units are never renamed or deleted, so ids are cached)."""
        found = self._unit_ids.get(name)
        if found is None:
            # Read-only: a SQLite write session must never be opened inside another one.
            with self.state.session(readonly=True) as session:
                found = unit_by_name(session, name).id
            self._unit_ids[name] = found
        return found

    def commit_alerts(
        self,
        position: int,
        alerts: list[tuple[str, AlertFacts]],
        received: dict[str, tuple[int, datetime]],
    ) -> int:
        """Fold and record alerts, count received events and move the detect position, in one
        transaction; returns how many alerts are new."""
        folds: dict[tuple[str, str], _Fold] = {}
        for unit, facts in alerts:
            key = (unit, fingerprint(facts.rule_id, unit, facts.key_fields))
            fold = folds.get(key)
            if fold is None:
                folds[key] = _Fold(facts, 1, facts.when, facts.when)
            else:
                fold.count += 1
                fold.first = min(fold.first, facts.when)
                fold.last = max(fold.last, facts.when)
        new_ids: list[int] = []
        # Unit ids first, outside the write transaction (see unit_id).
        unit_ids = {unit: self.unit_id(unit) for unit in {u for u, _ in folds} | set(received)}
        with self.state.session() as session:
            fresh = record_detections(
                session,
                [
                    DetectionFold(
                        unit_id=unit_ids[unit],
                        fingerprint=print_,
                        kind=fold.facts.kind,
                        rule_id=fold.facts.rule_id,
                        rule_title=fold.facts.rule_title,
                        level=fold.facts.level,
                        first=fold.first,
                        last=fold.last,
                        n=fold.count,
                        host=fold.facts.host,
                        attack=fold.facts.attack,
                        matched=fold.facts.matched,
                        sample_event=fold.facts.sample_event,
                        observables=fold.facts.observables,
                    )
                    for (unit, print_), fold in folds.items()
                ],
                dedup_window_s=self.dedup_window_seconds,
            )
            for alert in fresh:
                new_ids.append(alert.id)  # coordination, handed over after the commit
                # Notifications: the outbox row commits with the alert, or neither does.
                enqueue_for_alert(session, alert)
            created = len(fresh)
            add_received(session, {unit_ids[u]: c for u, c in received.items()})
            if self.fence is not None:
                self.fence(session)
            set_position(session, self.detect_position, position)
            session.commit()
        if new_ids and self.on_new_alerts is not None:
            self.on_new_alerts(new_ids)  # coordination: a queue put, never blocks
        return created

    def commit_stored(self, position: int, stored: dict[str, tuple[int, datetime | None]]) -> None:
        """Per-unit stored counts and the store position, in one transaction."""
        unit_ids = {unit: self.unit_id(unit) for unit in stored}
        with self.state.session() as session:
            add_stored(session, {unit_ids[u]: counts for u, counts in stored.items()})
            if self.fence is not None:
                self.fence(session)
            set_position(session, self.store_position, position)
            session.commit()

    def is_excepted(self, unit: str, detection: Detection) -> bool:
        """True when an unexpired exception of the unit (or a unit above) covers it, or the
        rule is switched off for the unit (or a unit above)."""
        exceptions = self._current_exceptions()
        if detection.rule_id in self._disabled.get(unit, ()):
            return True
        if not exceptions:
            return False
        fields = detection.event.fields
        return any(matches(e, unit, detection.rule_id, fields) for e in exceptions)

    def refresh_exceptions(self) -> None:
        """Reload exceptions and switched-off rules now (after a change through the API)."""
        with self.state.session(readonly=True) as session:
            found = active_exceptions(session, datetime.now(UTC))
            disabled = disabled_by_unit(session)
        with self._lock:
            self._exceptions = found
            self._disabled = disabled
            self._exceptions_at = time.monotonic()
        if self.on_exceptions_changed is not None:
            self.on_exceptions_changed()

    def expire_exceptions(self) -> None:
        """Re-read exceptions before the next detection (safe from a signal handler)."""
        self._exceptions_at = float("-inf")

    def _current_exceptions(self) -> list[ActiveException]:
        if time.monotonic() - self._exceptions_at > EXCEPTIONS_REFRESH_SECONDS:
            self.refresh_exceptions()
        return self._exceptions

    def known_unit(self, name: str) -> bool:
        """True when a unit of that name exists."""
        if name in self._unit_ids:
            return True
        with self.state.session(readonly=True) as session:
            row = session.query(Unit.id).filter(Unit.name == name).first()
        return row is not None

    def dead_letter(self, batch: SpoolBatch, attempts: int, reason: str) -> None:
        """Set a batch aside after repeated failures (idempotent per position name and seq)."""
        with self.state.session() as session:
            record_dead_letter(
                session,
                source=self.detect_position,
                seq=batch.seq,
                unit=batch.unit,
                kind=batch.kind,
                records=batch.records,
                attempts=attempts,
                reason=reason,
            )
