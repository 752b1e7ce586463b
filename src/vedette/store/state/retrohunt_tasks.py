"""The tasks of a retro-hunt job in the scale-out mode: one per unit and day of stored events.

A job of the work-queue runner (:mod:`vedette.server.hunt_tasks`) is split when it starts into
one task per (unit, day) holding stored Parquet events in its range. Each task is a row here
and a message on the JetStream work queue (:mod:`vedette.store.huntqueue`). A task moves::

    pending ──(PubAck)──► queued ──(a worker claims it)──► running ──► done
                                         ▲                    │   ├──► cancelled (stopped mid-way)
                                         └──(worker stopping)─┘   └──► failed (attempts used up)
    pending / queued ──(job cancelled)──► skipped

Every change to a job's tasks locks the job row first (``SELECT ... FOR UPDATE``), then the task:
two workers finishing tasks of one job, or a cancel beside them, take turns, so the job's
counters, its alert upserts (one alert per fingerprint) and its final status are written by one
transaction at a time, and exactly one of them sees the last task finish and finishes the job.

The job's API fields keep their shape across modes: ``files_total`` and ``days_total`` are the
number of tasks (a task reads every file of its unit-day), ``files_done`` and ``days_done`` the
tasks that ran (``done`` or ``cancelled`` mid-way), ``progress`` their share, ``units_done`` the
units all of whose tasks ran (or that hold nothing in the range).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Final

from sqlalchemy import (
    JSON,
    ForeignKey,
    Integer,
    String,
    Text,
    UniqueConstraint,
    func,
    select,
    update,
)
from sqlalchemy.orm import Mapped, Session, mapped_column

from vedette.store.state.models import Base, utcnow
from vedette.store.state.retrohunts import FINISHED, RetroHunt

TASK_STATUSES: Final = ("pending", "queued", "running", "done", "cancelled", "failed", "skipped")
TASK_FINISHED: Final = ("done", "cancelled", "failed", "skipped")
_RAN: Final = ("done", "cancelled")
MAX_ERROR: Final = 2000


class RetroHuntTask(Base):
    """One (unit, day) of a retro-hunt job."""

    __tablename__ = "retrohunt_tasks"
    __table_args__ = (UniqueConstraint("job_id", "unit_id", "day"),)
    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    job_id: Mapped[int] = mapped_column(ForeignKey("retrohunts.id"), index=True)
    unit_id: Mapped[int] = mapped_column(ForeignKey("units.id"))
    unit: Mapped[str] = mapped_column(String(64))
    day: Mapped[str] = mapped_column(String(10))
    status: Mapped[str] = mapped_column(String(16), default="pending")
    worker: Mapped[str | None] = mapped_column(String(160))
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    events_read: Mapped[int] = mapped_column(Integer, default=0)
    hits: Mapped[int] = mapped_column(Integer, default=0)
    excepted: Mapped[int] = mapped_column(Integer, default=0)
    error: Mapped[str | None] = mapped_column(Text)
    found: Mapped[dict[str, Any] | None] = mapped_column(JSON)
    """An early-warning task's result (hits, total, observables found; migration 0016)."""
    started_at: Mapped[datetime | None] = mapped_column()
    finished_at: Mapped[datetime | None] = mapped_column()


@dataclass(frozen=True, slots=True)
class TaskWork:
    """What a worker needs to run a claimed task."""

    job_id: int
    task_id: int
    unit_id: int
    unit: str
    day: str
    time_from: datetime | None
    time_to: datetime | None
    spec: dict[str, Any]


def add_tasks(session: Session, job: RetroHunt, parts: Sequence[tuple[int, str, str]]) -> list[int]:
    """Record a ``pending`` task per ``(unit_id, unit, day)`` of ``job``; their ids. Sets the
    job's totals; a job with nothing to read is done at once."""
    rows = [RetroHuntTask(job_id=job.id, unit_id=u, unit=n, day=d) for u, n, d in parts]
    session.add_all(rows)
    job.files_total = job.days_total = len(rows)
    job.units_done = len({str(u) for u in job.units or []} - {n for _, n, _ in parts})
    if not rows:
        now = utcnow()
        job.status, job.progress, job.started_at, job.finished_at = "done", 1.0, now, now
    session.flush()
    return [row.id for row in rows]


def mark_queued(session: Session, task_ids: Sequence[int]) -> None:
    """The work queue acknowledged these tasks (those a worker has not taken meanwhile)."""
    for start in range(0, len(task_ids), 500):
        session.execute(
            update(RetroHuntTask)
            .where(
                RetroHuntTask.id.in_(task_ids[start : start + 500]),
                RetroHuntTask.status == "pending",
            )
            .values(status="queued")
        )


def pending_tasks(session: Session, limit: int = 10_000) -> list[tuple[int, int, datetime]]:
    """``(job_id, task_id, job created_at)`` of tasks recorded but not yet acknowledged by the
    work queue, in jobs still unfinished (to publish again), oldest first."""
    query = (
        select(RetroHuntTask.job_id, RetroHuntTask.id, RetroHunt.created_at)
        .join(RetroHunt, RetroHunt.id == RetroHuntTask.job_id)
        .where(RetroHuntTask.status == "pending", RetroHunt.status.not_in(FINISHED))
        .order_by(RetroHuntTask.id)
        .limit(limit)
    )
    return [(job, task, created) for job, task, created in session.execute(query)]


def lock_job(session: Session, job_id: int) -> RetroHunt | None:
    """The job row, locked for this transaction (always before any of its tasks)."""
    return session.get(RetroHunt, job_id, with_for_update=True, populate_existing=True)


