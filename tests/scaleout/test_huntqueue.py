"""Retro-hunts on the JetStream work queue: api + 2 workers, real NATS and PostgreSQL.

Units receive the OTRF CMSTP UAC-bypass recording through the api (real Sysmon and Security
events; the workers store them by unit and day) and retimed copies of it written straight into
the shared store on more days, as tests/retrohunt does. A hunt is split into one task per unit
and day; the task rows (PostgreSQL) say which worker ran each. The same hunt on an embedded
centre over a copy of the same store must find the same hits and raise the same alerts. A
cancel mid-way skips the tasks not started; a worker SIGKILLed mid-task has its task
redelivered to the other, and the job completes with no alert raised twice.
"""

from __future__ import annotations

import shutil
import time
import zipfile
from collections import Counter
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import psycopg
import pyarrow as pa
import pyarrow.parquet as pq
from scalekit import STARTER, Cluster, WorkerProcess
from serverkit import Centre, add_token, make_centre

from datasets import dataset
from vedette.store.eventstore import ParquetEventStore

RECORDING = (
    "otrf-security-datasets", "datasets", "atomic", "windows", "defense_evasion", "host",
    "psh_cmstp_execution_bypassuac.zip",
)  # fmt: skip
RULE_X = ("sigma", "rules", "windows", "process_creation", "proc_creation_win_uac_bypass_cmstp.yml")
INDICATOR = "168.63.129.16"
FINISHED = ("done", "cancelled", "failed")


def _lines() -> list[bytes]:
    with zipfile.ZipFile(dataset(*RECORDING)) as archive:
        (name,) = archive.namelist()
        return [line for line in archive.read(name).splitlines() if line.strip()]


def _send(centre: Centre, token: str, lines: list[bytes]) -> None:
    with centre.client(token) as http:
        for start in range(0, len(lines), 2000):
            answer = http.post(
                "/api/v1/events",
                content=b"\n".join(lines[start : start + 2000]),
                headers={"Content-Type": "application/x-ndjson"},
            )
            assert answer.status_code == 202, answer.text


def _seed(store: Path, source: str, days: dict[str, int], copies: int) -> None:
    """Write ``days[unit]`` day partitions of ``copies`` times the events the workers stored
    for ``source`` (retimed into 2024) for each unit, straight into the store's layout."""
    files = sorted((store / f"unit={source}").rglob("part-*-p*.parquet"))
    table = pa.concat_tables(pq.read_table(p) for p in files)
    base = table.take([i % table.num_rows for i in range(table.num_rows * copies)])
    writer = ParquetEventStore(store)
    start = datetime(2024, 1, 1, tzinfo=UTC)
    for unit, count in days.items():
        for n in range(count):
            day = start + timedelta(days=n)
            rows = base.num_rows
            out = base.set_column(
                base.schema.get_field_index("unit"), "unit", pa.array([unit] * rows)
            )
            out = out.set_column(
                out.schema.get_field_index("day"), "day", pa.array([day.date().isoformat()] * rows)
            )
            times = pa.array(
                [day + timedelta(seconds=i % 86000) for i in range(rows)], pa.timestamp("us", "UTC")
            )
            out = out.set_column(out.schema.get_field_index("time"), "time", times)
            writer.write(out, 0, 0)


def _stored_days(store: Path, units: list[str]) -> set[tuple[str, str]]:
    return {
        (unit, day.name.removeprefix("day="))
        for unit in units
        for day in (store / f"unit={unit}").glob("day=*")
        if any(day.glob("part-*.parquet"))
    }


def _stored_rows(store: Path, units: list[str]) -> int:
    return sum(
        pq.read_metadata(p).num_rows
        for u in units
        for p in (store / f"unit={u}").rglob("part-*.parquet")
    )


def _tasks(database: str, job_id: int) -> list[dict[str, Any]]:
    with psycopg.connect(database) as conn:
        cursor = conn.execute(
            "SELECT id, unit, day, status, worker, attempts, events_read, hits, error"
            " FROM retrohunt_tasks WHERE job_id = %s ORDER BY id",
            (job_id,),
        )
        names = [d.name for d in cursor.description or []]
        return [dict(zip(names, row, strict=True)) for row in cursor.fetchall()]


def _start(http: httpx.Client, body: dict[str, Any]) -> int:
    answer = http.post("/api/v1/retrohunts", json=body)
    assert answer.status_code == 201, answer.text
    return int(answer.json()["id"])


