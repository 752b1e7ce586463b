"""Retro-hunts on the work queue (scale-out mode): jobs split per unit and day, run by workers.

Two halves of one :class:`~vedette.server.retrohunt.HuntRunner`:

- :class:`QueuedHuntRunner` (the api role, and whatever role reloads rules): ``submit`` records
  the job and one task per (unit, day) of stored events in its range in one transaction
  (:mod:`vedette.store.state.retrohunt_tasks`), then publishes a message per task
  (:mod:`vedette.store.huntqueue`) and marks them queued. A publish that fails leaves the tasks
  ``pending``; a sweep (at start, then every 30 s) publishes pending tasks again (idempotent
  by message id). ``cancel`` skips the tasks nobody took and purges their messages; running
  tasks see the cancel at their next batch. Progress is read from PostgreSQL as before.
- :class:`HuntTaskPool` (every worker process; one thread by default so detection is not
  starved): pulls a task, claims its row, rebuilds the job's detector from its spec (cached per
  thread), reads that unit's files of that day with in-progress heartbeats, then commits the
  hits (alerts upserted by fingerprint, attached as the embedded runner does), the task
  ``done`` and the job's progress in **one transaction under the job row's lock**, and only
  then acknowledges. A redelivery (the worker died, stalled past the ack wait, or the ack was
  lost) finds the task done and only acknowledges, so nothing is counted or raised twice. A
  failing task is retried after 5 s and, after ``max_attempts``, recorded ``failed`` with its
  reason; the job then ends ``failed`` (the other tasks' hits stay). A stopping worker gives
  its running task back at its next batch (``queued``, delivered again at once).

The same queue and threads run the tasks of the coordinator's early-warning searches
(:mod:`vedette.server.warning_tasks`): a task whose job is of kind ``warning`` runs one
observable search over its unit-day instead of a detector.
"""

from __future__ import annotations

import logging
import threading
import time
from collections import OrderedDict
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, date, datetime
from typing import Any

from sqlalchemy import select

from vedette.pipeline.detector import Detector, Enricher
from vedette.server.hunt_scan import (
    BATCH_ROWS,
    Found,
    enrich_found,
    logsource_filter,
    record_hits,
    scan_files,
)
from vedette.server.retrohunt import caller_scope, can_rebuild, rebuild_detector, record_job
from vedette.server.warning_tasks import is_warning_task, run_warning_task
from vedette.store.eventstore import ParquetEventStore
from vedette.store.huntqueue import HuntMessage, HuntQueue, HuntQueueUnavailable, TaskRef
from vedette.store.state.db import StateDB
from vedette.store.state.exceptions import active_exceptions
from vedette.store.state.models import Unit
from vedette.store.state.retrohunt_tasks import (
    TASK_FINISHED,
    TaskWork,
    add_tasks,
    claim_task,
    fail_locked,
    finish_job_if_complete,
    lock_job,
    lock_task,
    mark_queued,
    note_error,
    pending_tasks,
    release_task,
    skip_unstarted,
    task_ran,
)
from vedette.store.state.retrohunts import FINISHED, RetroHunt
from vedette.store.state.scope import Invalid, Scope

__all__ = ["HuntTaskPool", "QueuedHuntRunner"]

log = logging.getLogger("vedette.hunt_tasks")

RETRY_DELAY_S = 5.0
CACHED_DETECTORS = 4


def _day(moment: datetime | None) -> str | None:
    if moment is None:
        return None
    aware = moment.replace(tzinfo=UTC) if moment.tzinfo is None else moment.astimezone(UTC)
    return aware.date().isoformat()


