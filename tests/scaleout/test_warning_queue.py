"""Early warning in the scale-out mode: the observable search runs as (unit, day) tasks on the
work queue, on the workers; api + 2 workers, real NATS and PostgreSQL.

Units b and c hold stored events (written straight into the shared store, as the workers lay
them out) where an alert's observables of unit a appear on different days, some outside the
look-back, some near-misses (1.1.1.1 is not 1.1.1.10). The alert is recorded in PostgreSQL
through the state store as a worker would; the api's coordinator picks it up, the search becomes
a job of kind ``warning`` whose tasks the workers run (each task row names its worker), and the
warnings raised are the ones the in-process coordinator of the embedded mode raises over the
same events (tests/coordination/test_warning.py).
"""

from __future__ import annotations

import threading
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import psycopg
from scalekit import Cluster

from vedette.alerts.warning import Coordinator, LocalSearch, WarningPolicy
from vedette.server.warning_tasks import QueuedWarningSearch
from vedette.store.eventstore import EventRow, ParquetEventStore, events_table
from vedette.store.state import add_unit, open_state, record_detection, unit_by_name
from vedette.store.state.warnings import EarlyWarning

T0 = datetime(2024, 5, 1, 12, 0, tzinfo=UTC)
IP = "198.51.100.7"
URL = "https://evil.example.org/a'b\\c\"d"
OBSERVABLES = [
    {"type": "ip", "field": "DestinationIp", "value": IP},
    {"type": "url", "field": "CommandLine", "value": URL},
]
UNITS = ("a", "b", "c", "d")


def _row(seq: int, unit: str, when: datetime, host: str, fields: dict[str, Any]) -> EventRow:
    return EventRow(
        seq=seq,
        unit=unit,
        time=when,
        host=host,
        product="windows",
        services=("sysmon",),
        categories=(),
        source_format="json",
        record_id=seq,
        fields=fields,
        raw=None,
        received=when,
    )


def _seed(store: ParquetEventStore) -> None:
    """b: hits on two days, a near-miss, one outside the look-back, filler days; c: a hit on a
    third day among filler days; a: its own event (never searched); d: nothing stored."""
    day = timedelta(days=1)
    rows = [
        _row(1, "b", T0 - day, "b-ws1", {"DestinationIp": IP}),
        _row(2, "b", T0 - 2 * day, "b-ws2", {"CommandLine": f"curl {URL} -o x"}),
        _row(3, "b", T0 - 2 * day + timedelta(hours=1), "b-ws2", {"DestinationIp": IP}),
        _row(4, "b", T0 - 40 * day, "b-old", {"DestinationIp": IP}),
        _row(5, "b", T0, "b-ws3", {"DestinationIp": "198.51.100.70"}),
        _row(6, "c", T0 - 5 * day, "c-ws1", {"Query": f"dst {IP} port 443"}),
        _row(7, "a", T0, "a-ws1", {"DestinationIp": IP}),
    ]
    seq = 8
    for n in range(3, 12):
        for unit in ("b", "c"):
            rows.append(_row(seq, unit, T0 - n * day, f"{unit}-f{n}", {"Image": "notepad.exe"}))
            seq += 1
    store.write(events_table(rows), 1, seq - 1)


def _record_alert(url: str, fingerprint: str = "warning-queue-1") -> int:
    state = open_state(url)
    try:
        with state.session() as session:
            row, _ = record_detection(
                session,
                unit_id=unit_by_name(session, "a").id,
                fingerprint=fingerprint,
                kind="intel",
                rule_id="intel-1",
                rule_title="Known-bad IP",
                level="high",
                when=T0,
                host="a-ws1",
                attack=[{"id": "T1071", "name": None, "tactics": []}],
                observables=OBSERVABLES,
            )
            return row.id
    finally:
        state.close()


def _warnings(url: str, alert_id: int) -> dict[str, dict[str, Any]]:
    """The warnings of the alert, by warned unit: what a unit is told."""
    state = open_state(url)
    try:
        with state.session(readonly=True) as session:
            names = {unit_by_name(session, u).id: u for u in UNITS}
            rows = session.query(EarlyWarning).filter(EarlyWarning.source_alert_id == alert_id)
            return {
                names[w.unit_id]: {
                    "level": w.level,
                    "title": w.title,
                    "observables": w.observables,
                    "attack": w.attack,
                    "hits": w.hits,
                    "hits_total": w.hits_total,
                    "status": w.status,
                }
                for w in rows
            }
    finally:
        state.close()


