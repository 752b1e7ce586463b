"""Matching one retro-hunt over stored event files, and writing its hits as alerts.

Shared by the in-process runner (:mod:`vedette.server.retrohunt`) and the work-queue tasks of
the scale-out mode (:mod:`vedette.server.hunt_tasks`), so both read, match, fold and record
exactly alike:

- :func:`read_events` turns a stored Parquet file back into :class:`~vedette.events.Event`
  objects, an Arrow batch at a time, inside the job's time range;
- :func:`scan_files` matches them with the job's :class:`~vedette.pipeline.Detector`, drops
  what the unit's rule exceptions cover and folds the hits per fingerprint (:class:`Found`);
- :func:`record_hits` writes one :class:`Found` as alerts in the unit of the events (upserted
  by fingerprint, the job id in it), adds them to the job's alert ids, samples and counters
  and attaches the new ones to the job's incident. The caller commits it with its progress.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Final

import orjson
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq
from sqlalchemy.orm import Session

from vedette.alerts.facts import AlertFacts, facts_of, key_fields
from vedette.detect import Engine
from vedette.events import Detection, Event, LogSource, SourceRef, iso_utc
from vedette.pipeline.detector import Detector
from vedette.store.eventstore import ParquetEventStore, PartName
from vedette.store.state.alerts import fingerprint, record_detection
from vedette.store.state.exceptions import ActiveException, matches
from vedette.store.state.incidents import attach_alerts
from vedette.store.state.retrohunts import MAX_SAMPLES, RetroHunt
from vedette.store.state.scope import Scope

log = logging.getLogger("vedette.retrohunt")

BATCH_ROWS: Final = 8192
COLUMNS: Final = (
    "time",
    "host",
    "product",
    "services",
    "categories",
    "source_format",
    "record_id",
    "fields",
)
_PLAIN: Final = ("host", "product", "source_format", "record_id", "fields")
_SEP: Final = "\x1f"
DEDUP_SECONDS: Final = 100 * 365 * 86400.0
"""A job folds every hit of a fingerprint into one alert, however far apart the events are."""
MAX_ALERT_IDS: Final = 10_000


@dataclass(slots=True)
class OnlyRules:
    """An engine whose detections are kept only for ``rule_ids``: the new rules of a reload
    share their files with rules already run (the files are loaded whole, as ``scan`` does)."""

    engine: Engine
    rule_ids: frozenset[str]

    def match(self, events: Sequence[Event]) -> list[Detection]:
        """The engine's detections of the chosen rules."""
        return [d for d in self.engine.match(events) if d.rule_id in self.rule_ids]


# -- reading stored events -----------------------------------------------------------------------


def _aware(moment: datetime) -> datetime:
    return moment.replace(tzinfo=UTC) if moment.tzinfo is None else moment.astimezone(UTC)


def read_events(
    path: Path,
    unit: str,
    *,
    time_from: datetime | None = None,
    time_to: datetime | None = None,
    batch_rows: int = BATCH_ROWS,
    admits: Callable[[LogSource], bool] | None = None,
    seq_range: tuple[int, int] | None = None,
) -> Iterator[tuple[int, list[Event]]]:
    """``(rows read, events)`` of one stored file in [time_from, time_to], per Arrow batch.

    Columns are converted a batch at a time; events without a time are kept (their file's day
    already lies in the range). With ``admits``, rows whose logsource it refuses are skipped
    before their fields are decoded (decoding the JSON is most of the cost). With
    ``seq_range``, only rows of those spool batches (a merged file read for one of its
    sources). Raises FileNotFoundError at once when ``path`` is gone.
    """
    parquet = pq.ParquetFile(path)
    logsources: dict[tuple[Any, ...], LogSource | None] = {}
    name = str(path)
    columns = [*COLUMNS, "seq"] if seq_range is not None else list(COLUMNS)
    for batch in parquet.iter_batches(batch_size=batch_rows, columns=columns):
        if seq_range is not None:
            seq = batch.column("seq")
            keep = pc.and_(pc.greater_equal(seq, seq_range[0]), pc.less_equal(seq, seq_range[1]))
            batch = batch.filter(keep)
            if batch.num_rows == 0:
                continue
        if time_from is not None or time_to is not None:
            batch = _within(batch, time_from, time_to)
            if batch.num_rows == 0:
                continue
        # Column-wise conversion: an aware timestamp column converts five times slower than a
        # naive one, and list columns are joined to one string each so that the logsource of
        # a batch is built once per distinct (product, services, categories).
        times = batch.column("time").cast(pa.timestamp("us")).to_pylist()
        services = pc.binary_join(batch.column("services"), _SEP).to_pylist()
        categories = pc.binary_join(batch.column("categories"), _SEP).to_pylist()
        columns = [batch.column(c).to_pylist() for c in _PLAIN]
        events: list[Event] = []
        for when, service, category, host, product, fmt, record_id, fields in zip(
            times, services, categories, *columns, strict=True
        ):
            key = (product, service, category)
            if key in logsources:
                logsource = logsources[key]
            else:
                logsource = LogSource(product, _names(service), _names(category))
                if admits is not None and not admits(logsource):
                    logsource = None
                logsources[key] = logsource
            if logsource is None:
                continue
            events.append(
                Event(
                    fields=orjson.loads(fields) if fields else {},
                    logsource=logsource,
                    timestamp=None if when is None else when.replace(tzinfo=UTC),
                    host=host,
                    source=SourceRef(name, fmt or "stored", record_id),
                    unit=unit,
                )
            )
        yield batch.num_rows, events