def _wait_job(
    http: httpx.Client, job_id: int, timeout: float = 300.0, logs: Callable[[], str] = str
) -> dict[str, Any]:
    deadline = time.monotonic() + timeout
    job: dict[str, Any] = {}
    while time.monotonic() < deadline:
        job = http.get(f"/api/v1/retrohunts/{job_id}").json()
        if job["status"] in FINISHED:
            return job
        time.sleep(0.2)
    raise AssertionError(f"retro-hunt {job_id} did not finish: {job}\n{logs()}")


def _job_alerts(http: httpx.Client, job: dict[str, Any]) -> Counter[tuple[Any, ...]]:
    """The job's alerts as (unit, host, rule, count, first seen, last seen), counted: a
    fingerprint raised twice would show as two entries of one (unit, host, rule)."""
    answer = http.get("/api/v1/alerts", params={"limit": 1000})
    assert answer.status_code == 200, answer.text
    mine = [a for a in answer.json()["items"] if a["id"] in set(job["alert_ids"])]
    assert len(mine) == len(job["alert_ids"]) == job["alerts"]
    keys = Counter((a["unit"], a["host"], a["rule_id"]) for a in mine)
    assert max(keys.values(), default=1) == 1, keys
    assert sum(a["count"] for a in mine) == job["hits"]
    return Counter(
        (a["unit"], a["host"], a["rule_id"], a["count"], a["first_seen"], a["last_seen"])
        for a in mine
    )


def _worker_of(cluster: Cluster, identity: str) -> WorkerProcess:
    pid = int(identity.split(":")[1])
    return next(w for w in cluster.workers if w.process is not None and w.process.pid == pid)


def test_a_hunt_runs_as_unit_day_tasks_on_both_workers_like_the_embedded_centre(
    work_dir: Path, nats_server: str, database: str
) -> None:
    units = ["unit-a", "unit-b", "unit-c"]
    cluster = Cluster(work_dir / "cluster", nats_server, database)
    cluster.add_units([("hq", None), *((u, "hq") for u in [*units, "unit-d"])])
    hq = cluster.token("hq", "admin")
    ingest = {u: cluster.token(u, "ingest") for u in ("unit-a", "unit-b")}
    rule = dataset(*RULE_X).read_text()
    lines = _lines()
    cluster.start(workers=2)
    api = cluster.api
    try:
        cluster.wait_spread()
        for token in ingest.values():
            _send(api, token, lines)
        for unit in ingest:
            api.wait_stored(hq, unit, len(lines), timeout=120)
        _seed(cluster.store, "unit-a", {"unit-a": 3, "unit-b": 2, "unit-c": 4}, copies=5)
        with api.client(hq) as http:
            job_id = _start(http, {"rule": rule, "units": units, "from": "2000-01-01T00:00:00Z"})
            job = _wait_job(http, job_id, logs=cluster.logs)
            assert job["status"] == "done", job
            tasks = _tasks(database, job_id)
            # One task per unit and day of stored events, each run once to the end.
            assert {(t["unit"], t["day"]) for t in tasks} == _stored_days(cluster.store, units)
            assert len(tasks) == job["files_total"] == job["files_done"] >= 11
            assert len(tasks) == job["days_total"] == job["days_done"]
            assert job["units_done"] == job["units_total"] == len(units)
            assert {t["status"] for t in tasks} == {"done"}, tasks
            # Both workers ran tasks, and each row names the worker that ran it.
            ran = {_worker_of(cluster, t["worker"]).home.name for t in tasks}
            assert ran == {w.home.name for w in cluster.workers}, tasks
            assert job["progress"] == 1.0
            assert job["events_read"] == _stored_rows(cluster.store, units)
            assert job["events_read"] == sum(t["events_read"] for t in tasks)
            assert job["hits"] == sum(t["hits"] for t in tasks) > 0
            queued = _job_alerts(http, job)

            # Cancel mid-way: the tasks not started are skipped, nothing runs afterwards.
            _seed(cluster.store, "unit-a", {"unit-d": 40}, copies=10)
            long_id = _start(
                http, {"indicators": f"{INDICATOR}\n", "format": "list", "units": ["unit-d"]}
            )
            deadline = time.monotonic() + 120
            running = http.get(f"/api/v1/retrohunts/{long_id}").json()
            while running["files_done"] < 1 and time.monotonic() < deadline:
                time.sleep(0.05)
                running = http.get(f"/api/v1/retrohunts/{long_id}").json()
            assert running["status"] == "running", running
            assert http.post(f"/api/v1/retrohunts/{long_id}/cancel").status_code == 200
            cancelled = _wait_job(http, long_id, logs=cluster.logs)
            assert cancelled["status"] == "cancelled", cancelled
            statuses = Counter(t["status"] for t in _tasks(database, long_id))
            assert set(statuses) <= {"done", "cancelled", "skipped"}, statuses
            assert statuses["skipped"] > 0 and statuses["done"] > 0, statuses
            assert cancelled["files_done"] == statuses["done"] + statuses["cancelled"]
            assert 0 < cancelled["files_done"] < cancelled["files_total"] == 40
            assert 0 < cancelled["progress"] < 1
    finally:
        cluster.kill_all()
    # The embedded centre over a copy of the same stored events: the same hunt, same result.
    embedded = make_centre(
        work_dir / "embedded",
        units=(("hq", None), *((u, "hq") for u in units)),
        args=["--rules", str(STARTER), "--no-worker-process"],
    )
    for unit in units:
        shutil.copytree(cluster.store / f"unit={unit}", embedded.home / "events" / f"unit={unit}")
    token = add_token(embedded.home, "hq", "admin")
    embedded.start()
    try:
        with embedded.client(token) as http:
            body = {"rule": rule, "units": units, "from": "2000-01-01T00:00:00Z"}
            alone = _wait_job(http, _start(http, body))
            assert alone["status"] == "done", alone
            same = ("hits", "events_read", "excepted", "days_total", "days_done", "units_done")
            assert {k: alone[k] for k in same} == {k: job[k] for k in same}
            assert _job_alerts(http, alone) == queued
    finally:
        embedded.stop()


