"""Retro-hunts on the scale-out work queue: one job's wall time with 1 and 2 workers, against
the embedded in-process runner over the same stored events (issue 14).

The store is built once, as bench_coordination.py builds it: the OTRF atomic Windows
recordings normalised by the worker's decoder and written with the event store's writer,
``--events`` events over ``--days`` days in each of ``--units`` units (so a job is
``units x days`` tasks). Then, over that same store:

- **embedded**: ``RetroHuntRunner`` in this process (SQLite state), one job at a time;
- **queue, N workers**: fresh NATS (``sync_interval: always``) and PostgreSQL, ``vedette serve
  --role api`` and N ``--role worker`` processes (starter rules, ``--hunt-threads 1``), the
  job posted to ``POST /api/v1/retrohunts`` and polled until done.

Two jobs each: one Sigma rule (SigmaHQ "Bypass UAC via CMSTP": most rows are skipped before
their JSON is decoded) and ``--indicators`` indicators (every row decoded and probed). Wall
time from submit to done, events/s, CPU seconds spent meanwhile (the bench process for the
embedded runner, the worker processes for the queue: the machine is shared, so events per
CPU-second is the steadier figure), hits (must be equal across modes), and how many tasks each
worker ran (from ``retrohunt_tasks``).

    .venv/bin/python bench/bench_huntqueue.py [--events 100000] [--days 10] [--units 2]
        [--workers 1 2] [--indicators 10000]
"""

from __future__ import annotations

import argparse
import http.client
import json
import os
import platform
import shutil
import subprocess
import sys
import tempfile
import time
from collections import Counter
from pathlib import Path
from typing import Any

import psycopg

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "tests"))

from bench_coordination import (
    RULE,
    fill_store,
    indicator_feed,
    new_state,
    template_lines,
    template_table,
)
from bench_scaleout import SERVER_ENV, VEDETTE, Api, admin, free_port, stop_process
from bench_serve import proc_cpu
from natsserver import NatsServer
from pgserver import start_postgres
from vedette.server.retrohunt import RetroHuntRunner, intel_detector, sigma_detector
from vedette.store.eventstore import ParquetEventStore
from vedette.store.state.retrohunts import RetroHunt

STARTER = Path(__file__).resolve().parent.parent / "src" / "vedette" / "rulepacks" / "starter"


def embedded(
    work: Path, store: ParquetEventStore, units: list[str], feed: str
) -> list[dict[str, Any]]:
    """Both jobs through the in-process runner."""
    state, root = new_state(work, units)
    runner = RetroHuntRunner(state, store, workers=1)
    out = []
    try:
        for name, detector in (
            ("sigma", sigma_detector(RULE.read_text())[0]),
            ("intel", intel_detector(feed, "list")[0]),
        ):
            start, cpu = time.perf_counter(), time.process_time()
            job = runner.submit(
                None,
                owner_unit_id=root,
                kind=name,
                title="bench",
                spec={},
                detector=detector,
                units=units,
                time_from=None,
                time_to=None,
            )
            runner.wait(job)
            seconds, cpu = time.perf_counter() - start, time.process_time() - cpu
            with state.session(readonly=True) as session:
                row = session.get(RetroHunt, job)
                assert row is not None and row.status == "done", row and row.error
                out.append(
                    {"job": name, "mode": "embedded", "seconds": seconds, "cpu": cpu,
                     "events": row.events_read, "hits": row.hits, "tasks": {}}
                )  # fmt: skip
    finally:
        runner.stop()
        state.close()
    return out


def post(api: Api, token: str, body: dict[str, Any]) -> int:
    con = http.client.HTTPConnection("127.0.0.1", api.port, timeout=60)
    try:
        con.request(
            "POST",
            "/api/v1/retrohunts",
            body=json.dumps(body),
            headers={"Authorization": f"Bearer {token}", "Content-Type": "application/json"},
        )
        answer = con.getresponse()
        data = answer.read()
        assert answer.status == 201, data
        return int(json.loads(data)["id"])
    finally:
        con.close()


