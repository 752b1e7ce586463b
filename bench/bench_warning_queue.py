"""Early-warning searches on the scale-out work queue: alert to warnings with 1 and 2 workers,
against the embedded in-process search over the same stored events (issue 14).

The store is built as bench_coordination.py builds it (the OTRF atomic Windows recordings,
normalised by the worker's decoder, written with the event store's writer): ``--events``
events over ``--days`` days in each of ``--units`` target units, plus the source unit-a. An
intel alert in unit-a with the recordings' public address as observable is then coordinated:

- **embedded**: ``Coordinator.process`` in this process (SQLite state, in-process search);
- **queue, N workers**: fresh NATS and PostgreSQL, ``vedette serve --role api`` and N
  ``--role worker`` processes; the alert is recorded in PostgreSQL as a worker would and timed
  until the api's coordinator committed its position past it (warnings written).

Wall time, CPU seconds of the workers meanwhile, warnings and hits (must be equal across modes),
and how many (unit, day) tasks each worker ran.

    .venv/bin/python bench/bench_warning_queue.py [--events 100000] [--days 10] [--units 2]
        [--workers 1 2]
"""

from __future__ import annotations

import argparse
import os
import platform
import shutil
import subprocess
import sys
import tempfile
import time
from collections import Counter
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import psycopg

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "tests"))

from bench_coordination import INDICATOR, fill_store, new_state, template_lines, template_table
from bench_huntqueue import STARTER
from bench_scaleout import SERVER_ENV, VEDETTE, Api, admin, free_port, stop_process
from bench_serve import proc_cpu
from natsserver import NatsServer
from pgserver import start_postgres
from vedette.alerts.warning import Coordinator, WarningPolicy
from vedette.store.eventstore import ParquetEventStore
from vedette.store.state import open_state, record_detection, unit_by_name
from vedette.store.state.db import StateDB
from vedette.store.state.warnings import EarlyWarning


def record_alert(state: StateDB) -> int:
    """The intel alert in unit-a; its id."""
    with state.session() as session:
        alert, _ = record_detection(
            session,
            unit_id=unit_by_name(session, "unit-a").id,
            fingerprint="bench-warning-queue",
            kind="intel",
            rule_id="bench-intel",
            rule_title="Known bad address",
            level="high",
            when=datetime.now(UTC),
            host="WORKSTATION5",
            observables=[{"type": "ip", "field": "DestinationIp", "value": INDICATOR}],
        )
        return alert.id


def warnings_of(state: StateDB, alert_id: int) -> dict[int, tuple[int, int]]:
    """hits_total and hits kept, by warned unit id."""
    with state.session(readonly=True) as session:
        rows = session.query(EarlyWarning).filter(EarlyWarning.source_alert_id == alert_id)
        return {w.unit_id: (w.hits_total, len(w.hits)) for w in rows}


def embedded(work: Path, store: ParquetEventStore, units: list[str]) -> dict[str, Any]:
    state, _ = new_state(work, ["unit-a", *units])
    try:
        alert_id = record_alert(state)
        coordinator = Coordinator(state, store, WarningPolicy(lookback_days=30))
        start, cpu = time.perf_counter(), time.process_time()
        raised = coordinator.process(alert_id)
        seconds, cpu = time.perf_counter() - start, time.process_time() - cpu
        found = warnings_of(state, alert_id)
    finally:
        state.close()
    hits = sum(t for t, _ in found.values())
    return {"mode": "embedded", "seconds": seconds, "cpu": cpu, "warnings": raised,
            "hits": hits, "tasks": {}}  # fmt: skip


