"""The worker: spool batches in, events stored and alerts raised, exactly once across crashes.

::

    spool ─► decode (records → Events) ─► Detector.match ─► per-unit correlator ─► ATT&CK
          ─► exceptions ─► alerts, deduplicated by fingerprint       [state: position "detect"]
          └► Parquet event store, flushed each second or 20,000 rows [state: position "store"]

Two positions, each committed in the same state transaction as what it produced: ``detect``
with the alerts of the batches up to it, ``store`` with the per-unit stored counters after the
Parquet files up to it are fsync'd. On start the worker deletes Parquet files past ``store``
(written, never committed), then replays the spool from the lower of the two positions,
skipping per batch what each side already has: an acknowledged event is stored once and raises
its alerts once, whatever instant the process died at. The spool is released up to the lower
position only (at most every 0.5 s: a release is a spool transaction with its own fsync).

Alerts are committed once per ``alert_commit_seconds`` (0.5 s) of detection, or as soon as the
spool has nothing more: the state store's cost is per distinct fingerprint per commit, so a
commit folds every detection of a fingerprint since the last one; and a fingerprint's alert
facts (sample event, observables) are built once per commit, as only the first are kept.

One worker runs both stages: two processes, one per stage, were tried and cost more CPU per
event (a second decode) than their overlap saved on the shared 2-core machine (BENCHMARKS.md).

Correlation state is in memory, one correlator per unit (its watermark is that unit's newest
event time; late events are counted). A restart loses the windows open at that moment, and so
does an error the worker recovers from (it detects again from the committed position, which a
correlator that saw those batches would count twice): both are counted in
``correlation_restarts`` and said in the docs.
"""

from __future__ import annotations

import logging
import threading
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime
from typing import Any, Protocol

import orjson

from vedette.alerts.facts import AlertFacts, facts_of, key_fields
from vedette.alerts.observables import field_observables
from vedette.events import Detection, Event
from vedette.pipeline.detector import Detector
from vedette.server.records import BatchDecoder
from vedette.store.eventstore import EventRow, ParquetEventStore, event_row, events_table
from vedette.store.spool import Spool, SpoolBatch
from vedette.store.state.db import unavailable

log = logging.getLogger("vedette.worker")

DETECT = "detect"
STORE = "store"


def position_names(partition: int | None) -> tuple[str, str]:
    """The detect and store position names of a scale-out partition (None: embedded)."""
    if partition is None:
        return DETECT, STORE
    return f"{DETECT}:p{partition}", f"{STORE}:p{partition}"


class WorkerState(Protocol):
    """The state-store operations the worker needs (one transaction per call)."""

    def positions(self) -> tuple[int, int]:
        """The committed (detect, store) positions."""
        ...

    def commit_alerts(
        self,
        position: int,
        alerts: list[tuple[str, AlertFacts]],
        received: dict[str, tuple[int, datetime]],
    ) -> int:
        """Record ``(unit name, facts)`` as alerts, the events received per unit (count, latest
        receive time) and the detect position, atomically. Returns how many alerts are new."""
        ...

    def commit_stored(self, position: int, stored: dict[str, tuple[int, datetime | None]]) -> None:
        """Add per-unit stored counts (and newest event time) and set the store position."""
        ...

    def is_excepted(self, unit: str, detection: Detection) -> bool:
        """True when a rule exception of the unit covers this detection."""
        ...

    def unit_id(self, name: str) -> int:
        """The unit's id; raises when no such unit exists (its batches can never commit)."""
        ...

    def dead_letter(self, batch: SpoolBatch, attempts: int, reason: str) -> None:
        """Set aside a batch that failed ``attempts`` times (idempotent per batch)."""
        ...


