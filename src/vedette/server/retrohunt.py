"""Retro-hunt: one Sigma rule or indicator set over the stored events of chosen units, later.

A job reads the Parquet files of its units for the days of its time range
(:meth:`ParquetEventStore.files`, one file per unit, day and flush, or per merge of the
compactor), in Arrow record batches,
turns each batch back into :class:`~vedette.events.Event` objects and matches them with the same
:class:`~vedette.pipeline.Detector` stage as ``vedette scan`` and the worker: the Sigma engine
built from the rule's YAML, or the indicator index built by the intel feed loaders. Hits pass
the unit's rule exceptions and become alerts in the unit of the event, one per fingerprint and
job (the job id is part of the fingerprint and of ``matched``), optionally attached to an
incident. Each file's alerts commit with the job's progress (files, and the unit-days and units
read so far: :class:`Milestones`) in one transaction; a cancel is seen between batches.

Jobs run on a small thread pool (``workers``, 2 by default) beside the worker; a job that was
running when the centre stopped is marked failed on the next start (its alerts so far stay),
a queued one runs.
"""

from __future__ import annotations

import logging
import re
import tempfile
import threading
from collections.abc import Callable, Iterable, Iterator, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any, Final

import orjson
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq
from sqlalchemy import select

from vedette.alerts.facts import AlertFacts, facts_of, key_fields
from vedette.detect import Engine
from vedette.detect.loader import RuleSources, load_placeholders, load_rules, read_rule_sources
from vedette.errors import VedetteError
from vedette.events import Detection, Event, LogSource, SourceRef, iso_utc
from vedette.intel import FeedSpec, IndicatorIndex
from vedette.pipeline.detector import Detector, Enricher
from vedette.store.eventstore import ParquetEventStore, PartName
from vedette.store.state.alerts import fingerprint, record_detection
from vedette.store.state.db import StateDB
from vedette.store.state.exceptions import active_exceptions, matches
from vedette.store.state.incidents import attach_alerts
from vedette.store.state.models import Unit, utcnow
from vedette.store.state.retrohunts import MAX_SAMPLES, RetroHunt, create_retrohunt, unfinished
from vedette.store.state.scope import Invalid, Scope

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
FEED_FORMATS: Final = {"stix": ".json", "misp": ".json", "csv": ".csv", "list": ".txt"}
DEDUP_SECONDS: Final = 100 * 365 * 86400.0
"""A job folds every hit of a fingerprint into one alert, however far apart the events are."""
MAX_ALERT_IDS: Final = 10_000


class RetroHuntError(VedetteError):
    """A rule or indicator set that cannot be hunted (the API answers 400)."""


# -- what to hunt --------------------------------------------------------------------------------


def sigma_detector(rule_yaml: str) -> tuple[Detector, str]:
    """The detector of one Sigma rule (YAML, maybe several documents) and its title."""
    try:
        engine = Engine.from_yaml(rule_yaml, scanner="auto")
    except VedetteError as exc:
        raise RetroHuntError(f"the rule does not load: {exc}") from exc
    report = engine.load_report
    if report.loaded == 0:
        reasons = "; ".join(str(e) for e in report.errors[:3]) or "no detection rule"
        raise RetroHuntError(f"the rule does not load: {reasons}")
    titles = [r.title for r in engine.rules]
    title = titles[0] if len(titles) == 1 else f"{len(titles)} Sigma rules"
    return Detector(engine=engine), title


def intel_detector(text: str, feed_format: str) -> tuple[Detector, int]:
    """The detector of an indicator set given as feed text (``stix``, ``misp``, ``csv``,
    ``list``), loaded by the intel feed loaders; and how many indicators it holds."""
    suffix = FEED_FORMATS.get(feed_format)
    if suffix is None:
        raise RetroHuntError(f"format must be one of {', '.join(FEED_FORMATS)}")
    with tempfile.TemporaryDirectory(prefix="vedette-retrohunt-") as folder:
        path = Path(folder) / f"indicators{suffix}"
        path.write_text(text, encoding="utf-8")
        try:
            index = IndicatorIndex.from_feeds([FeedSpec(path, format=feed_format)])
        except VedetteError as exc:
            raise RetroHuntError(f"the indicators do not load: {exc}") from exc
    if len(index) == 0:
        raise RetroHuntError("no usable indicator in the set")
    return Detector(indicators=index), len(index)