class QueuedHuntRunner:
    """The api side: split, record, publish, cancel (see the module docstring)."""

    def __init__(
        self,
        state: StateDB,
        store: ParquetEventStore,
        queue: HuntQueue,
        *,
        sweep_seconds: float = 30.0,
    ) -> None:
        self.state = state
        self.store = store
        self.queue = queue
        self.sweep_seconds = sweep_seconds
        self._stopping = threading.Event()
        self._sweeper: threading.Thread | None = None

    def start(self) -> None:
        """Publish what a previous process recorded but did not get acknowledged, now and
        every ``sweep_seconds`` (in a thread: start-up does not wait for NATS)."""
        self._sweeper = threading.Thread(target=self._sweep, name="hunt-sweep", daemon=True)
        self._sweeper.start()

    def stop(self) -> None:
        """Stop the sweep and close the queue (the jobs go on in the workers)."""
        self._stopping.set()
        if self._sweeper is not None:
            self._sweeper.join(30.0)
        self.queue.close()

    def _sweep(self) -> None:
        while not self._stopping.is_set():
            try:
                self.publish_pending()
            except Exception:
                log.exception("could not publish pending retro-hunt tasks; trying again later")
            self._stopping.wait(self.sweep_seconds)

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
        """Record the job and its tasks, publish them; the job id. ``detector`` is not sent:
        the workers rebuild it from ``spec``."""
        if self._stopping.is_set():
            raise Invalid("the centre is stopping")
        if not can_rebuild(spec):
            raise Invalid("this hunt is too large to hand to the workers (see docs/scale-out.md)")
        low, high = _day(time_from), _day(time_to)
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
            query = select(Unit.name, Unit.id).where(Unit.name.in_(list(units)))
            unit_ids = {name: unit_id for name, unit_id in session.execute(query).tuples()}
            parts = [
                (unit_ids[unit], unit, day)
                for unit in sorted(unit_ids)
                for day in self.store.days(unit)
                if (low is None or day >= low) and (high is None or day <= high)
            ]
            task_ids = add_tasks(session, row, parts)
            job_id, created = row.id, row.created_at
        self.publish([TaskRef(job_id, task_id, created) for task_id in task_ids])
        return job_id

    def publish(self, refs: Sequence[TaskRef]) -> None:
        """Publish recorded tasks and mark them queued; those the queue did not acknowledge
        stay pending for the sweep."""
        if not refs:
            return
        try:
            self.queue.publish(refs)
        except HuntQueueUnavailable as exc:
            log.warning(
                "%d retro-hunt tasks not published yet (%s): the sweep retries", len(refs), exc
            )
            return
        with self.state.session() as session:
            mark_queued(session, [r.task_id for r in refs])

    def publish_pending(self) -> int:
        """Publish the tasks recorded but never acknowledged by the queue; how many."""
        with self.state.session(readonly=True) as session:
            rows = pending_tasks(session)
        self.publish([TaskRef(job, task, created) for job, task, created in rows])
        return len(rows)

    def cancel(self, job_id: int) -> None:
        """Skip the job's tasks no worker took and drop their messages; the job is cancelled
        now when none runs, else by the last running task at its next batch."""
        with self.state.session() as session:
            job = lock_job(session, job_id)
            if job is None:
                return
            skip_unstarted(session, job)
            finish_job_if_complete(session, job)
        try:
            self.queue.purge_job(job_id)
        except HuntQueueUnavailable as exc:  # the workers skip them on delivery anyway
            log.warning("retro-hunt %d: messages not purged: %s", job_id, exc)

    def wait(self, job_id: int, timeout: float | None = None) -> None:
        """Poll the job's row until it is finished (tests, benchmarks)."""
        deadline = None if timeout is None else time.monotonic() + timeout
        while deadline is None or time.monotonic() < deadline:
            with self.state.session(readonly=True) as session:
                status = session.scalar(select(RetroHunt.status).where(RetroHunt.id == job_id))
            if status is None or status in FINISHED:
                return
            time.sleep(0.2)
        raise TimeoutError(f"retro-hunt {job_id} not finished in {timeout} s")


@dataclass(slots=True)
class PoolStats:
    """Counters of one worker's task pool (logs and tests)."""

    tasks_done: int = 0
    tasks_failed: int = 0
    tasks_discarded: int = 0
    """Tasks this worker ran whose row another worker had finished first (a redelivery)."""
    events_read: int = 0
    hits: int = 0


class _StopCheck:
    """Asked between batches: the pool is stopping, or the job was cancelled (read from the
    job row at most every ``poll_s``)."""

    def __init__(
        self, state: StateDB, job_id: int, stopping: threading.Event, poll_s: float
    ) -> None:
        self.state = state
        self.job_id = job_id
        self.stopping = stopping
        self.poll_s = poll_s
        self.cancelled = False
        self._checked = time.monotonic()

    def __call__(self) -> bool:
        if self.stopping.is_set():
            return True
        now = time.monotonic()
        if not self.cancelled and now - self._checked >= self.poll_s:
            self._checked = now
            with self.state.session(readonly=True) as session:
                query = select(RetroHunt.cancel_requested).where(RetroHunt.id == self.job_id)
                self.cancelled = bool(session.scalar(query))
        return self.cancelled


