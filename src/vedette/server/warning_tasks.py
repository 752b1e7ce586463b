"""Early-warning searches on the work queue (scale-out mode): one task per unit and day.

The coordinator's search of an alert's observables (:mod:`vedette.alerts.warning`, step 2)
becomes a job of kind ``warning`` in the retro-hunt tables, split like a retro-hunt into one
task per (target unit, day of stored events in the look-back) and published on the same
JetStream work queue (:mod:`vedette.store.huntqueue`), so the workers' hunt threads
(:class:`vedette.server.hunt_tasks.HuntTaskPool`) run them in parallel:

- :class:`QueuedWarningSearch` (the coordinator's side) records the job and its tasks, publishes
  them through the retro-hunt runner (its sweep publishes again what was not acknowledged;
  without a runner, in a process with no NATS connection, an api's sweep publishes them),
  polls the job until it is finished, then merges the tasks' results per unit
  (:func:`vedette.alerts.warning.merge_found`, oldest day first) into what the in-process
  search gives. The job is named after the alert, so a coordinator that stopped or died
  mid-search finds it again on its next start instead of searching twice; and a unique index
  on the warning jobs' titles (migration 0019) keeps it one job when two coordinators race
  for the alert (one stalled past its duty lease, and the new holder).
- :func:`run_warning_task` (a worker's side) runs :func:`vedette.alerts.warning.find_hits`
  over that unit's files of that day (the job's time range cut to the day) and commits the
  result on the task row, the task ``done`` and the job's progress in one transaction under the
  job's lock, as retro-hunt tasks do.

The job is owned by the root unit (the centre): it shows in the retro-hunt API of the centre's
users with its progress, and a cancel there stops it (tasks not yet taken are skipped). A unit
whose tasks all ran is ``found`` or ``absent``; one with a failed or skipped task is never
``absent`` (nothing is said of days not searched), a failure is the search's error for that
unit, and hits of its days that ran still warn it.
"""

from __future__ import annotations

import logging
import threading
import time
from collections import defaultdict
from datetime import UTC, date, datetime, timedelta
from typing import TYPE_CHECKING, Any, Final

from sqlalchemy import select
from sqlalchemy.exc import IntegrityError

from vedette.alerts.warning import SearchResult, SearchStopped, UnitFound, find_hits, merge_found
from vedette.store.eventstore import ParquetEventStore
from vedette.store.huntqueue import TaskRef
from vedette.store.state.db import StateDB
from vedette.store.state.models import Unit
from vedette.store.state.retrohunt_tasks import (
    TASK_FINISHED,
    TaskWork,
    add_tasks,
    finish_job_if_complete,
    job_tasks,
    lock_job,
    lock_task,
    task_ran,
)
from vedette.store.state.retrohunts import FINISHED, WARNING_KIND, RetroHunt, create_retrohunt

if TYPE_CHECKING:  # hunt_tasks runs this module's tasks: no import cycle at run time
    from vedette.server.hunt_tasks import QueuedHuntRunner

__all__ = ["QueuedWarningSearch", "is_warning_task", "run_warning_task"]

log = logging.getLogger("vedette.warning_tasks")

POLL_SECONDS: Final = 0.5
REPORT_SECONDS: Final = 60.0


def job_title(alert_id: int) -> str:
    """The job's title, also how a restarted coordinator finds it again."""
    return f"Early warning: observables of alert {alert_id}"


def is_warning_task(work: TaskWork) -> bool:
    """True for a task of an early-warning job (its spec says so)."""
    return work.spec.get("kind") == WARNING_KIND


