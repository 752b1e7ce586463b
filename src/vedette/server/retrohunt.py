"""Retro-hunt: one Sigma rule or indicator set over the stored events of chosen units, later.

A job reads the Parquet files of its units for the days of its time range
(:meth:`ParquetEventStore.files`, one file per unit, day and flush, or per merge of the
compactor), in Arrow record batches,
turns each batch back into :class:`~vedette.events.Event` objects and matches them with the same
:class:`~vedette.pipeline.Detector` stage as ``vedette scan`` and the worker: the Sigma engine
built from the rule's YAML, or the indicator index built by the intel feed loaders. Hits pass
the unit's rule exceptions and become alerts in the unit of the event, one per fingerprint and
job (the job id is part of the fingerprint and of ``matched``), optionally attached to an
incident (:mod:`vedette.server.hunt_scan`). Each file's alerts commit with the job's progress
(files, and the unit-days and units read so far: :class:`Milestones`) in one transaction; a
cancel is seen between batches.

Two runners behind one interface (:class:`HuntRunner`), chosen like the spool: the embedded
:class:`RetroHuntRunner` here runs jobs on a small thread pool (``workers``, 2 by default)
beside the worker; a job that was running when the centre stopped is marked failed on the next
start (its alerts so far stay), a queued one runs. The scale-out mode splits a job into tasks
per unit and day on a JetStream work queue run by the workers
(:mod:`vedette.server.hunt_tasks`); that runner rebuilds a job's detector from its stored
``spec`` (:func:`rebuild_detector`), so every job keeps what it hunts there.
"""

from __future__ import annotations

import logging
import re
import tempfile
import threading
from collections.abc import Iterable, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any, Final, Protocol

from sqlalchemy import select
from sqlalchemy.orm import Session

from vedette.detect import Engine
from vedette.detect.loader import RuleSources, load_placeholders, load_rules, read_rule_sources
from vedette.errors import VedetteError
from vedette.events import AttackRef
from vedette.intel import FeedSpec, IndicatorIndex
from vedette.intel.model import Indicator, IndicatorInfo
from vedette.pipeline.detector import Detector, Enricher
from vedette.server.hunt_scan import (
    BATCH_ROWS,
    Found,
    OnlyRules,
    enrich_found,
    logsource_filter,
    read_events,
    read_listed,
    record_hits,
    scan_files,
)
from vedette.store.eventstore import ParquetEventStore
from vedette.store.state.db import StateDB
from vedette.store.state.exceptions import active_exceptions
from vedette.store.state.incidents import attach_alerts
from vedette.store.state.models import Unit, utcnow
from vedette.store.state.retrohunts import RetroHunt, create_retrohunt, unfinished
from vedette.store.state.scope import Invalid, Principal, Role, Scope

__all__ = [
    "HuntRunner",
    "OnlyRules",
    "RetroHuntError",
    "RetroHuntRunner",
    "caller_record",
    "caller_scope",
    "can_rebuild",
    "hunt_new_indicators",
    "hunt_new_rules",
    "indicator_records",
    "indicators_from_records",
    "intel_detector",
    "read_events",
    "read_listed",
    "rebuild_detector",
    "sigma_detector",
]

log = logging.getLogger("vedette.retrohunt")

FEED_FORMATS: Final = {"stix": ".json", "misp": ".json", "csv": ".csv", "list": ".txt"}