def read_listed(
    store: ParquetEventStore,
    path: Path,
    unit: str,
    *,
    time_from: datetime | None = None,
    time_to: datetime | None = None,
    batch_rows: int = BATCH_ROWS,
    admits: Callable[[LogSource], bool] | None = None,
) -> Iterator[tuple[int, list[Event]]]:
    """:func:`read_events` of a file listed earlier by ``store.files``: when the compactor
    merged it away since, the same rows (its spool range) from the file covering it now.
    FileNotFoundError when nothing covers it (retention removed the day)."""
    gone = PartName.parse(path.name)
    at: Path | None = path
    span: tuple[int, int] | None = None
    for _ in range(5):  # each lap follows one more merge that happened meanwhile
        if at is None:
            break
        try:
            yield from read_events(
                at,
                unit,
                time_from=time_from,
                time_to=time_to,
                batch_rows=batch_rows,
                admits=admits,
                seq_range=span,
            )
            return
        except FileNotFoundError:
            # Raised on opening, before any row (an open file stays readable when unlinked).
            at = store.covering(path)
            span = None if gone is None else (gone.first, gone.last)
    raise FileNotFoundError(path)


def _names(joined: str | None) -> frozenset[str]:
    return frozenset(joined.split(_SEP)) if joined else frozenset()


def logsource_filter(detector: Detector) -> Callable[[LogSource], bool] | None:
    """For a rules-only detector: whether any rule's logsource admits an event's (the engine's
    own test), so events no rule can match are never decoded. None when all events count."""
    engine = detector.engine
    if detector.indicators is not None:
        return None
    if isinstance(engine, OnlyRules):
        rules = [r for r in engine.engine.rules if r.id in engine.rule_ids]
    elif isinstance(engine, Engine):
        rules = engine.rules
    else:
        return None
    wanted = {(r.logsource.product, r.logsource.service, r.logsource.category) for r in rules}

    def admits(logsource: LogSource) -> bool:
        return any(logsource.admits(*triple) for triple in wanted)

    return admits


def _within(
    batch: pa.RecordBatch, time_from: datetime | None, time_to: datetime | None
) -> pa.RecordBatch:
    times = batch.column("time")
    keep = pc.is_null(times)
    inside: Any = None
    if time_from is not None:
        inside = pc.greater_equal(times, pa.scalar(_aware(time_from), times.type))
    if time_to is not None:
        upper = pc.less_equal(times, pa.scalar(_aware(time_to), times.type))
        inside = upper if inside is None else pc.and_(inside, upper)
    mask = pc.or_(keep, pc.fill_null(inside, False)) if inside is not None else keep
    return batch.filter(mask)


# -- matching and folding ------------------------------------------------------------------------


@dataclass(slots=True)
class Fold:
    """The hits of one fingerprint: the first detection, how many, first and last time."""

    detection: Detection
    count: int
    first: datetime
    last: datetime


@dataclass(slots=True)
class Found:
    """What matching some stored files found: hits folded per fingerprint, and counts."""

    folds: dict[str, Fold] = field(default_factory=dict)
    events_read: int = 0
    hits: int = 0
    excepted: int = 0
    stopped: bool = False
    """True when ``stop`` said so before the files were all read."""