@dataclass(slots=True)
class WorkerStats:
    """Counters for /metrics; plain ints written by the worker thread only."""

    batches: int = 0
    events: int = 0
    events_stored: int = 0
    detections: int = 0
    excepted: int = 0
    alerts_created: int = 0
    corrupt_batches: int = 0
    flushes: int = 0
    errors: int = 0
    detections_by_level: Counter[str] = field(default_factory=Counter)
    lag_seconds: float = 0.0
    """Receive-to-processed time of the newest batch processed."""
    correlation_restarts: int = 0
    dead_letters: int = 0
    slow_steps: int = 0
    """Steps of the loop (read, detect, commit alerts, store, release) over the slow mark."""


class Worker:
    """Consumes the spool in a thread of its own; see the module docstring."""

    def __init__(
        self,
        spool: Spool,
        store: ParquetEventStore,
        state: WorkerState,
        detector: Detector | None,
        *,
        correlator_factory: Callable[[], Any] | None = None,
        flush_rows: int = 20_000,
        flush_seconds: float = 1.0,
        read_batches: int = 4,
        alert_commit_seconds: float = 0.5,
        release_seconds: float = 0.5,
        max_attempts: int = 3,
        slow_step_seconds: float = 1.0,
    ) -> None:
        self.spool = spool
        self.store = store
        self.state = state
        self.detector = detector
        self.correlator_factory = correlator_factory
        self.flush_rows = flush_rows
        self.flush_seconds = flush_seconds
        self.read_batches = read_batches
        self.alert_commit_seconds = alert_commit_seconds
        self.release_seconds = release_seconds
        self.max_attempts = max_attempts
        self.slow_step_seconds = slow_step_seconds
        self._failures: dict[int, int] = {}
        self.stats = WorkerStats()
        self.decoder = BatchDecoder()
        self._correlators: dict[str, Any] = {}
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._rows: list[EventRow] = []
        self._rows_first = 0
        self._rows_last = 0
        self._last_flush = time.monotonic()
        # Detected, not yet committed: alerts, received counts and the position they reach.
        # One commit per alert_commit_seconds instead of per read: the state store's cost is
        # per distinct fingerprint per commit, so fewer commits fold more detections each.
        self._alerts: list[tuple[str, AlertFacts]] = []
        self._received: dict[str, tuple[int, datetime]] = {}
        self._detect_to = 0
        self._alerts_since = 0.0
        self._facts_memo: dict[tuple[str, str, str, bytes], AlertFacts] = {}
        # An event's observables by id(event), the event kept alive beside them so the id is
        # not reused: several rules firing on one event need them once.
        self._observed: dict[int, tuple[Event, list[dict[str, str]]]] = {}
        self._released = 0
        self._released_at = 0.0
        self.detect_pos = 0
        self.store_pos = 0
        self.processed = threading.Condition()
        self.failure: str | None = None

    # -- life cycle --------------------------------------------------------------------------

    def recover(self) -> None:
        """Read committed positions and cut Parquet files nobody committed."""
        self.detect_pos, self.store_pos = self.state.positions()
        removed = self.store.discard_after(self.store_pos)
        if removed:
            log.warning(
                "removed %d uncommitted event files past position %d", removed, self.store_pos
            )
        if self.detect_pos or self.store_pos:
            self.stats.correlation_restarts += 1

    def start(self) -> None:
        """Recover, then consume in a daemon thread."""
        self.recover()
        self._thread = threading.Thread(target=self._run, name="vedette-worker", daemon=True)
        self._thread.start()

    def stop(self, timeout: float = 30.0) -> None:
        """Finish the batch at hand, flush stored events, and stop."""
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout)

    def swap_detector(self, detector: Detector) -> None:
        """Use a newly loaded rule set from the next batch on (an atomic reference swap)."""
        self.detector = detector
        self._correlators.clear()

    @property
    def position(self) -> int:
        """Everything up to here is done (stored and alerted)."""
        return min(self.detect_pos, self.store_pos)

    def wait_processed(self, seq: int, timeout: float) -> bool:
        """Block until batch ``seq`` is alerted and stored (tests, and graceful shutdown)."""
        deadline = time.monotonic() + timeout
        with self.processed:
            while self.position < seq:
                left = deadline - time.monotonic()
                if left <= 0:
                    return False
                self.processed.wait(left)
        return True

    # -- the loop ----------------------------------------------------------------------------

    def _run(self) -> None:
        cursor = self.position
        while not self._stop.is_set():
            try:
                started = time.monotonic()
                batches = self.spool.read(cursor, self.read_batches)
                started = self._timed("read", started)
                if batches:
                    self._process(batches)
                    cursor = batches[-1].seq
                    started = self._timed("detect", started, batches)
                elif self._detect_to:
                    self._commit_alerts()
                    started = self._timed("commit alerts", started)
                elif self._rows:
                    self._flush()
                    started = self._timed("store", started)
                else:
                    self.spool.wait(cursor, 0.2)
                    started = time.monotonic()
                if self._detect_to and self._commit_due():
                    self._commit_alerts()
                    started = self._timed("commit alerts", started)
                if self._rows and self._flush_due():
                    self._flush()
                    started = self._timed("store", started)
                self._release()
                self._timed("release", started)
            except Exception as exc:  # the worker must outlive a bad batch or a full disk
                self.stats.errors += 1
                self.failure = f"{type(exc).__name__}: {exc}"
                if unavailable(exc):
                    log.warning("state store unavailable; retrying from position %d: %s",
                                self.position, exc)  # fmt: skip
                else:
                    log.exception("worker error; retrying from position %d", self.position)
                self._rows.clear()
                self._forget_alerts()
                self._restart_correlation()
                self._stop.wait(1.0)
                self._recover_after_error()
                cursor = self.position
        try:
            if self._detect_to:
                self._commit_alerts()
            if self._rows:
                self._flush()
        except Exception:
            log.exception("could not commit alerts or flush stored events at stop")

    def _recover_after_error(self) -> None:
        """Re-read the committed positions (a failed commit may have happened or not) and cut
        the files past them; until the state store answers again (a restart of PostgreSQL)."""
        while True:
            try:
                self.detect_pos, self.store_pos = self.state.positions()
                self.store.discard_after(self.store_pos)
                return
            except Exception as exc:
                self.stats.errors += 1
                log.warning("cannot read the committed positions yet: %s", exc)
                if self._stop.wait(1.0):
                    return  # stopping: nothing is committed past the positions anyway

    def _timed(self, step: str, started: float, batches: list[SpoolBatch] | None = None) -> float:
        """Note how long ``step`` took since ``started``; log a step slower than
        ``slow_step_seconds`` (a stall shows as latency to every unit: say where it was).
        Returns now, the start of the next step."""
        now = time.monotonic()
        took = now - started
        if took >= self.slow_step_seconds:
            self.stats.slow_steps += 1
            what = (
                f" ({len(batches)} batches, seq {batches[0].seq}-{batches[-1].seq})"
                if batches
                else ""
            )
            log.warning("worker step %s took %.2f s%s", step, took, what)
        return now

    def _restart_correlation(self) -> None:
        """Drop the correlation windows after an error, as a restart does: the batches past the
        committed position are detected again, and a correlator that had already counted them
        would count them twice (a false threshold crossed) or drop them as late, losing the
        correlations they completed with the uncommitted alerts."""
        if self._correlators:
            self._correlators.clear()
            self.stats.correlation_restarts += 1
            log.warning("correlation windows open at the error start again from position %d",
                        self.position)  # fmt: skip

    def _commit_due(self) -> bool:
        return time.monotonic() - self._alerts_since >= self.alert_commit_seconds

    def _release(self) -> None:
        """Release the spool up to the position, when it moved and not more than every
        release_seconds (each release is a spool transaction with its own fsync)."""
        position = self.position
        if position > self._released and (
            time.monotonic() - self._released_at >= self.release_seconds
        ):
            self.spool.release(position)
            self._released = position
            self._released_at = time.monotonic()

    def _flush_due(self) -> bool:
        return (
            len(self._rows) >= self.flush_rows
            or time.monotonic() - self._last_flush >= self.flush_seconds
        )

    def _process(self, batches: list[SpoolBatch]) -> None:
        alerts = self._alerts
        received = self._received
        # The first facts per (unit, kind, rule, key fields) of the pending commit: the state
        # store keeps only the first of a fingerprint's detections in one commit.
        facts_memo = self._facts_memo
        detect_to = max(self._detect_to, self.detect_pos)
        now = time.time()
        for batch in batches:
            detect = batch.seq > self.detect_pos
            store = batch.seq > self.store_pos
            if batch.corrupt is not None:
                self.stats.corrupt_batches += 1
                log.error("spool batch %d is corrupt (%s): skipped", batch.seq, batch.corrupt)
                detect_to = max(detect_to, batch.seq) if detect else detect_to
                self._note_rows(batch.seq, [])
                continue
            if not (detect or store):
                continue  # replayed: both stages already have it
            try:
                # A unit missing from the state store fails every commit: it must fail here,
                # against its own batch, to be dead-lettered instead of retried for ever.
                self.state.unit_id(batch.unit)
                events = self.decoder.events(batch)
                when = datetime.fromtimestamp(batch.received_at, tz=UTC)
                found = self._detect(batch.unit, events, when, facts_memo) if detect else []
            except Exception as exc:
                # The state store down (exceptions are read from it) is not the batch's fault.
                if unavailable(exc) or not self._give_up(batch, exc):
                    raise  # the error loop retries from the committed position
                detect_to = max(detect_to, batch.seq) if detect else detect_to
                self._note_rows(batch.seq, [])
                continue
            self._failures.pop(batch.seq, None)
            if detect:
                self.stats.batches += 1
                self.stats.events += len(events)
                alerts.extend(found)
                count, _ = received.get(batch.unit, (0, when))
                received[batch.unit] = (count + len(events), when)
                detect_to = batch.seq
                self.stats.lag_seconds = max(0.0, now - batch.received_at)
            if store:
                self._note_rows(batch.seq, [_row(batch.seq, e, when) for e in events])
        if detect_to > self.detect_pos and not self._detect_to:
            self._alerts_since = time.monotonic()
        if detect_to > self.detect_pos:
            self._detect_to = detect_to

    def _give_up(self, batch: SpoolBatch, exc: Exception) -> bool:
        """Count a failure of ``batch`` in decode or detect; after ``max_attempts`` set it
        aside as a dead letter (with the reason) so the spool moves on. True when set aside."""
        attempts = self._failures.get(batch.seq, 0) + 1
        self._failures[batch.seq] = attempts
        if attempts < self.max_attempts:
            return False
        reason = f"{type(exc).__name__}: {exc}"
        self.state.dead_letter(batch, attempts, reason)
        del self._failures[batch.seq]
        self.stats.dead_letters += 1
        log.error("spool batch %d of %s dead-lettered after %d attempts: %s",
                  batch.seq, batch.unit, attempts, reason)  # fmt: skip
        return True

    def _commit_alerts(self) -> None:
        """Commit the pending alerts with the detect position they reach (one transaction)."""
        detect_to = self._detect_to
        self.stats.alerts_created += self.state.commit_alerts(
            detect_to, self._alerts, self._received
        )
        self._forget_alerts()
        self.detect_pos = detect_to
        with self.processed:
            self.processed.notify_all()

    def _forget_alerts(self) -> None:
        self._alerts = []
        self._received = {}
        self._facts_memo = {}
        self._observed = {}
        self._detect_to = 0

    def _note_rows(self, seq: int, rows: list[EventRow]) -> None:
        if seq <= self.store_pos:
            return
        if not self._rows_first:
            self._rows_first = seq
        self._rows_last = seq
        self._rows.extend(rows)
        if not rows and not self._rows:
            # A batch with nothing to store still moves the store position on.
            self._rows_first = 0
            self.state.commit_stored(seq, {})
            self.store_pos = seq

    def _flush(self) -> None:
        rows, first, last = self._rows, self._rows_first, self._rows_last
        if not rows:
            return
        if self._detect_to:
            # Alerts first: an event visible as stored has its alerts visible too.
            self._commit_alerts()
        self.store.write(events_table(rows), first, last)
        stored: dict[str, tuple[int, datetime | None]] = {}
        for row in rows:
            count, newest = stored.get(row.unit, (0, None))
            when = row.time
            if when is not None and (newest is None or when > newest):
                newest = when
            stored[row.unit] = (count + 1, newest)
        self.state.commit_stored(last, stored)
        self.stats.events_stored += len(rows)
        self.stats.flushes += 1
        self.store_pos = last
        self._rows = []
        self._rows_first = 0
        self._last_flush = time.monotonic()
        with self.processed:
            self.processed.notify_all()

    def _detect(
        self,
        unit: str,
        events: list[Event],
        received: datetime,
        facts_memo: dict[tuple[str, str, str, bytes], AlertFacts],
    ) -> list[tuple[str, AlertFacts]]:
        detector = self.detector
        if detector is None:
            raise RuntimeError("a worker without a detector cannot run the detect stage")
        found = detector.match(events)
        correlator = self._correlator(unit)
        if correlator is not None and found:
            found.sort(key=_time_key)
            found = found + list(correlator.process(found))
            suppressed = detector.suppressed_rule_ids
            if suppressed:
                found = [
                    d
                    for d in found
                    if d.kind != "sigma"
                    or (d.rule_id not in suppressed and (d.rule_name or "") not in suppressed)
                ]
        if not found:
            return []
        found = detector.enrich(found)
        out: list[tuple[str, AlertFacts]] = []
        for detection in found:
            self.stats.detections += 1
            if self.state.is_excepted(unit, detection):
                self.stats.excepted += 1
                continue
            self.stats.detections_by_level[detection.level] += 1
            out.append((unit, _facts(detection, unit, received, facts_memo, self._observed)))
        return out

    def _correlator(self, unit: str) -> Any:
        if self.correlator_factory is None:
            return None
        correlator = self._correlators.get(unit)
        if correlator is None:
            correlator = self._correlators[unit] = self.correlator_factory()
        return correlator