def test_a_worker_killed_mid_task_hands_it_to_the_other(
    work_dir: Path, nats_server: str, database: str
) -> None:
    cluster = Cluster(work_dir, nats_server, database)
    cluster.add_units([("hq", None), ("unit-a", "hq"), ("unit-b", "hq")])
    hq = cluster.token("hq", "admin")
    ingest = cluster.token("unit-a", "ingest")
    lines = _lines()
    cluster.start(workers=2)
    api = cluster.api
    try:
        cluster.wait_spread()
        _send(api, ingest, lines)
        api.wait_stored(hq, "unit-a", len(lines), timeout=120)
        copies = 40
        _seed(cluster.store, "unit-a", {"unit-a": 3, "unit-b": 3}, copies=copies)
        with api.client(hq) as http:
            job_id = _start(
                http,
                {"indicators": f"{INDICATOR}\n", "format": "list", "units": ["unit-a", "unit-b"]},
            )
            deadline = time.monotonic() + 120
            running: list[dict[str, Any]] = []
            while not running and time.monotonic() < deadline:
                running = [t for t in _tasks(database, job_id) if t["status"] == "running"]
                time.sleep(0.05)
            assert running, _tasks(database, job_id)
            victim = _worker_of(cluster, running[0]["worker"])
            victim.kill()
            killed = {
                t["id"]
                for t in _tasks(database, job_id)
                if t["status"] == "running" and _worker_of(cluster, t["worker"]) is victim
            }
            job = _wait_job(http, job_id, logs=cluster.logs)
            assert job["status"] == "done", (job, cluster.logs())
            tasks = {t["id"]: t for t in _tasks(database, job_id)}
            assert {t["status"] for t in tasks.values()} == {"done"}
            survivor = next(w for w in cluster.workers if w is not victim)
            # The task the victim was running went to the survivor, on a later delivery.
            assert killed, "the killed worker had finished its task before the kill"
            for task_id in killed:
                assert _worker_of(cluster, tasks[task_id]["worker"]) is survivor
                assert tasks[task_id]["attempts"] >= 2
            # Counted once: each seeded day holds ``copies`` recordings, and finds exactly
            # ``copies`` times what the days the workers stored find.
            stored = [t for t in tasks.values() if not t["day"].startswith("2024-")]
            seeded = [t for t in tasks.values() if t["day"].startswith("2024-")]
            once = sum(t["hits"] for t in stored)
            assert once > 0 and len(seeded) == 6
            assert sum(t["events_read"] for t in stored) == len(lines)
            assert [(t["events_read"], t["hits"]) for t in seeded] == [
                (copies * len(lines), copies * once)
            ] * 6
            assert job["events_read"] == len(lines) * (1 + 6 * copies)
            assert job["hits"] == sum(t["hits"] for t in tasks.values()) == once * (1 + 6 * copies)
            _job_alerts(http, job)  # one alert per unit, host and indicator; counts add up
    finally:
        cluster.kill_all()