def _tasks(database: str, alert_id: int) -> tuple[dict[str, Any], list[dict[str, Any]]]:
    """The alert's warning job and its tasks (empty job until the coordinator made it)."""
    with psycopg.connect(database) as conn:
        job = conn.execute(
            "SELECT id, status, files_total, files_done, hits FROM retrohunts"
            " WHERE kind = 'warning' AND title = %s ORDER BY id",
            (f"Early warning: observables of alert {alert_id}",),
        ).fetchall()
        if not job:
            return {}, []
        (job_id, status, total, done, hits) = job[-1]
        cursor = conn.execute(
            "SELECT unit, day, status, worker, hits FROM retrohunt_tasks"
            " WHERE job_id = %s ORDER BY unit, day",
            (job_id,),
        )
        names = [d.name for d in cursor.description or []]
        tasks = [dict(zip(names, row, strict=True)) for row in cursor.fetchall()]
    head = {"id": job_id, "status": status, "total": total, "done": done, "hits": hits}
    return head, tasks


def _position(database: str) -> int:
    with psycopg.connect(database) as conn:
        row = conn.execute("SELECT value FROM positions WHERE name = 'coordinate'").fetchone()
    return int(row[0]) if row else 0


def _wait_done(database: str, alert_id: int, logs: Any) -> dict[str, dict[str, Any]]:
    """The alert's warnings once the coordinator committed its position past it."""
    deadline = time.monotonic() + 180
    while time.monotonic() < deadline:
        if _position(database) >= alert_id:
            return _warnings(database, alert_id)
        time.sleep(0.5)
    raise AssertionError(
        f"alert {alert_id} not coordinated: {_tasks(database, alert_id)}\n{logs()}"
    )


def test_the_warning_search_runs_as_unit_day_tasks_on_the_workers(
    work_dir: Path, nats_server: str, database: str
) -> None:
    cluster = Cluster(work_dir / "cluster", nats_server, database)
    cluster.add_units([("hq", None), *((u, "hq") for u in UNITS)])
    hq = cluster.token("hq", "admin")
    analyst_a = cluster.token("a", "analyst")
    _seed(ParquetEventStore(cluster.store))
    cluster.start(workers=2)
    try:
        alert_id = _record_alert(database)
        deadline = time.monotonic() + 180
        job: dict[str, Any] = {}
        warned: dict[str, dict[str, Any]] = {}
        while time.monotonic() < deadline:
            job, tasks = _tasks(database, alert_id)
            warned = _warnings(database, alert_id)
            if job.get("status") == "done" and set(warned) == {"b", "c"}:
                break
            time.sleep(0.5)
        assert job.get("status") == "done", f"{job}\n{cluster.logs()}"
        # One task per target unit and day of stored events in the look-back (30 days before
        # the alert, to now): b's day 40 days back is not one, a (the source) is never
        # searched, d and hq store nothing.
        expected_days = {
            (u, (T0 - timedelta(days=n)).date().isoformat())
            for u in ("b", "c")
            for n in range(0, 12)
            if not (u == "c" and n in (0, 1, 2))
        }
        assert {(t["unit"], t["day"]) for t in tasks} == expected_days
        assert {t["status"] for t in tasks} == {"done"}, tasks
        assert job["total"] == job["done"] == len(tasks)
        # Each task row names the worker process that ran it.
        pids = {w.process.pid for w in cluster.workers if w.process is not None}
        assert {int(str(t["worker"]).split(":")[1]) for t in tasks} <= pids, tasks
        hit_days = {(t["unit"], t["day"]): t["hits"] for t in tasks if t["hits"]}
        assert hit_days == {("b", "2024-04-30"): 1, ("b", "2024-04-29"): 2, ("c", "2024-04-26"): 1}
        assert job["hits"] == 4
        # The job is the centre's: listed with its progress for hq, not found for unit a.
        with cluster.api.client(hq) as http:
            listed = http.get("/api/v1/retrohunts").json()["items"]
            (mine,) = [j for j in listed if j["id"] == job["id"]]
            assert mine["kind"] == "warning" and mine["unit"] == "hq", mine
            assert mine["progress"] == 1.0 and mine["units"] == ["b", "c", "d", "hq"], mine
            assert mine["units_done"] == 4 and mine["hits"] == 4, mine
        with cluster.api.client(analyst_a) as http:
            assert http.get(f"/api/v1/retrohunts/{job['id']}").status_code == 404
            assert all(j["id"] != job["id"] for j in http.get("/api/v1/retrohunts").json()["items"])
    finally:
        cluster.kill_all()

    # The embedded coordinator (search in-process) over the same events and the same alert.
    embedded = open_state(f"sqlite:///{work_dir / 'embedded.db'}")
    try:
        with embedded.session() as session:
            add_unit(session, name="hq", parent=None)
            for unit in UNITS:
                add_unit(session, name=unit, parent="hq")
        alone_id = _record_alert(f"sqlite:///{work_dir / 'embedded.db'}")
        coordinator = Coordinator(embedded, ParquetEventStore(cluster.store), WarningPolicy())
        assert coordinator.process(alone_id) == 2
    finally:
        embedded.close()
    alone = _warnings(f"sqlite:///{work_dir / 'embedded.db'}", alone_id)
    assert warned == alone
    assert warned["b"]["hits_total"] == 3 and warned["c"]["hits_total"] == 1
    assert [h["host"] for h in warned["b"]["hits"]] == ["b-ws2", "b-ws2", "b-ws1"]
    assert {h["field"] for h in warned["c"]["hits"]} == {"Query"}
    assert warned["b"]["observables"] == [
        {"type": "url", "value": URL},
        {"type": "ip", "value": IP},
    ]