def new_indicators(old: IndicatorIndex | None, new: IndicatorIndex | None) -> IndicatorIndex | None:
    """An index of the indicators of ``new`` that ``old`` did not have (None when none)."""
    if new is None or len(new) == 0:
        return None
    known = set() if old is None else {(i.type, i.value) for i in old.indicators()}
    fresh = IndicatorIndex(fields=new.fields)
    for indicator in new.indicators():
        if (indicator.type, indicator.value) not in known:
            fresh.add(indicator)
    return fresh if len(fresh) else None


@dataclass(slots=True)
class OnlyRules:
    """An engine whose detections are kept only for ``rule_ids``: the new rules of a reload
    share their files with rules already run (the files are loaded whole, as ``scan`` does)."""

    engine: Engine
    rule_ids: frozenset[str]

    def match(self, events: Sequence[Event]) -> list[Detection]:
        """The engine's detections of the chosen rules."""
        return [d for d in self.engine.match(events) if d.rule_id in self.rule_ids]


_FILTER_DOC: Final = re.compile(r"^filter:", re.MULTILINE)
MAX_SPEC_TEXT: Final = 4 * 1024 * 1024
"""Rule texts kept in a reload job's spec (so a queued job runs after a restart) up to this."""


def new_rule_ids(old: Detector, new: Detector) -> list[str]:
    """Ids of the detection rules ``new`` loaded and ``old`` did not (sorted)."""
    before = {r.id for r in old.engine.rules} if isinstance(old.engine, Engine) else set()
    after = {r.id for r in new.engine.rules} if isinstance(new.engine, Engine) else set()
    return sorted(after - before)


def rules_subset_detector(
    texts: Sequence[tuple[str, str]],
    rule_ids: Sequence[str],
    placeholders: dict[str, list[str]] | None = None,
) -> Detector | None:
    """The detector of ``rule_ids`` from rule ``texts`` ((path, YAML) pairs: the files holding
    them, plus every file with a Sigma filter, which applies to them as in ``scan``)."""
    result = load_rules(RuleSources(texts=list(texts)), placeholders=placeholders or {})
    engine = Engine(result, scanner="auto")
    wanted = frozenset(rule_ids) & {r.id for r in engine.rules}
    return Detector(engine=OnlyRules(engine, wanted)) if wanted else None


def new_rules_sources(
    new: Detector, rule_paths: Sequence[str], rule_ids: Sequence[str]
) -> list[tuple[str, str]]:
    """The (path, text) of the files holding ``rule_ids`` and of the filter files."""
    if not isinstance(new.engine, Engine):
        return []
    ids = set(rule_ids)
    paths = {r.path for r in new.engine.rules if r.id in ids and r.path}
    return [
        (path, text)
        for path, text in read_rule_sources(rule_paths).texts
        if path in paths or _FILTER_DOC.search(text)
    ]


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


# -- the runner ----------------------------------------------------------------------------------


@dataclass(slots=True)
class _Job:
    """What a running job needs beside its row: the detector, the caller, the cancel flag,
    and once it runs, its files' milestones."""

    id: int
    detector: Detector
    scope: Scope | None
    cancel: threading.Event = field(default_factory=threading.Event)
    milestones: Milestones = field(default_factory=lambda: Milestones(0, (), (), 0))


@dataclass(slots=True)
class _Fold:
    detection: Detection
    count: int
    first: datetime
    last: datetime


@dataclass(frozen=True, slots=True)
class Milestones:
    """How many unit-days and units a job has read after each file, for files in (unit, day)
    order (as :meth:`ParquetEventStore.files` lists them): a unit-day is read with its last
    file, a unit with its last file or at once when it has none in the range."""

    days_total: int
    days_after: tuple[int, ...]
    units_after: tuple[int, ...]
    units_without_files: int

    @classmethod
    def of(cls, files: Sequence[tuple[str, Path]], units: Iterable[str]) -> Milestones:
        """The milestones of ``files`` ((unit, path) pairs, ``day=YYYY-MM-DD`` folders)."""
        days: list[int] = []
        read: list[int] = []
        day_count = unit_count = 0
        for index, (unit, path) in enumerate(files):
            after = files[index + 1] if index + 1 < len(files) else None
            if after is None or (after[0], after[1].parent.name) != (unit, path.parent.name):
                day_count += 1
            if after is None or after[0] != unit:
                unit_count += 1
            days.append(day_count)
            read.append(unit_count)
        empty = len(set(units) - {unit for unit, _ in files})
        return cls(day_count, tuple(days), tuple(read), empty)

    def days_done(self, files_done: int) -> int:
        """Unit-days read once the first ``files_done`` files are."""
        return self.days_after[files_done - 1] if files_done > 0 else 0

    def units_done(self, files_done: int) -> int:
        """Units read once the first ``files_done`` files are."""
        read = self.units_after[files_done - 1] if files_done > 0 else 0
        return self.units_without_files + read