def queued(work: Path, store: Path, units: list[str], workers: int) -> dict[str, Any]:
    root = work / f"queue-{workers}"
    nats = NatsServer(root=root / "nats", port=free_port())
    nats.root.mkdir(parents=True)
    nats.start()
    database, stop_pg = start_postgres(root / "pg")
    common = ["--nats", nats.url, "--database", database, "--store", str(store),
              "--partitions", str(workers), "--rules", str(STARTER)]  # fmt: skip
    api = Api(home=root / "api", common=common)
    api.home.mkdir()
    procs: list[subprocess.Popen[bytes]] = []
    try:
        admin(api.home, database, "unit", "add", "hq")
        for unit in ["unit-a", *units]:
            admin(api.home, database, "unit", "add", unit, "--parent", "hq")
        api.start()
        for n in range(workers):
            home = root / f"worker-{n}"
            home.mkdir()
            command = [*VEDETTE, "serve", "--role", "worker", "--home", str(home), *common,
                       "--hunt-threads", "1", "--log-level", "warning"]  # fmt: skip
            log = (home / "worker.log").open("wb")
            procs.append(
                subprocess.Popen(command, stdout=log, stderr=subprocess.STDOUT, env=SERVER_ENV)
            )
        for home in (root / f"worker-{n}" for n in range(workers)):
            while "running" not in (home / "worker.log").read_text(errors="replace"):
                time.sleep(0.5)
        state = open_state(database)
        try:
            cpu = sum(proc_cpu(p.pid) for p in procs)
            start = time.perf_counter()
            alert_id = record_alert(state)
            while True:
                with psycopg.connect(database) as conn:
                    row = conn.execute(
                        "SELECT value FROM positions WHERE name = 'coordinate'"
                    ).fetchone()
                if row and int(row[0]) >= alert_id:
                    break
                time.sleep(0.2)
            seconds = time.perf_counter() - start
            cpu = sum(proc_cpu(p.pid) for p in procs) - cpu
            found = warnings_of(state, alert_id)
        finally:
            state.close()
        with psycopg.connect(database) as conn:
            rows = conn.execute(
                "SELECT t.worker FROM retrohunt_tasks t JOIN retrohunts j ON j.id = t.job_id"
                " WHERE j.kind = 'warning'"
            ).fetchall()
        tasks = Counter(str(w).split(":")[1] for (w,) in rows)
    finally:
        for proc in procs:
            stop_process(proc)
        stop_process(api.process)
        nats.stop()
        stop_pg()
    hits = sum(t for t, _ in found.values())
    return {"mode": f"queue, {workers} worker(s)", "seconds": seconds, "cpu": cpu,
            "warnings": len(found), "hits": hits, "tasks": dict(tasks)}  # fmt: skip


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--events", type=int, default=100_000, help="events per target unit")
    parser.add_argument("--days", type=int, default=10)
    parser.add_argument("--units", type=int, default=2, help="target units (besides unit-a)")
    parser.add_argument("--workers", type=int, nargs="+", default=[1, 2])
    args = parser.parse_args()
    work = Path(tempfile.mkdtemp(prefix="vedette-bench-warnq-"))
    try:
        units = [f"unit-{chr(ord('b') + n)}" for n in range(args.units)]
        lines = template_lines()
        store = ParquetEventStore(work / "store")
        for unit in ["unit-a", *units]:
            fill_store(store, template_table(lines, unit), unit, args.events, args.days)
        results = [embedded(work, store, units)]
        for workers in args.workers:
            results.append(queued(work, store.root, units, workers))
        load = os.getloadavg()[0]
        print(
            f"\n{args.units} target units x {args.days} days x {args.events // args.days:,} "
            f"events ({args.units * args.events:,} events searched, {args.units * args.days} "
            f"tasks); {os.cpu_count()} cores, load {load:.1f}, {platform.python_version()}\n"
        )
        print("| mode | alert to warnings | CPU (bench or workers) | warnings | hits "
              "| tasks per worker (pid: n) |")  # fmt: skip
        print("|---|---|---|---|---|---|")
        for r in results:
            tasks = ", ".join(f"{p}: {n}" for p, n in sorted(r["tasks"].items())) or "-"
            print(f"| {r['mode']} | {r['seconds']:.1f} s | {r['cpu']:.1f} s | {r['warnings']} "
                  f"| {r['hits']:,} | {tasks} |")  # fmt: skip
        assert len({(r["warnings"], r["hits"]) for r in results}) == 1, results
    finally:
        shutil.rmtree(work, ignore_errors=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
