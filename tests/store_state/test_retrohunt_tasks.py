"""The tasks of a work-queue retro-hunt (SQLite and PostgreSQL): a job split into tasks is
finished by its last task, a redelivered task is claimed again until it is done and then only
acknowledged, a cancel skips what nobody took, and attempts past the limit fail the task and
the job with the reason."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import TYPE_CHECKING

from vedette.store.state.retrohunt_tasks import (
    add_tasks,
    claim_task,
    finish_job_if_complete,
    job_tasks,
    lock_job,
    lock_task,
    mark_queued,
    note_error,
    pending_tasks,
    skip_unstarted,
    task_ran,
)
from vedette.store.state.retrohunts import RetroHunt, create_retrohunt, request_cancel
from vedette.store.state.scope import Role

if TYPE_CHECKING:
    from conftest import World

DAYS = ("2024-01-01", "2024-01-02", "2024-01-03")


def _job(world: World, days: tuple[str, ...] = DAYS) -> tuple[int, list[int]]:
    with world.db.session() as session:
        row = create_retrohunt(
            session,
            None,
            owner_unit_id=world.ids["centre"],
            kind="sigma",
            title="t",
            spec={"rule": "x"},
            units=["north"],
            time_from=datetime(2024, 1, 1, tzinfo=UTC),
            time_to=None,
        )
        ids = add_tasks(session, row, [(world.ids["north"], "north", d) for d in days])
        return row.id, ids


def _claim(world: World, job_id: int, task_id: int, worker: str, attempt: int) -> bool:
    with world.db.session() as session:
        work = claim_task(session, job_id, task_id, worker=worker, attempt=attempt, max_attempts=2)
        return work is not None


def _ran(world: World, job_id: int, task_id: int, worker: str, status: str = "done") -> bool:
    with world.db.session() as session:
        job = lock_job(session, job_id)
        assert job is not None
        task = lock_task(session, job, task_id)
        assert task is not None
        if task.status in ("done", "cancelled", "failed", "skipped"):
            return False
        task_ran(
            session, job, task, worker=worker, status=status, events_read=10, hits=1, excepted=0
        )
        finish_job_if_complete(session, job)
        return True


def _job_row(world: World, job_id: int) -> RetroHunt:
    with world.db.session() as session:
        row = session.get(RetroHunt, job_id)
        assert row is not None
        return row


def test_the_last_task_finishes_the_job_and_a_redelivery_runs_nothing_twice(world: World) -> None:
    job_id, ids = _job(world)
    assert _job_row(world, job_id).files_total == 3
    with world.db.session() as session:
        assert [t for _, t, _ in pending_tasks(session)] == ids
        mark_queued(session, ids[:2])
    with world.db.session() as session:
        assert [t for _, t, _ in pending_tasks(session)] == ids[2:]
    assert _claim(world, job_id, ids[0], "w1", 1)
    assert _job_row(world, job_id).status == "running"
    # w1 dies; the task is delivered again and claimed by w2, which finishes it.
    assert _claim(world, job_id, ids[0], "w2", 2)
    assert _ran(world, job_id, ids[0], "w2")
    assert not _claim(world, job_id, ids[0], "w1", 3)  # finished: only acknowledged
    assert not _ran(world, job_id, ids[0], "w1")  # a late run of w1 is dropped
    for task_id in ids[1:]:
        assert _claim(world, job_id, task_id, "w1", 1)
        assert _ran(world, job_id, task_id, "w1")
    job = _job_row(world, job_id)
    assert (job.status, job.files_done, job.progress) == ("done", 3, 1.0)
    assert (job.days_total, job.days_done, job.units_done) == (3, 3, 1)
    with world.db.session() as session:
        tasks = job_tasks(session, job_id)
    assert [(t.status, t.worker, t.attempts) for t in tasks] == [
        ("done", "w2", 2),
        ("done", "w1", 1),
        ("done", "w1", 1),
    ]


def test_a_job_with_nothing_stored_is_done_at_once(world: World) -> None:
    job_id, ids = _job(world, days=())
    job = _job_row(world, job_id)
    assert ids == [] and (job.status, job.progress, job.files_total) == ("done", 1.0, 0)
    assert (job.days_total, job.units_done) == (0, 1)  # its one unit holds nothing: read


def test_a_cancel_skips_what_nobody_took(world: World) -> None:
    job_id, ids = _job(world)
    assert _claim(world, job_id, ids[0], "w1", 1)
    scope = world.scope("centre", Role.ANALYST)
    with world.db.session() as session:
        request_cancel(session, scope, job_id)
    with world.db.session() as session:
        job = lock_job(session, job_id)
        assert job is not None
        assert skip_unstarted(session, job) == 2
        assert not finish_job_if_complete(session, job)  # the running task ends it
    assert not _claim(world, job_id, ids[1], "w2", 1)  # skipped: only acknowledged
    assert _ran(world, job_id, ids[0], "w1", status="cancelled")
    job = _job_row(world, job_id)
    assert (job.status, job.files_done, job.files_total) == ("cancelled", 1, 3)
    assert (job.days_done, job.units_done) == (1, 0)
    with world.db.session() as session:
        assert [t.status for t in job_tasks(session, job_id)] == ["cancelled", "skipped", "skipped"]


def test_attempts_past_the_limit_fail_the_task_and_the_job_with_the_reason(world: World) -> None:
    job_id, ids = _job(world, days=DAYS[:2])
    assert _claim(world, job_id, ids[0], "w1", 1)
    assert _ran(world, job_id, ids[0], "w1")
    for attempt in (1, 2):
        assert _claim(world, job_id, ids[1], "w1", attempt)
        with world.db.session() as session:
            note_error(session, job_id, ids[1], "OSError: disk gone")
    assert not _claim(world, job_id, ids[1], "w2", 3)  # max_attempts=2: recorded as failed
    job = _job_row(world, job_id)
    assert job.status == "failed"
    assert job.error is not None
    assert "1 of 2 tasks failed" in job.error and "north 2024-01-02" in job.error
    assert "OSError: disk gone" in job.error
    assert (job.files_done, job.hits) == (1, 0)  # the hits are the caller's to add