def queued(
    work: Path, store: Path, units: list[str], feed: str, workers: int
) -> list[dict[str, Any]]:
    """Both jobs through an api and ``workers`` workers on fresh NATS and PostgreSQL."""
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
    out = []
    try:
        admin(api.home, database, "unit", "add", "hq")
        for unit in units:
            admin(api.home, database, "unit", "add", unit, "--parent", "hq")
        token = admin(api.home, database, "token", "add", "--unit", "hq", "--role", "admin")
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
        for name, body in (
            ("sigma", {"rule": RULE.read_text(), "units": units}),
            ("intel", {"indicators": feed, "format": "list", "units": units}),
        ):
            cpu = sum(proc_cpu(p.pid) for p in procs)
            start = time.perf_counter()
            job_id = post(api, token, body)
            while True:
                job = json.loads(api.get(f"/api/v1/retrohunts/{job_id}", token)[1])
                if job["status"] in ("done", "cancelled", "failed"):
                    break
                time.sleep(0.2)
            seconds = time.perf_counter() - start
            cpu = sum(proc_cpu(p.pid) for p in procs) - cpu
            assert job["status"] == "done", job
            with psycopg.connect(database) as conn:
                rows = conn.execute(
                    "SELECT worker FROM retrohunt_tasks WHERE job_id = %s", (job_id,)
                ).fetchall()
            tasks = Counter(str(w).split(":")[1] for (w,) in rows)
            out.append(
                {"job": name, "mode": f"queue, {workers} worker(s)", "seconds": seconds, "cpu": cpu,
                 "events": job["events_read"], "hits": job["hits"], "tasks": dict(tasks)}
            )  # fmt: skip
    finally:
        for proc in procs:
            stop_process(proc)
        stop_process(api.process)
        nats.stop()
        stop_pg()
    return out


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--events", type=int, default=100_000, help="events per unit")
    parser.add_argument("--days", type=int, default=10)
    parser.add_argument("--units", type=int, default=2)
    parser.add_argument("--workers", type=int, nargs="+", default=[1, 2])
    parser.add_argument("--indicators", type=int, default=10_000)
    parser.add_argument("--json", type=Path)
    args = parser.parse_args()
    work = Path(tempfile.mkdtemp(prefix="vedette-bench-huntqueue-"))
    try:
        units = [f"unit-{chr(ord('a') + n)}" for n in range(args.units)]
        lines = template_lines()
        store = ParquetEventStore(work / "store")
        for unit in units:
            fill_store(store, template_table(lines, unit), unit, args.events, args.days)
        feed = indicator_feed(args.indicators)
        results = embedded(work, store, units, feed)
        for workers in args.workers:
            results += queued(work, store.root, units, feed, workers)
        load = os.getloadavg()[0]
        print(
            f"\n{args.units} units x {args.days} days x {args.events // args.days:,} events "
            f"({args.units * args.events:,} events, {args.units * args.days} tasks); "
            f"{os.cpu_count()} cores, load {load:.1f}, {platform.python_version()}\n"
        )
        print(
            "| job | mode | wall | events/s | CPU (runner or workers) | events per CPU-s "
            "| hits | tasks per worker (pid: n) |"
        )
        print("|---|---|---|---|---|---|---|---|")
        for r in results:
            tasks = ", ".join(f"{p}: {n}" for p, n in sorted(r["tasks"].items())) or "-"
            print(
                f"| {r['job']} | {r['mode']} | {r['seconds']:.1f} s "
                f"| {r['events'] / r['seconds']:,.0f} | {r['cpu']:.1f} s "
                f"| {r['events'] / max(r['cpu'], 0.01):,.0f} | {r['hits']:,} | {tasks} |"
            )
        for job in ("sigma", "intel"):
            found = {r["hits"] for r in results if r["job"] == job}
            events = {r["events"] for r in results if r["job"] == job}
            assert len(found) == 1 and len(events) == 1, (job, found, events)
        if args.json:
            args.json.parent.mkdir(parents=True, exist_ok=True)
            args.json.write_text(json.dumps(results, indent=2))
    finally:
        shutil.rmtree(work, ignore_errors=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