def lock_task(session: Session, job: RetroHunt, task_id: int) -> RetroHuntTask | None:
    """A task of ``job`` (locked after it); None when it is not one of the job's."""
    task = session.get(RetroHuntTask, task_id, with_for_update=True, populate_existing=True)
    return task if task is not None and task.job_id == job.id else None


def claim_task(
    session: Session,
    job_id: int,
    task_id: int,
    *,
    worker: str,
    attempt: int,
    max_attempts: int,
) -> TaskWork | None:
    """Take a delivered task for ``worker``; None when there is nothing to run (the message is
    then acknowledged): the task is finished or gone, its job cancelled or finished (the task
    is skipped), or ``attempt`` is past ``max_attempts`` (the task fails with its last error)."""
    job = lock_job(session, job_id)
    task = lock_task(session, job, task_id) if job is not None else None
    if job is None or task is None or task.status in TASK_FINISHED:
        return None
    now = utcnow()
    if job.cancel_requested or job.status in FINISHED:
        task.status, task.finished_at = "skipped", now
        finish_job_if_complete(session, job)
        return None
    if attempt > max_attempts:
        last = task.error or f"the worker running it ({task.worker}) stopped before it finished"
        fail_locked(session, job, task, f"gave up after {max_attempts} attempts: {last}")
        return None
    task.status, task.worker, task.attempts, task.started_at = "running", worker, attempt, now
    if job.status == "queued":
        job.status = "running"
    if job.started_at is None:
        job.started_at = now
    return TaskWork(
        job_id=job.id,
        task_id=task.id,
        unit_id=task.unit_id,
        unit=task.unit,
        day=task.day,
        time_from=job.time_from,
        time_to=job.time_to,
        spec=dict(job.spec or {}),
    )


def task_ran(
    session: Session,
    job: RetroHunt,
    task: RetroHuntTask,
    *,
    worker: str,
    status: str,
    events_read: int,
    hits: int,
    excepted: int,
) -> None:
    """Mark a locked task ``done`` (or ``cancelled`` mid-way) with its counts; count it in the
    job's progress. The caller has added its hits to the job (same transaction)."""
    task.status, task.worker, task.finished_at = status, worker, utcnow()
    task.events_read, task.hits, task.excepted = events_read, hits, excepted
    job.files_done += 1
    job.days_done = job.files_done
    job.progress = job.files_done / job.files_total if job.files_total else 1.0
    session.flush()
    unread = select(func.count()).where(
        RetroHuntTask.job_id == job.id,
        RetroHuntTask.unit_id == task.unit_id,
        RetroHuntTask.status.not_in(_RAN),
    )
    if not session.scalar(unread):
        job.units_done += 1


def fail_locked(session: Session, job: RetroHunt, task: RetroHuntTask, reason: str) -> None:
    """Mark a locked task ``failed`` with ``reason``; the job finishes if it was the last."""
    task.status, task.error, task.finished_at = "failed", reason[:MAX_ERROR], utcnow()
    finish_job_if_complete(session, job)


def note_error(session: Session, job_id: int, task_id: int, reason: str) -> None:
    """Keep the reason of a failed attempt on the task (it will be delivered again)."""
    job = lock_job(session, job_id)
    task = lock_task(session, job, task_id) if job is not None else None
    if job is not None and task is not None and task.status == "running":
        task.status, task.error = "queued", reason[:MAX_ERROR]


def release_task(session: Session, job_id: int, task_id: int, worker: str) -> None:
    """A stopping worker gives its running task back (it is delivered again elsewhere)."""
    job = lock_job(session, job_id)
    task = lock_task(session, job, task_id) if job is not None else None
    if task is not None and task.status == "running" and task.worker == worker:
        task.status = "queued"


def skip_unstarted(session: Session, job: RetroHunt) -> int:
    """Skip the tasks of a locked job no worker has taken (a cancel); how many."""
    result = session.execute(
        update(RetroHuntTask)
        .where(RetroHuntTask.job_id == job.id, RetroHuntTask.status.in_(("pending", "queued")))
        .values(status="skipped", finished_at=utcnow())
    )
    return int(getattr(result, "rowcount", 0) or 0)


def finish_job_if_complete(session: Session, job: RetroHunt) -> bool:
    """Finish a locked job whose tasks are all finished: ``cancelled`` when a cancel was asked,
    ``failed`` (naming the first failure) when a task failed, else ``done``. True when it is
    finished now or was already."""
    session.flush()
    query = (
        select(RetroHuntTask.status, func.count())
        .where(RetroHuntTask.job_id == job.id)
        .group_by(RetroHuntTask.status)
    )
    counts: dict[str, int] = {status: int(n) for status, n in session.execute(query)}
    if any(counts.get(s, 0) for s in TASK_STATUSES if s not in TASK_FINISHED):
        return False
    if job.status in FINISHED:
        return True
    failed = counts.get("failed", 0)
    if job.cancel_requested:
        job.status = "cancelled"
    elif failed:
        first = session.scalar(
            select(RetroHuntTask)
            .where(RetroHuntTask.job_id == job.id, RetroHuntTask.status == "failed")
            .order_by(RetroHuntTask.id)
            .limit(1)
        )
        where = f"{first.unit} {first.day}: {first.error}" if first is not None else ""
        job.status = "failed"
        job.error = f"{failed} of {job.files_total} tasks failed; first, {where}"[:MAX_ERROR]
    else:
        job.status = "done"
    job.finished_at = utcnow()
    return True


def job_tasks(session: Session, job_id: int) -> list[RetroHuntTask]:
    """The tasks of a job, in id order (operations and tests; not scoped: no API reads it)."""
    query = select(RetroHuntTask).where(RetroHuntTask.job_id == job_id)
    return list(session.scalars(query.order_by(RetroHuntTask.id)))