@dataclass(slots=True)
class RunnerStats:
    """Counters for /metrics and tests."""

    jobs_done: int = 0
    jobs_failed: int = 0
    jobs_cancelled: int = 0
    events_read: int = 0
    hits: int = 0


class RetroHuntRunner:
    """Runs retro-hunt jobs on a bounded thread pool (see the module docstring)."""

    def __init__(
        self,
        state: StateDB,
        store: ParquetEventStore,
        *,
        workers: int = 2,
        batch_rows: int = BATCH_ROWS,
        attack_kb: Enricher | None = None,
    ) -> None:
        self.state = state
        self.store = store
        self.batch_rows = batch_rows
        self.attack_kb = attack_kb
        self.stats = RunnerStats()
        self._pool = ThreadPoolExecutor(max_workers=workers, thread_name_prefix="retrohunt")
        self._jobs: dict[int, _Job] = {}
        self._futures: dict[int, Future[None]] = {}
        self._lock = threading.Lock()
        self._stopping = threading.Event()

    # -- life cycle --------------------------------------------------------------------------

    def start(self) -> None:
        """Mark jobs a previous process left running as failed; run the queued ones again."""
        with self.state.session() as session:
            for job_id in unfinished(session):
                row = session.get(RetroHunt, job_id)
                if row is None:
                    continue
                detector = None if row.status == "running" else _rebuild(row.spec)
                if detector is None:
                    row.status = "failed"
                    row.error = "interrupted: the centre stopped before the job finished"
                    row.finished_at = utcnow()
                    continue
                self._jobs[row.id] = _Job(row.id, detector, None)
        for job_id in sorted(self._jobs):
            self._futures[job_id] = self._pool.submit(self._run, self._jobs[job_id])

    def stop(self) -> None:
        """Stop every job between batches (running ones are marked failed) and wait."""
        self._stopping.set()
        with self._lock:
            for job in self._jobs.values():
                job.cancel.set()
        self._pool.shutdown(wait=True, cancel_futures=True)

    # -- jobs --------------------------------------------------------------------------------

    def submit(
        self,
        scope: Scope | None,
        *,
        owner_unit_id: int,
        kind: str,
        title: str,
        spec: dict[str, Any],
        detector: Detector,
        units: Sequence[str],
        time_from: datetime | None,
        time_to: datetime | None,
        incident_id: int | None = None,
        actor: str | None = None,
    ) -> int:
        """Record a queued job and start it when a pool thread is free; its id."""
        if self._stopping.is_set():
            raise Invalid("the centre is stopping")
        if self.attack_kb is not None and detector.attack_kb is None:
            detector.attack_kb = self.attack_kb
        with self.state.session() as session:
            if incident_id is not None:
                if scope is None:
                    raise Invalid("an automatic hunt attaches to no incident")
                attach_alerts(session, scope, incident_id, [])  # owner side, may write
            row = create_retrohunt(
                session,
                scope,
                owner_unit_id=owner_unit_id,
                kind=kind,
                title=title,
                spec=spec,
                units=list(units),
                time_from=time_from,
                time_to=time_to,
                incident_id=incident_id,
                actor=actor,
            )
            job_id = row.id
        job = _Job(job_id, detector, scope)
        with self._lock:
            self._jobs[job_id] = job
            self._futures[job_id] = self._pool.submit(self._run, job)
        return job_id

    def cancel(self, job_id: int) -> None:
        """Tell a running job to stop at its next batch (the row is marked by the caller)."""
        with self._lock:
            job = self._jobs.get(job_id)
        if job is not None:
            job.cancel.set()

    def wait(self, job_id: int, timeout: float | None = None) -> None:
        """Block until the job's thread is done (tests, benchmarks)."""
        with self._lock:
            future = self._futures.get(job_id)
        if future is not None:
            future.result(timeout)

    def _run(self, job: _Job) -> None:
        try:
            self._hunt(job)
        except Exception as exc:
            log.exception("retro-hunt %d failed", job.id)
            self.stats.jobs_failed += 1
            self._finish(job.id, "failed", error=f"{type(exc).__name__}: {exc}")
        finally:
            with self._lock:
                self._jobs.pop(job.id, None)
                self._futures.pop(job.id, None)

    def _finish(self, job_id: int, status: str, error: str | None = None) -> None:
        with self.state.session() as session:
            row = session.get(RetroHunt, job_id)
            if row is None:
                return
            row.status = status
            row.error = error
            row.finished_at = utcnow()

    def _hunt(self, job: _Job) -> None:
        with self.state.session() as session:
            row = session.get(RetroHunt, job.id)
            if row is None or row.status != "queued" or row.cancel_requested:
                return
            names = [str(u) for u in row.units or []]
            query = select(Unit.name, Unit.id).where(Unit.name.in_(names))
            unit_ids = {name: unit_id for name, unit_id in session.execute(query).tuples()}
            time_from, time_to = row.time_from, row.time_to
            incident_id = row.incident_id
            files = [
                (unit, path)
                for unit in sorted(unit_ids)
                for path in self.store.files([unit], time_from, time_to)
            ]
            job.milestones = Milestones.of(files, unit_ids)
            row.status = "running"
            row.started_at = utcnow()
            row.files_total = len(files)
            row.days_total = job.milestones.days_total
            row.units_done = job.milestones.units_done(0)
            row.progress = 0.0 if files else 1.0
            exceptions = active_exceptions(session, datetime.now(UTC))
        admits = logsource_filter(job.detector)
        for done, (unit, path) in enumerate(files, 1):
            if job.cancel.is_set():
                break
            folds: dict[str, _Fold] = {}
            events_read = hits = excepted = 0
            try:
                batches = read_listed(
                    self.store,
                    path,
                    unit,
                    time_from=time_from,
                    time_to=time_to,
                    batch_rows=self.batch_rows,
                    admits=admits,
                )
                for rows, events in batches:
                    if job.cancel.is_set():
                        break
                    events_read += rows
                    for detection in job.detector.match(events):
                        if exceptions and any(
                            matches(e, unit, detection.rule_id, detection.event.fields)
                            for e in exceptions
                        ):
                            excepted += 1
                            continue
                        hits += 1
                        _fold(folds, job.id, unit, detection)
            except FileNotFoundError:
                log.info("retro-hunt %d: %s went (retention) while it ran", job.id, path)
            self.stats.events_read += events_read
            self.stats.hits += hits
            self._commit(
                job, unit_ids[unit], unit, folds, incident_id, done, events_read, hits, excepted
            )
        if job.cancel.is_set():
            if self._stopping.is_set():
                self._finish(job.id, "failed", "interrupted: the centre stopped")
            else:
                self.stats.jobs_cancelled += 1
                self._finish(job.id, "cancelled")
            return
        self.stats.jobs_done += 1
        self._finish(job.id, "done")

    def _commit(
        self,
        job: _Job,
        unit_id: int,
        unit: str,
        folds: dict[str, _Fold],
        incident_id: int | None,
        files_done: int,
        events_read: int,
        hits: int,
        excepted: int,
    ) -> None:
        """One file's alerts and the job's progress, in one transaction."""
        found = [f.detection for f in folds.values()]
        enriched = job.detector.enrich(found) if found else found
        for fold, detection in zip(folds.values(), enriched, strict=True):
            fold.detection = detection
        with self.state.session() as session:
            row = session.get(RetroHunt, job.id)
            if row is None:
                return
            new_ids: list[int] = []
            alert_ids = list(row.alert_ids or [])
            samples = list(row.samples or [])
            for print_, fold in folds.items():
                facts = _facts(fold.detection, job.id)
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
            if new_ids and incident_id is not None and job.scope is not None:
                attach_alerts(session, job.scope, incident_id, new_ids)
            row.alert_ids = alert_ids
            row.samples = samples
            row.files_done = files_done
            row.days_done = job.milestones.days_done(files_done)
            row.units_done = job.milestones.units_done(files_done)
            row.progress = files_done / row.files_total if row.files_total else 1.0
            row.events_read += events_read
            row.hits += hits
            row.excepted += excepted