def _facts(
    detection: Detection,
    unit: str,
    received: datetime,
    memo: dict[tuple[str, str, str, bytes], AlertFacts],
    observed: dict[int, tuple[Event, list[dict[str, str]]]],
) -> AlertFacts:
    """The detection's alert facts; a repeat of a fingerprint reuses the first one's facts.

    Building facts (sample event, observables) is the costly part, and ``commit_alerts`` keeps
    only the first facts of a fingerprint plus the count and first/last times of all: so a
    repeat needs only its own time. The memo key is finer than the fingerprint (rule id, unit
    and key fields), so two detections sharing it always share a fingerprint.
    """
    key = (
        unit,
        detection.kind,
        detection.rule_id,
        orjson.dumps(key_fields(detection), option=orjson.OPT_SORT_KEYS, default=str),
    )
    first = memo.get(key)
    if first is None:
        event = detection.event
        seen = observed.get(id(event))
        if seen is None:
            seen = observed[id(event)] = (event, field_observables(event.fields))
        first = memo[key] = facts_of(detection, received=received, event_observables=seen[1])
        return first
    when = detection.event.timestamp or received
    if when.tzinfo is None:
        when = when.replace(tzinfo=UTC)
    return replace(first, when=when)


def _time_key(detection: Detection) -> float:
    when = detection.event.timestamp
    return when.timestamp() if when is not None else 0.0


def _row(seq: int, event: Event, received: datetime) -> EventRow:
    fields = event.fields
    # A record no parser understood is kept whole under ``raw`` (RecordParser.raw_record).
    raw = fields.get("raw") if event.logsource.product is None and len(fields) == 1 else None
    return event_row(
        event,
        seq=seq,
        unit=event.unit or "",
        received=received,
        raw=raw if isinstance(raw, str) else None,
    )