def test_a_cancelled_warning_search_warns_nobody_and_coordination_goes_on(
    work_dir: Path, nats_server: str, database: str
) -> None:
    """No worker at first: the job waits, queued, visible to the centre with its progress; a
    cancel skips its tasks and the coordinator moves past the alert without a warning. With a
    worker started, the next alert's search runs and warns."""
    cluster = Cluster(work_dir / "cluster", nats_server, database)
    cluster.add_units([("hq", None), *((u, "hq") for u in UNITS)])
    hq = cluster.token("hq", "admin")
    _seed(ParquetEventStore(cluster.store))
    cluster.start(workers=0)
    try:
        first = _record_alert(database)
        deadline = time.monotonic() + 120
        job, tasks = _tasks(database, first)
        while not tasks and time.monotonic() < deadline:
            time.sleep(0.5)
            job, tasks = _tasks(database, first)
        assert tasks, cluster.logs()
        with cluster.api.client(hq) as http:
            waiting = http.get(f"/api/v1/retrohunts/{job['id']}").json()
            assert waiting["kind"] == "warning" and waiting["status"] == "queued", waiting
            assert waiting["progress"] == 0 and waiting["files_total"] == len(tasks) == 21
            answer = http.post(f"/api/v1/retrohunts/{job['id']}/cancel")
            assert answer.status_code == 200, answer.text
        assert _wait_done(database, first, cluster.logs) == {}
        job, tasks = _tasks(database, first)
        assert job["status"] == "cancelled" and {t["status"] for t in tasks} == {"skipped"}

        cluster.add_worker().start()
        second = _record_alert(database, "warning-queue-2")
        warned = _wait_done(database, second, cluster.logs)
        assert set(warned) == {"b", "c"}
        assert warned["b"]["hits_total"] == 3 and warned["c"]["hits_total"] == 1
        job, tasks = _tasks(database, second)
        assert job["status"] == "done" and {t["status"] for t in tasks} == {"done"}
    finally:
        cluster.kill_all()


def test_a_search_from_a_process_without_nats_is_published_by_the_api_sweep(
    work_dir: Path, nats_server: str, database: str
) -> None:
    """A coordinator in a process with no NATS connection (a scheduler given only --database)
    records the tasks ``pending``; the api's sweep publishes them, a worker runs them, and the
    result is the in-process search's."""
    cluster = Cluster(work_dir / "cluster", nats_server, database)
    cluster.add_units([("hq", None), *((u, "hq") for u in UNITS)])
    store = ParquetEventStore(cluster.store)
    _seed(store)
    cluster.start(workers=1)
    state = open_state(database)
    try:
        window = {"time_from": T0 - timedelta(days=30), "time_to": T0 + timedelta(days=1)}
        args = (9999, OBSERVABLES, ["b", "c", "d"])
        queued = QueuedWarningSearch(state, store, None).search(
            *args, max_hits=2, stop=threading.Event(), **window
        )
        local = LocalSearch(store).search(*args, max_hits=2, stop=threading.Event(), **window)
        assert queued == local
        assert set(queued.found) == {"b", "c"} and queued.absent == ["d"]
        assert queued.found["b"][1] == 3 and len(queued.found["b"][0]) == 2
        job, tasks = _tasks(database, 9999)
        assert job["status"] == "done" and {t["status"] for t in tasks} == {"done"}
        (worker,) = [w.process.pid for w in cluster.workers if w.process is not None]
        assert {int(str(t["worker"]).split(":")[1]) for t in tasks} == {worker}
    finally:
        state.close()
        cluster.kill_all()