class _Heartbeat:
    """Tells JetStream the task is in progress every ``interval`` seconds while it runs."""

    def __init__(self, msg: HuntMessage, interval: float) -> None:
        self.msg = msg
        self.interval = interval
        self._done = threading.Event()
        self._thread = threading.Thread(target=self._beat, name="hunt-heartbeat", daemon=True)

    def __enter__(self) -> _Heartbeat:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._done.set()
        self._thread.join(30.0)

    def _beat(self) -> None:
        while not self._done.wait(self.interval):
            try:
                self.msg.in_progress()
            except Exception as exc:  # the next beat may get through; redelivery is harmless
                log.warning("retro-hunt task %d: heartbeat not sent: %s", self.msg.task_id, exc)


class HuntTaskPool:
    """The worker side: a few threads running tasks from the queue (see the module doc)."""

    def __init__(
        self,
        state: StateDB,
        store: ParquetEventStore,
        queue: HuntQueue,
        *,
        owner: str,
        threads: int = 1,
        attack_kb: Enricher | None = None,
        batch_rows: int = BATCH_ROWS,
        cancel_poll_s: float = 1.0,
    ) -> None:
        self.state = state
        self.store = store
        self.queue = queue
        self.owner = owner
        self.threads = threads
        self.attack_kb = attack_kb
        self.batch_rows = batch_rows
        self.cancel_poll_s = cancel_poll_s
        self.stats = PoolStats()
        self._stopping = threading.Event()
        self._threads: list[threading.Thread] = []

    def start(self) -> None:
        """Start the puller threads."""
        for n in range(self.threads):
            thread = threading.Thread(target=self._loop, name=f"hunt-task-{n}", daemon=True)
            thread.start()
            self._threads.append(thread)

    def stop(self, timeout: float = 60.0) -> None:
        """Stop pulling; a running task stops at its next batch and is given back."""
        self._stopping.set()
        for thread in self._threads:
            thread.join(timeout)
        self.queue.close()

    def _loop(self) -> None:
        detectors: OrderedDict[int, Detector | None] = OrderedDict()
        subscription = None
        while not self._stopping.is_set():
            try:
                if subscription is None:
                    subscription = self.queue.subscribe()
                msg = subscription.fetch(timeout=1.0)
            except HuntQueueUnavailable as exc:
                log.warning("retro-hunt queue: %s; retrying", exc)
                subscription = None
                self._stopping.wait(2.0)
                continue
            if msg is None:
                continue
            try:
                self._handle(msg, detectors)
            except Exception:
                log.exception("retro-hunt task %d of job %d: not finished", msg.task_id, msg.job_id)
                try:
                    msg.nak(delay=RETRY_DELAY_S)
                except Exception:
                    log.warning("retro-hunt task %d: nak not sent (redelivered later)", msg.task_id)

    def _detector(
        self, work: TaskWork, cache: OrderedDict[int, Detector | None]
    ) -> Detector | None:
        # Per thread: a compiled engine's scan scratch space is for one thread at a time.
        if work.job_id in cache:
            cache.move_to_end(work.job_id)
            return cache[work.job_id]
        detector = rebuild_detector(work.spec)
        if detector is not None and detector.attack_kb is None:
            detector.attack_kb = self.attack_kb
        cache[work.job_id] = detector
        while len(cache) > CACHED_DETECTORS:
            cache.popitem(last=False)
        return detector

    def _handle(self, msg: HuntMessage, cache: OrderedDict[int, Detector | None]) -> None:
        limit = self.queue.config.max_attempts
        with self.state.session() as session:
            work = claim_task(
                session,
                msg.job_id,
                msg.task_id,
                worker=self.owner,
                attempt=msg.delivered,
                max_attempts=limit,
            )
        if work is None:
            msg.ack()
            return
        if is_warning_task(work):
            self._handle_warning(msg, work)
            return
        detector = self._detector(work, cache)
        if detector is None:
            self._fail(work, "the job's rule or indicators cannot be rebuilt from its spec")
            msg.ack()
            return
        check = _StopCheck(self.state, work.job_id, self._stopping, self.cancel_poll_s)
        try:
            with _Heartbeat(msg, self.queue.config.ack_wait / 3):
                found = self._scan(work, detector, check)
                if found.stopped and not check.cancelled:  # this worker is stopping
                    with self.state.session() as session:
                        release_task(session, work.job_id, work.task_id, self.owner)
                    msg.nak()
                    return
                committed = self._commit(work, detector, found, check.cancelled)
        except Exception as exc:
            reason = f"{type(exc).__name__}: {exc}"
            log.exception("retro-hunt task %d (%s %s) failed", work.task_id, work.unit, work.day)
            if msg.delivered >= limit:
                self._fail(work, f"failed {limit} times; last: {reason}")
                msg.ack()
            else:
                with self.state.session() as session:
                    note_error(session, work.job_id, work.task_id, reason)
                msg.nak(delay=RETRY_DELAY_S)
            return
        msg.ack()
        if committed:
            self.stats.tasks_done += 1
            self.stats.events_read += found.events_read
            self.stats.hits += found.hits
        else:
            self.stats.tasks_discarded += 1

    def _handle_warning(self, msg: HuntMessage, work: TaskWork) -> None:
        """An early-warning task (vedette.server.warning_tasks): one query, no detector."""
        limit = self.queue.config.max_attempts
        try:
            with _Heartbeat(msg, self.queue.config.ack_wait / 3):
                committed, hits = run_warning_task(self.state, self.store, work, worker=self.owner)
        except Exception as exc:
            reason = f"{type(exc).__name__}: {getattr(exc, 'reason', exc)}"
            log.exception("early-warning task %d (%s %s) failed", work.task_id, work.unit, work.day)
            if msg.delivered >= limit:
                self._fail(work, f"failed {limit} times; last: {reason}")
                msg.ack()
            else:
                with self.state.session() as session:
                    note_error(session, work.job_id, work.task_id, reason)
                msg.nak(delay=RETRY_DELAY_S)
            return
        msg.ack()
        if committed:
            self.stats.tasks_done += 1
            self.stats.hits += hits
        else:
            self.stats.tasks_discarded += 1

    def _scan(self, work: TaskWork, detector: Detector, check: _StopCheck) -> Found:
        day = date.fromisoformat(work.day)
        moment = datetime(day.year, day.month, day.day, tzinfo=UTC)
        paths = self.store.files([work.unit], moment, moment)
        with self.state.session(readonly=True) as session:
            exceptions = active_exceptions(session, datetime.now(UTC))
        return scan_files(
            work.job_id,
            detector,
            self.store,
            work.unit,
            paths,
            time_from=work.time_from,
            time_to=work.time_to,
            exceptions=exceptions,
            admits=logsource_filter(detector),
            batch_rows=self.batch_rows,
            stop=check,
        )

    def _commit(self, work: TaskWork, detector: Detector, found: Found, cancelled: bool) -> bool:
        """Hits, task row and job progress in one transaction; False when another worker
        finished the task first (this run is dropped)."""
        enrich_found(detector, found)
        scope = caller_scope(work.spec.get("caller"))
        with self.state.session() as session:
            job = lock_job(session, work.job_id)
            task = lock_task(session, job, work.task_id) if job is not None else None
            if job is None or task is None or task.status in TASK_FINISHED:
                return False
            record_hits(
                session, job, unit_id=work.unit_id, unit=work.unit, found=found, scope=scope
            )
            task_ran(
                session,
                job,
                task,
                worker=self.owner,
                status="cancelled" if cancelled else "done",
                events_read=found.events_read,
                hits=found.hits,
                excepted=found.excepted,
            )
            finish_job_if_complete(session, job)
        return True

    def _fail(self, work: TaskWork, reason: str) -> None:
        with self.state.session() as session:
            job = lock_job(session, work.job_id)
            task = lock_task(session, job, work.task_id) if job is not None else None
            if job is not None and task is not None and task.status not in TASK_FINISHED:
                fail_locked(session, job, task, reason)
        self.stats.tasks_failed += 1