def _fold(folds: dict[str, _Fold], job_id: int, unit: str, detection: Detection) -> None:
    key = {**key_fields(detection), "retrohunt": job_id}
    print_ = fingerprint(detection.rule_id, unit, key)
    when = detection.event.timestamp or datetime.now(UTC)
    fold = folds.get(print_)
    if fold is None:
        folds[print_] = _Fold(detection, 1, when, when)
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


def _rebuild(spec: dict[str, Any]) -> Detector | None:
    """The detector of a queued job from its stored spec (None when it cannot be rebuilt)."""
    try:
        if spec.get("source") == "rules-reload":
            texts = [(str(p), str(t)) for p, t in spec.get("texts") or []]
            ids = [str(i) for i in spec.get("rule_ids") or []]
            holders = {
                str(k): [str(x) for x in v] for k, v in (spec.get("placeholders") or {}).items()
            }
            return rules_subset_detector(texts, ids, holders) if texts else None
        if "rule" in spec:
            return sigma_detector(str(spec["rule"]))[0]
        if "indicators" in spec and isinstance(spec["indicators"], str):
            return intel_detector(spec["indicators"], str(spec.get("format", "list")))[0]
    except RetroHuntError:
        return None
    return None


def lookback(days: float, now: datetime | None = None) -> tuple[datetime, datetime]:
    """``(now - days, now)``: the range an automatic hunt covers."""
    end = now or datetime.now(UTC)
    return end - timedelta(days=days), end


