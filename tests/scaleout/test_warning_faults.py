"""Early warning in the scale-out mode under faults: two coordinators racing for one alert's
job, and a worker SIGKILLed in the middle of a warning task. Real NATS and PostgreSQL.

The warnings must come out once: one job per alert whatever the coordinators do, a killed
task redelivered to the other worker, each unit warned once with every hit counted once (the
in-process search over the same events gives the expected figures).
"""

from __future__ import annotations

import threading
import time
from datetime import timedelta
from pathlib import Path
from typing import Any

import psycopg
from scalekit import Cluster, WorkerProcess
from test_warning_queue import IP, OBSERVABLES, T0, _record_alert, _row, _tasks, _wait_done

from vedette.server.warning_tasks import QueuedWarningSearch, job_title
from vedette.store.eventstore import ParquetEventStore, events_table
from vedette.store.state import add_unit, open_state
from vedette.store.state.retrohunts import WARNING_KIND, create_retrohunt
from vedette.store.state.units import unit_by_name

UNITS = ("a", "b", "c", "d")
HIT_DAYS = 8
ROWS_PER_DAY = 40_000
"""Each matching: a task reads and checks them all (about a second), long enough to kill."""


def _seed_heavy(store: ParquetEventStore) -> None:
    rows = []
    seq = 1
    for unit in ("b", "c"):
        for n in range(1, HIT_DAYS + 1):
            for i in range(ROWS_PER_DAY):
                when = T0 - timedelta(days=n) + timedelta(seconds=i)
                fields = {"DestinationIp": IP, "CommandLine": f"ping -n 1 {IP} #{i}"}
                rows.append(_row(seq, unit, when, f"{unit}-h{i % 50}", fields))
                seq += 1
    store.write(events_table(rows), 1, seq - 1)


def _jobs(database: str, alert_id: int) -> list[int]:
    with psycopg.connect(database) as conn:
        rows = conn.execute(
            "SELECT id FROM retrohunts WHERE kind = 'warning' AND title LIKE %s ORDER BY id",
            (job_title(alert_id) + "%",),
        ).fetchall()
    return [int(r[0]) for r in rows]


def _warning_rows(database: str, alert_id: int) -> list[tuple[str, int]]:
    with psycopg.connect(database) as conn:
        rows = conn.execute(
            "SELECT u.name, w.hits_total FROM warnings w JOIN units u ON u.id = w.unit_id"
            " WHERE w.source_alert_id = %s ORDER BY u.name",
            (alert_id,),
        ).fetchall()
    return [(str(r[0]), int(r[1])) for r in rows]


def test_two_coordinators_racing_for_an_alert_make_one_job(work_dir: Path, database: str) -> None:
    """A coordinator that lost its duty lease while stalled between its look-up and its commit,
    and the new holder: the second insert waits for the first, is refused by the unique index,
    and takes the first one's job instead of searching every unit a second time."""
    state = open_state(database)
    store = ParquetEventStore(work_dir / "store")
    store.write(events_table([_row(1, "b", T0, "b-ws1", {"DestinationIp": IP})]), 1, 1)
    try:
        with state.session() as session:
            add_unit(session, name="hq", parent=None)
            for unit in UNITS:
                add_unit(session, name=unit, parent="hq")
        window = (T0 - timedelta(days=30), T0 + timedelta(days=1))
        got: list[int] = []
        errors: list[BaseException] = []

        def new_holder() -> None:
            try:
                search = QueuedWarningSearch(state, store, None)
                got.append(search._job(77, OBSERVABLES, ["b", "c"], *window, 10))
            except BaseException as exc:
                errors.append(exc)

        # The stalled coordinator: its job inserted, not yet committed.
        with state.session() as stalled:
            hq = unit_by_name(stalled, "hq").id
            first = create_retrohunt(
                stalled, None, owner_unit_id=hq, kind=WARNING_KIND, title=job_title(77),
                spec={"kind": WARNING_KIND, "alert_id": 77, "observables": OBSERVABLES},
                units=["b", "c"], time_from=window[0], time_to=window[1], actor="early-warning",
            )  # fmt: skip
            stalled.flush()
            thread = threading.Thread(target=new_holder)
            thread.start()
            # The new holder found no job (not committed) and now waits on the index.
            deadline = time.monotonic() + 30
            with psycopg.connect(database) as conn:
                while time.monotonic() < deadline:
                    row = conn.execute("SELECT count(*) FROM pg_locks WHERE NOT granted").fetchone()
                    if row and row[0]:
                        break
                    time.sleep(0.05)
            first_id = first.id
        thread.join(30)
        assert not errors, errors
        assert got == [first_id]
        assert _jobs(database, 77) == [first_id]
        # A later look-up (a restarted coordinator) finds the same job again.
        assert QueuedWarningSearch(state, store, None)._job(
            77, OBSERVABLES, ["b"], *window, 10
        ) == (first_id)
    finally:
        state.close()


def _worker_of(cluster: Cluster, identity: str) -> WorkerProcess:
    pid = int(identity.split(":")[1])
    return next(w for w in cluster.workers if w.process is not None and w.process.pid == pid)


def test_a_worker_killed_mid_warning_task_hands_it_over_and_warns_once(
    work_dir: Path, nats_server: str, database: str
) -> None:
    cluster = Cluster(work_dir / "cluster", nats_server, database)
    cluster.add_units([("hq", None), *((u, "hq") for u in UNITS)])
    store = ParquetEventStore(cluster.store)
    _seed_heavy(store)
    # Every seeded row names the IP twice (two fields): each counts once per field.
    expected = {"b": HIT_DAYS * ROWS_PER_DAY * 2, "c": HIT_DAYS * ROWS_PER_DAY * 2}
    cluster.start(workers=2)
    try:
        alert_id = _record_alert(database)
        deadline = time.monotonic() + 180
        running: list[dict[str, Any]] = []
        while not running and time.monotonic() < deadline:
            running = [t for t in _tasks(database, alert_id)[1] if t["status"] == "running"]
            time.sleep(0.05)
        assert running, f"{_tasks(database, alert_id)}\n{cluster.logs()}"
        victim = _worker_of(cluster, running[0]["worker"])
        victim.kill()
        killed = {
            (t["unit"], t["day"])
            for t in _tasks(database, alert_id)[1]
            if t["status"] == "running" and _worker_of(cluster, t["worker"]) is victim
        }
        warned = _wait_done(database, alert_id, cluster.logs)
        job, tasks = _tasks(database, alert_id)
        assert job["status"] == "done", (job, tasks, cluster.logs())
        assert {t["status"] for t in tasks} == {"done"}, tasks
        survivor = next(w for w in cluster.workers if w is not victim)
        assert killed, "the killed worker had finished its task before the kill"
        for task in tasks:
            if (task["unit"], task["day"]) in killed:
                assert _worker_of(cluster, task["worker"]) is survivor, task
        # Once: one job, one warning per unit, every hit counted once.
        assert len(_jobs(database, alert_id)) == 1
        assert _warning_rows(database, alert_id) == sorted(expected.items())
        assert job["hits"] == sum(t["hits"] for t in tasks) == sum(expected.values())
        assert {u: w["hits_total"] for u, w in warned.items()} == expected
    finally:
        cluster.kill_all()