class HuntRunner(Protocol):
    """What the routes and the reload hunts need of a runner (embedded or work queue)."""

    state: StateDB

    def start(self) -> None:
        """Take up what a previous process left."""
        ...

    def stop(self) -> None:
        """Stop; what runs here stops at its next batch."""
        ...

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
        """Record a queued job and have it run; its id."""
        ...

    def cancel(self, job_id: int) -> None:
        """Stop a job (the route has marked its row ``cancel_requested``)."""
        ...

    def wait(self, job_id: int, timeout: float | None = None) -> None:
        """Block until the job is finished (tests, benchmarks)."""
        ...


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
                detector = None if row.status == "running" else rebuild_detector(row.spec)
                if detector is None:
                    row.status = "failed"
                    row.error = "interrupted: the centre stopped before the job finished"
                    row.finished_at = utcnow()
                    continue
                self._jobs[row.id] = _Job(row.id, detector, caller_scope(row.spec.get("caller")))
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
            row = record_job(
                session,
                scope,
                owner_unit_id=owner_unit_id,
                kind=kind,
                title=title,
                spec=spec,
                units=units,
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
            found = scan_files(
                job.id,
                job.detector,
                self.store,
                unit,
                [path],
                time_from=time_from,
                time_to=time_to,
                exceptions=exceptions,
                admits=admits,
                batch_rows=self.batch_rows,
                stop=job.cancel.is_set,
            )
            self.stats.events_read += found.events_read
            self.stats.hits += found.hits
            self._commit(job, unit_ids[unit], unit, found, done)
        if job.cancel.is_set():
            if self._stopping.is_set():
                self._finish(job.id, "failed", "interrupted: the centre stopped")
            else:
                self.stats.jobs_cancelled += 1
                self._finish(job.id, "cancelled")
            return
        self.stats.jobs_done += 1
        self._finish(job.id, "done")

    def _commit(self, job: _Job, unit_id: int, unit: str, found: Found, files_done: int) -> None:
        """One file's alerts and the job's progress, in one transaction."""
        enrich_found(job.detector, found)
        with self.state.session() as session:
            row = session.get(RetroHunt, job.id)
            if row is None:
                return
            record_hits(session, row, unit_id=unit_id, unit=unit, found=found, scope=job.scope)
            row.files_done = files_done
            row.days_done = job.milestones.days_done(files_done)
            row.units_done = job.milestones.units_done(files_done)
            row.progress = files_done / row.files_total if row.files_total else 1.0


def rebuild_detector(spec: dict[str, Any]) -> Detector | None:
    """The detector of a job from its stored spec (None when it cannot be rebuilt)."""
    try:
        if spec.get("source") == "rules-reload":
            texts = [(str(p), str(t)) for p, t in spec.get("texts") or []]
            ids = [str(i) for i in spec.get("rule_ids") or []]
            holders = {
                str(k): [str(x) for x in v] for k, v in (spec.get("placeholders") or {}).items()
            }
            return rules_subset_detector(texts, ids, holders) if texts else None
        if spec.get("source") == "reload" and isinstance(spec.get("indicator_set"), list):
            index = indicators_from_records(spec["indicator_set"])
            return Detector(indicators=index) if len(index) else None
        if "rule" in spec:
            return sigma_detector(str(spec["rule"]))[0]
        if "indicators" in spec and isinstance(spec["indicators"], str):
            return intel_detector(spec["indicators"], str(spec.get("format", "list")))[0]
    except (RetroHuntError, ValueError, TypeError, KeyError):
        return None
    return None


def can_rebuild(spec: dict[str, Any]) -> bool:
    """Whether ``spec`` holds what :func:`rebuild_detector` needs (without building it)."""
    if spec.get("source") == "rules-reload":
        return bool(spec.get("texts"))
    if spec.get("source") == "reload":
        return isinstance(spec.get("indicator_set"), list)
    return "rule" in spec or isinstance(spec.get("indicators"), str)


MAX_SPEC_INDICATORS: Final = 20_000
"""New indicators of a feed reload kept in the job's spec (about 4 MiB) so it can be rebuilt."""


def indicator_records(index: IndicatorIndex) -> list[dict[str, Any]]:
    """The indicators of ``index`` as JSON-able records (:func:`indicators_from_records`)."""
    out: list[dict[str, Any]] = []
    for indicator in index.indicators():
        info = indicator.info
        record: dict[str, Any] = {
            "type": indicator.type,
            "value": indicator.value,
            "source": info.source,
            "id": info.id,
            "reference": info.reference,
            "description": info.description,
            "confidence": info.confidence,
            "level": info.level,
            "valid_from": None if info.valid_from is None else info.valid_from.isoformat(),
            "valid_until": None if info.valid_until is None else info.valid_until.isoformat(),
            "labels": list(info.labels),
            "tags": list(info.tags),
            "attack": [[a.technique_id, a.name, list(a.tactics)] for a in info.attack],
            "requires": [list(pair) for pair in info.requires],
        }
        out.append({k: v for k, v in record.items() if v not in (None, [])})
    return out


def indicators_from_records(records: Sequence[dict[str, Any]]) -> IndicatorIndex:
    """An index of the indicators :func:`indicator_records` wrote."""
    index = IndicatorIndex()
    for r in records:
        info = IndicatorInfo(
            source=str(r.get("source", "")),
            id=r.get("id"),
            reference=r.get("reference"),
            description=r.get("description"),
            confidence=r.get("confidence"),
            level=r.get("level"),
            valid_from=_when(r.get("valid_from")),
            valid_until=_when(r.get("valid_until")),
            labels=tuple(str(x) for x in r.get("labels", ())),
            tags=tuple(str(x) for x in r.get("tags", ())),
            attack=tuple(
                AttackRef(str(t), str(name), tuple(str(x) for x in tactics))
                for t, name, tactics in r.get("attack", ())
            ),
            requires=tuple((str(k), str(v)) for k, v in r.get("requires", ())),
        )
        index.add(Indicator(str(r["type"]), str(r["value"]), info))
    return index


def _when(text: Any) -> datetime | None:
    return None if text is None else datetime.fromisoformat(str(text))


def caller_record(scope: Scope) -> dict[str, Any]:
    """Who started a job, kept in its spec so a worker elsewhere acts with the same scope
    (attaching hits to the caller's incident)."""
    p = scope.principal
    return {
        "kind": p.kind,
        "id": p.id,
        "name": p.name,
        "unit_id": p.unit_id,
        "unit_name": p.unit_name,
        "role": p.role.value,
        "unit_ids": sorted(scope.unit_ids),
    }


def record_job(
    session: Session,
    scope: Scope | None,
    *,
    owner_unit_id: int,
    kind: str,
    title: str,
    spec: dict[str, Any],
    units: Sequence[str],
    time_from: datetime | None,
    time_to: datetime | None,
    incident_id: int | None,
    actor: str | None,
) -> RetroHunt:
    """Record a hunt job in ``session`` (audited), for the thread pool or the workers' queue:
    its spec keeps the caller (``caller_record``: its scope is rebuilt after a restart or on
    a worker), and a job for an incident is attached to it only by the incident's owner side
    (``None``: an automatic hunt, which attaches to none)."""
    if scope is not None:
        spec = {**spec, "caller": caller_record(scope)}
    if incident_id is not None:
        if scope is None:
            raise Invalid("an automatic hunt attaches to no incident")
        attach_alerts(session, scope, incident_id, [])  # owner side, may write
    return create_retrohunt(
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


def caller_scope(record: Any) -> Scope | None:
    """The scope :func:`caller_record` wrote (None for the centre's own jobs)."""
    if not isinstance(record, dict):
        return None
    principal = Principal(
        kind="user" if record.get("kind") == "user" else "token",
        id=int(record["id"]),
        name=str(record["name"]),
        unit_id=int(record["unit_id"]),
        unit_name=str(record["unit_name"]),
        role=Role(str(record["role"])),
    )
    return Scope(principal, frozenset(int(u) for u in record.get("unit_ids", ())))


def lookback(days: float, now: datetime | None = None) -> tuple[datetime, datetime]:
    """``(now - days, now)``: the range an automatic hunt covers."""
    end = now or datetime.now(UTC)
    return end - timedelta(days=days), end


def hunt_new_indicators(
    runner: HuntRunner,
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
    spec: dict[str, Any] = {"source": "reload", "count": len(fresh), "sample": sample}
    if len(fresh) <= MAX_SPEC_INDICATORS:
        spec["indicator_set"] = indicator_records(fresh)
    return runner.submit(
        None,
        owner_unit_id=root,
        kind="intel",
        title=f"{len(fresh)} new indicators (feed reload)",
        spec=spec,
        detector=Detector(indicators=fresh),
        units=units,
        time_from=time_from,
        time_to=time_to,
        actor="retrohunt:reload",
    )


def _unit_targets(
    runner: HuntRunner, exclude_units: Sequence[str], target_units: Sequence[str] | None
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
    runner: HuntRunner,
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