class QueuedWarningSearch:
    """The coordinator's search step on the work queue (see the module docstring)."""

    def __init__(
        self, state: StateDB, store: ParquetEventStore, hunts: QueuedHuntRunner | None
    ) -> None:
        """``hunts`` publishes the tasks; None in a process without NATS: the tasks stay
        ``pending`` until an api's sweep publishes them (within its 30 s)."""
        self.state = state
        self.store = store
        self.hunts = hunts

    def search(
        self,
        alert_id: int,
        observables: list[dict[str, Any]],
        units: list[str],
        *,
        time_from: datetime,
        time_to: datetime,
        max_hits: int,
        stop: threading.Event,
    ) -> SearchResult:
        """Record and publish the job (or find the one of an earlier try), wait for it, merge."""
        if not units or not any(o.get("value") for o in observables):
            return SearchResult(absent=list(units))
        job_id = self._job(alert_id, observables, units, time_from, time_to, max_hits)
        self._wait(job_id, stop)
        return self._collect(job_id, units, max_hits)

    def _job(
        self,
        alert_id: int,
        observables: list[dict[str, Any]],
        units: list[str],
        time_from: datetime,
        time_to: datetime,
        max_hits: int,
    ) -> int:
        args = (alert_id, observables, units, time_from, time_to, max_hits)
        try:
            job_id, refs = self._record(*args)
        except IntegrityError:
            # Another coordinator (a stalled one that lost the duty lease, or the new holder)
            # made the alert's job between this one's look-up and insert: the unique index on
            # the warning jobs' titles (migration 0019) refused the second; take the first.
            log.info("alert %d: early-warning job made by another coordinator", alert_id)
            job_id, refs = self._record(*args)
        if refs and self.hunts is not None:
            self.hunts.publish(refs)
        return job_id

    def _record(
        self,
        alert_id: int,
        observables: list[dict[str, Any]],
        units: list[str],
        time_from: datetime,
        time_to: datetime,
        max_hits: int,
    ) -> tuple[int, list[TaskRef]]:
        """The alert's job (found again, no task to publish) or a new one and its tasks."""
        title = job_title(alert_id)
        with self.state.session() as session:
            query = select(RetroHunt.id).where(
                RetroHunt.kind == WARNING_KIND, RetroHunt.title == title
            )
            existing = session.scalar(query.order_by(RetroHunt.id.desc()).limit(1))
            if existing is not None:
                log.info("alert %d: early-warning job %d found again", alert_id, existing)
                return int(existing), []
            root = session.scalar(
                select(Unit.id).where(Unit.parent_id.is_(None)).order_by(Unit.id).limit(1)
            )
            if root is None:
                raise RuntimeError("no root unit to own the early-warning job")
            spec = {
                "kind": WARNING_KIND,
                "alert_id": alert_id,
                "observables": observables,
                "max_hits": max_hits,
            }
            row = create_retrohunt(
                session,
                None,
                owner_unit_id=root,
                kind=WARNING_KIND,
                title=title,
                spec=spec,
                units=units,
                time_from=time_from,
                time_to=time_to,
                actor="early-warning",
            )
            ids = {name: uid for name, uid in session.execute(select(Unit.name, Unit.id))}
            low, high = _day(time_from), _day(time_to)
            parts = [
                (ids[unit], unit, day)
                for unit in sorted(units)
                if unit in ids
                for day in self.store.days(unit)
                if low <= day <= high
            ]
            task_ids = add_tasks(session, row, parts)
            job_id, created = row.id, row.created_at
        log.info("alert %d: early-warning job %d, %d tasks", alert_id, job_id, len(task_ids))
        return job_id, [TaskRef(job_id, task_id, created) for task_id in task_ids]

    def _wait(self, job_id: int, stop: threading.Event) -> None:
        started = reported = time.monotonic()
        while True:
            with self.state.session(readonly=True) as session:
                status = session.scalar(select(RetroHunt.status).where(RetroHunt.id == job_id))
            if status is None or status in FINISHED:
                return
            if stop.wait(POLL_SECONDS):
                raise SearchStopped(f"early-warning job {job_id} not finished")
            if time.monotonic() - reported >= REPORT_SECONDS:
                reported = time.monotonic()
                log.warning(
                    "early-warning job %d still %s after %.0f s (are workers running?)",
                    job_id,
                    status,
                    reported - started,
                )

    def _collect(self, job_id: int, units: list[str], max_hits: int) -> SearchResult:
        with self.state.session(readonly=True) as session:
            tasks = job_tasks(session, job_id)
        by_unit: dict[str, list[tuple[str, UnitFound]]] = defaultdict(list)
        incomplete: set[str] = set()
        result = SearchResult()
        for task in tasks:
            if task.status == "done" and task.found is not None:
                got = task.found
                by_unit[task.unit].append(
                    (task.day, (list(got["hits"]), int(got["total"]), list(got["seen"])))
                )
            else:
                incomplete.add(task.unit)
                if task.status == "failed":
                    result.errors.setdefault(task.unit, f"{task.day}: {task.error}")
        for unit in units:
            days = sorted(by_unit.get(unit, []), key=lambda item: item[0])
            hits, total, seen = merge_found((part for _, part in days), max_hits)
            if total:
                result.found[unit] = (hits, total, seen)
            elif unit not in incomplete:
                result.absent.append(unit)
        return result


def _day(moment: datetime) -> str:
    aware = moment.replace(tzinfo=UTC) if moment.tzinfo is None else moment.astimezone(UTC)
    return aware.date().isoformat()


def run_warning_task(
    state: StateDB, store: ParquetEventStore, work: TaskWork, *, worker: str
) -> tuple[bool, int]:
    """Search one claimed (unit, day) task and commit its result; ``(committed, hits)``,
    not committed when another worker finished the task first (this run is dropped).
    :class:`vedette.store.hunt.HuntRefused` and database errors go to the caller (retried)."""
    day = date.fromisoformat(work.day)
    start = datetime(day.year, day.month, day.day, tzinfo=UTC)
    end = start + timedelta(days=1) - timedelta(microseconds=1)
    low = start if work.time_from is None else max(start, _aware(work.time_from))
    high = end if work.time_to is None else min(end, _aware(work.time_to))
    observables = [o for o in work.spec.get("observables") or [] if isinstance(o, dict)]
    hits, total, seen = find_hits(
        store,
        work.unit,
        observables,
        time_from=low,
        time_to=high,
        max_hits=int(work.spec.get("max_hits") or 100),
    )
    with state.session() as session:
        job = lock_job(session, work.job_id)
        task = lock_task(session, job, work.task_id) if job is not None else None
        if job is None or task is None or task.status in TASK_FINISHED:
            return False, 0
        task.found = {"hits": hits, "total": total, "seen": seen}
        task_ran(
            session,
            job,
            task,
            worker=worker,
            status="done",
            events_read=0,
            hits=total,
            excepted=0,
        )
        job.hits += total
        finish_job_if_complete(session, job)
    return True, total


def _aware(moment: datetime) -> datetime:
    return moment.replace(tzinfo=UTC) if moment.tzinfo is None else moment.astimezone(UTC)