def scan_files(
    job_id: int,
    detector: Detector,
    store: ParquetEventStore,
    unit: str,
    paths: Sequence[Path],
    *,
    time_from: datetime | None,
    time_to: datetime | None,
    exceptions: Sequence[ActiveException],
    admits: Callable[[LogSource], bool] | None = None,
    batch_rows: int = BATCH_ROWS,
    stop: Callable[[], bool] = lambda: False,
) -> Found:
    """Match the events of ``unit`` stored in ``paths`` (listed by ``store.files``; see the
    module docstring); ``stop`` is asked before each file and each batch. A file the
    compactor merged meanwhile is read from the file covering it (:func:`read_listed`); one
    that went (retention) is skipped."""
    found = Found()
    for path in paths:
        if stop():
            found.stopped = True
            break
        try:
            batches = read_listed(
                store,
                path,
                unit,
                time_from=time_from,
                time_to=time_to,
                batch_rows=batch_rows,
                admits=admits,
            )
            for rows, events in batches:
                if stop():
                    found.stopped = True
                    break
                found.events_read += rows
                for detection in detector.match(events):
                    if exceptions and any(
                        matches(e, unit, detection.rule_id, detection.event.fields)
                        for e in exceptions
                    ):
                        found.excepted += 1
                        continue
                    found.hits += 1
                    _fold(found.folds, job_id, unit, detection)
        except FileNotFoundError:
            log.info("retro-hunt %d: %s went (retention) while it ran", job_id, path)
        if found.stopped:
            break
    return found


def enrich_found(detector: Detector, found: Found) -> None:
    """ATT&CK names and tactics for the folded detections (before the write transaction)."""
    detections = [f.detection for f in found.folds.values()]
    enriched = detector.enrich(detections) if detections else detections
    for fold, detection in zip(found.folds.values(), enriched, strict=True):
        fold.detection = detection


def record_hits(
    session: Session,
    row: RetroHunt,
    *,
    unit_id: int,
    unit: str,
    found: Found,
    scope: Scope | None,
) -> None:
    """Write ``found`` as alerts of ``unit`` and add it to the job ``row``: alert ids (new
    ones), samples, events read, hits, excepted. New alerts join the job's incident.

    Alerts are upserted by fingerprint (the job id is part of it): two writes of the same
    fingerprint must not run at once, so callers that may race (the work-queue tasks) hold
    the job row's lock.
    """
    new_ids: list[int] = []
    alert_ids = list(row.alert_ids or [])
    samples = list(row.samples or [])
    for print_, fold in found.folds.items():
        facts = _facts(fold.detection, row.id)
        alert, new = record_detection(
            session,
            unit_id=unit_id,
            fingerprint=print_,
            kind=facts.kind,
            rule_id=facts.rule_id,
            rule_title=facts.rule_title,
            level=facts.level,
            when=fold.first,
            host=facts.host,
            attack=facts.attack,
            matched=facts.matched,
            sample_event=facts.sample_event,
            observables=facts.observables,
            n=fold.count,
            dedup_window_s=DEDUP_SECONDS,
        )
        alert.last_seen = max(alert.last_seen, fold.last)
        if new:
            new_ids.append(alert.id)
            if len(alert_ids) < MAX_ALERT_IDS:
                alert_ids.append(alert.id)
        if len(samples) < MAX_SAMPLES:
            samples.append(
                {
                    "unit": unit,
                    "host": facts.host,
                    "time": iso_utc(fold.first),
                    "rule_id": facts.rule_id,
                    "rule_title": facts.rule_title,
                    "count": fold.count,
                    "alert_id": alert.id,
                }
            )
    if new_ids and row.incident_id is not None and scope is not None:
        attach_alerts(session, scope, row.incident_id, new_ids)
    row.alert_ids = alert_ids
    row.samples = samples
    row.events_read += found.events_read
    row.hits += found.hits
    row.excepted += found.excepted


def _fold(folds: dict[str, Fold], job_id: int, unit: str, detection: Detection) -> None:
    key = {**key_fields(detection), "retrohunt": job_id}
    print_ = fingerprint(detection.rule_id, unit, key)
    when = detection.event.timestamp or datetime.now(UTC)
    fold = folds.get(print_)
    if fold is None:
        folds[print_] = Fold(detection, 1, when, when)
    else:
        fold.count += 1
        fold.first = min(fold.first, when)
        fold.last = max(fold.last, when)


def _facts(detection: Detection, job_id: int) -> AlertFacts:
    facts = facts_of(detection, received=datetime.now(UTC))
    matched = {**facts.matched, "retrohunt": job_id}
    return AlertFacts(
        kind=facts.kind,
        rule_id=facts.rule_id,
        rule_title=facts.rule_title,
        level=facts.level,
        key_fields=facts.key_fields,
        when=facts.when,
        host=facts.host,
        attack=facts.attack,
        matched=matched,
        sample_event=facts.sample_event,
        observables=facts.observables,
    )