def hunt_new_indicators(
    runner: RetroHuntRunner,
    old: Detector,
    new: Detector,
    *,
    lookback_days: float,
    exclude_units: Sequence[str] = (),
    target_units: Sequence[str] | None = None,
) -> int | None:
    """After a feed reload: start a retro-hunt of the indicators ``new`` has and ``old`` had
    not, over every unit (but ``exclude_units``; only ``target_units`` when given) for
    ``lookback_days``, owned by the centre (the root unit). The job id, or None when nothing
    is new."""
    before = old.indicators if isinstance(old.indicators, IndicatorIndex) else None
    after = new.indicators if isinstance(new.indicators, IndicatorIndex) else None
    fresh = new_indicators(before, after)
    if fresh is None:
        return None
    root, units = _unit_targets(runner, exclude_units, target_units)
    if root is None or not units:
        return None
    time_from, time_to = lookback(lookback_days)
    sample = sorted(f"{i.type}:{i.value}" for i in fresh.indicators())[:20]
    return runner.submit(
        None,
        owner_unit_id=root,
        kind="intel",
        title=f"{len(fresh)} new indicators (feed reload)",
        spec={"source": "reload", "count": len(fresh), "sample": sample},
        detector=Detector(indicators=fresh),
        units=units,
        time_from=time_from,
        time_to=time_to,
        actor="retrohunt:reload",
    )


def _unit_targets(
    runner: RetroHuntRunner, exclude_units: Sequence[str], target_units: Sequence[str] | None
) -> tuple[int | None, list[str]]:
    """The root unit's id and the units an automatic hunt reads (policy filters applied)."""
    with runner.state.session(readonly=True) as session:
        rows = session.execute(select(Unit.id, Unit.name, Unit.parent_id)).all()
    root = next((unit_id for unit_id, _, parent in rows if parent is None), None)
    units = [
        name
        for _, name, _ in rows
        if name not in exclude_units and (target_units is None or name in target_units)
    ]
    return root, units


def hunt_new_rules(
    runner: RetroHuntRunner,
    old: Detector,
    new: Detector,
    *,
    rule_paths: Sequence[str],
    placeholders: Path | None = None,
    lookback_days: float,
    exclude_units: Sequence[str] = (),
    target_units: Sequence[str] | None = None,
) -> int | None:
    """After a rules reload: start a retro-hunt of the detection rules ``new`` has and ``old``
    had not (by rule id), over every unit (policy filters as for indicators) for
    ``lookback_days``, owned by the centre. The job id, or None when no rule is new."""
    fresh = new_rule_ids(old, new)
    if not fresh:
        return None
    root, units = _unit_targets(runner, exclude_units, target_units)
    if root is None or not units:
        return None
    texts = new_rules_sources(new, rule_paths, fresh)
    holders = load_placeholders(placeholders)
    detector = rules_subset_detector(texts, fresh, holders)
    if detector is None:
        return None
    spec: dict[str, Any] = {"source": "rules-reload", "count": len(fresh), "rule_ids": fresh}
    if sum(len(t) for _, t in texts) <= MAX_SPEC_TEXT:
        spec["texts"] = [list(pair) for pair in texts]
        spec["placeholders"] = holders
    time_from, time_to = lookback(lookback_days)
    return runner.submit(
        None,
        owner_unit_id=root,
        kind="sigma",
        title=f"{len(fresh)} new rules (rules reload)",
        spec=spec,
        detector=detector,
        units=units,
        time_from=time_from,
        time_to=time_to,
        actor="retrohunt:reload",
    )
