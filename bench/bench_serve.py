"""Sustained ingest of a real ``vedette serve``: events/s stored, ingest-to-alert latency, memory.

A load generator on loopback against the real server (a subprocess on a temporary home, units and
tokens made with ``vedette admin``):

- events: every ``.evtx`` of ``../shared/datasets/evtx-attack-samples`` read with
  ``vedette.sources`` and written back as JSON in the two shapes the readers know best, half
  Winlogbeat/ECS (``winlog``) and half evtx_dump (``Event.System``/``EventData``), each stamped
  with the run's date (a live sender sends today's events: the Parquet store partitions by day);
  syslog lines from ``misc-logs/syslog/loghub`` (Linux, OpenSSH);
- senders: ``--clients`` processes POST pre-built NDJSON batches of ``--batch`` events (optionally
  gzip) with their own keep-alive connection, at ``--rate`` events/s in total (0: flat out), and
  one process writes ``--syslog-share`` of the rate as newline-framed syslog over TCP;
- markers: every ``--marker-every`` s one event that fires a known Sigma rule, on a host of its
  own (``bench-marker-N``), so each forms its own alert; ``/api/v1/alerts`` is polled every
  ``--poll`` s and the latency is the time the alert is first visible minus the send time
  (every marker counts, those of the warm-up too; p99 per minute and markers over 2 s beside);
- stalls: the server's own log lines for a worker step over 1 s, an event-loop stall over 1 s
  and a worker garbage collection over 0.25 s, counted with the longest;
- samples each second: acknowledged and stored counts (``/api/v1/units``), spool depth and lag
  (``/metrics``, every 5 s as a Prometheus scrape would), server RSS/PSS (``/proc``), CPU of the
  server and of the load generator (``/proc/PID/stat``).

Prints a table; ``--json FILE`` writes every sample too. The machine has 2 cores: the client's
CPU share is printed beside the figures, because what it uses the server does not get.

    .venv/bin/python bench/bench_serve.py --duration 60 [--rate 10000] [--clients 2] [--gzip]
        [--linux-rules] [--json bench/out/serve.json]
"""

from __future__ import annotations

import argparse
import gzip
import http.client
import itertools
import json
import multiprocessing as mp
import os
import platform
import re
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import orjson

ROOT = Path(__file__).resolve().parent.parent
DATASETS = Path(os.environ.get("VEDETTE_DATASETS", ROOT.parent / "shared" / "datasets"))
EVTX = DATASETS / "evtx-attack-samples"
SYSLOG = [
    DATASETS / "misc-logs/syslog/loghub/Linux/Linux_2k.log",
    DATASETS / "misc-logs/syslog/loghub/OpenSSH/OpenSSH_2k.log",
]
RULES_WINDOWS = DATASETS / "sigma/rules/windows"
RULES_LINUX = DATASETS / "sigma/rules/linux"
MARKER_SAMPLE = ROOT / "samples/windows/WS-FIN-07/sysmon.jsonl"
VEDETTE = [sys.executable, "-m", "vedette"]
SERVER_ENV = dict(os.environ)
TICK = os.sysconf("SC_CLK_TCK")
PAGE = os.sysconf("SC_PAGE_SIZE")

# Fields of a flat Windows event that go back into the System part of either JSON shape.
_SYSTEM = {
    "EventID", "Channel", "Provider_Name", "Provider_Guid", "Computer", "EventRecordID",
    "TimeCreated", "Version", "Level", "Task", "Opcode", "Keywords", "Execution_ProcessID",
    "Execution_ThreadID", "UserID", "Security_UserID", "Correlation_ActivityID",
    "Correlation_RelatedActivityID", "EventSourceName",
}  # fmt: skip


# -- events ---------------------------------------------------------------------------------


def _iso(moment: datetime) -> str:
    return moment.strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def ecs_record(fields: dict[str, Any], when: datetime) -> dict[str, Any]:
    """A flat Windows event as Winlogbeat/Elastic Agent sends it."""
    data = {k: v for k, v in fields.items() if k not in _SYSTEM}
    winlog: dict[str, Any] = {
        "event_id": fields.get("EventID"),
        "channel": fields.get("Channel"),
        "provider_name": fields.get("Provider_Name"),
        "computer_name": fields.get("Computer"),
        "record_id": fields.get("EventRecordID"),
        "event_data": data,
    }
    if "Provider_Guid" in fields:
        winlog["provider_guid"] = fields["Provider_Guid"]
    for name, key in (("Task", "task"), ("Opcode", "opcode"), ("Keywords", "keywords")):
        if name in fields:
            winlog[key] = fields[name]
    if "Execution_ProcessID" in fields:
        winlog["process"] = {
            "pid": fields["Execution_ProcessID"],
            "thread": {"id": fields.get("Execution_ThreadID")},
        }
    if "UserID" in fields:
        winlog["user"] = {"identifier": fields["UserID"]}
    return {
        "@timestamp": _iso(when),
        "event": {"code": str(fields.get("EventID")), "kind": "event"},
        "host": {"name": fields.get("Computer")},
        "winlog": winlog,
    }


def evtx_dump_record(fields: dict[str, Any], when: datetime) -> dict[str, Any]:
    """A flat Windows event as evtx_dump's JSON output has it."""
    data = {k: v for k, v in fields.items() if k not in _SYSTEM}
    system: dict[str, Any] = {
        "Provider": {
            "#attributes": {
                "Name": fields.get("Provider_Name"),
                **({"Guid": fields["Provider_Guid"]} if "Provider_Guid" in fields else {}),
            }
        },
        "EventID": fields.get("EventID"),
    }
    for key in ("Version", "Level", "Task", "Opcode", "Keywords"):
        if key in fields:
            system[key] = fields[key]
    system["TimeCreated"] = {"#attributes": {"SystemTime": _iso(when)}}
    system["EventRecordID"] = fields.get("EventRecordID")
    if "Execution_ProcessID" in fields:
        system["Execution"] = {
            "#attributes": {
                "ProcessID": fields["Execution_ProcessID"],
                "ThreadID": fields.get("Execution_ThreadID"),
            }
        }
    system["Channel"] = fields.get("Channel")
    system["Computer"] = fields.get("Computer")
    if "UserID" in fields:
        system["Security"] = {"#attributes": {"UserID": fields["UserID"]}}
    return {"Event": {"System": system, "EventData": data}}


def windows_lines(start: datetime) -> list[bytes]:
    """Every EVTX event of the attack samples as one NDJSON line, alternating the two shapes."""
    from vedette.sources import ReadReport, iter_input_files, read_events

    lines: list[bytes] = []
    for path in iter_input_files([str(EVTX)]):
        if path.suffix.lower() != ".evtx":
            continue
        for batch in read_events(path, report=ReadReport()):
            for event in batch:
                when = start + timedelta(milliseconds=len(lines))
                shape = ecs_record if len(lines) % 2 == 0 else evtx_dump_record
                lines.append(orjson.dumps(shape(event.fields, when), default=str))
    return lines


def syslog_lines() -> list[bytes]:
    """The loghub syslog lines (RFC 3164 without PRI, as the files have them)."""
    out: list[bytes] = []
    for path in SYSLOG:
        out.extend(line for line in path.read_bytes().splitlines() if line.strip())
    return out


def marker_record(host: str, when: datetime) -> bytes:
    """The LSASS dump (comsvcs.dll) event of the bundled sample, on a host of its own."""
    for line in MARKER_SAMPLE.read_bytes().splitlines():
        record = orjson.loads(line)
        system = record["Event"]["System"]
        data = record["Event"]["EventData"]
        if system["EventID"] == 10 and "comsvcs" in str(data.get("CallTrace")).lower():
            system["Computer"] = host
            system["TimeCreated"] = {"#attributes": {"SystemTime": _iso(when)}}
            return orjson.dumps(record)
    raise SystemExit(f"no LSASS access event in {MARKER_SAMPLE}")


def bodies(lines: list[bytes], size: int, gzipped: bool) -> list[bytes]:
    """Pre-built request bodies, so the senders spend no CPU on encoding."""
    out = []
    for i in range(0, len(lines) - size + 1, size):
        body = b"\n".join(lines[i : i + size]) + b"\n"
        out.append(gzip.compress(body, 1) if gzipped else body)
    return out


# -- the server -----------------------------------------------------------------------------


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def admin(home: Path, *args: str) -> str:
    done = subprocess.run(
        [*VEDETTE, "admin", "--home", str(home), *args],
        capture_output=True,
        text=True,
        check=False,
        env={**SERVER_ENV, "VEDETTE_PASSWORD": "bench bench bench bench"},
    )
    if done.returncode:
        raise SystemExit(f"vedette admin {' '.join(args)}: {done.stderr}")
    return done.stdout.strip().splitlines()[-1] if done.stdout.strip() else ""


class Server:
    """``vedette serve`` in a subprocess on a temporary home."""

    def __init__(self, home: Path, rules: list[Path], extra: list[str]) -> None:
        self.home = home
        self.port = free_port()
        self.syslog_port = free_port()
        for name, parent in (("hq", None), ("win", "hq"), ("lin", "hq")):
            admin(home, "unit", "add", name, *(["--parent", parent] if parent else []))
        self.ingest = admin(home, "token", "add", "--unit", "win", "--role", "ingest")
        self.analyst = admin(home, "token", "add", "--unit", "hq", "--role", "analyst")
        self.log = (home / "serve.log").open("wb")
        started = time.monotonic()
        self.process = subprocess.Popen(
            [
                *VEDETTE, "serve", "--home", str(home), "--http", f"127.0.0.1:{self.port}",
                "--syslog-tcp", f"127.0.0.1:{self.syslog_port}=lin", "--unit-quota", "0",
                "--log-level", "warning",
                *itertools.chain.from_iterable(("--rules", str(r)) for r in rules), *extra,
            ],
            stdout=self.log,
            stderr=subprocess.STDOUT,
            env=SERVER_ENV,
        )  # fmt: skip
        self.wait_ready()
        self.load_seconds = time.monotonic() - started

    def wait_ready(self, timeout: float = 600) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise SystemExit((self.home / "serve.log").read_text(errors="replace"))
            try:
                if self.get("/readyz")[0] == 200:
                    return
            except OSError:
                pass
            time.sleep(0.2)
        raise SystemExit("vedette serve did not become ready")

    def get(self, path: str, token: str | None = None) -> tuple[int, bytes]:
        con = http.client.HTTPConnection("127.0.0.1", self.port, timeout=30)
        try:
            headers = {"Authorization": f"Bearer {token}"} if token else {}
            con.request("GET", path, headers=headers)
            answer = con.getresponse()
            return answer.status, answer.read()
        finally:
            con.close()

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(120)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        self.log.close()


def proc_tree(pid: int) -> list[int]:
    """The process and its live descendants (``--worker-process`` detects in a child)."""
    children: dict[int, list[int]] = {}
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                ppid = int((entry / "stat").read_text().rsplit(")", 1)[1].split()[1])
            except (OSError, IndexError, ValueError):
                continue
            children.setdefault(ppid, []).append(int(entry.name))
    out, todo = [], [pid]
    while todo:
        current = todo.pop()
        out.append(current)
        todo.extend(children.get(current, []))
    return out


def proc_cpu(pid: int, *, tree: bool = False) -> float:
    """CPU seconds (user + system) of a process; with ``tree``, also of its descendants, live
    (their own time) or ended and reaped (counted in the parent's cutime and cstime)."""
    total = 0
    for index, member in enumerate(proc_tree(pid) if tree else [pid]):
        try:
            parts = Path(f"/proc/{member}/stat").read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        total += int(parts[11]) + int(parts[12])
        if tree and index == 0:
            total += int(parts[13]) + int(parts[14])
    return total / TICK


def proc_memory(pid: int) -> tuple[float, float]:
    """RSS and PSS in MiB of a process and its descendants, summed."""
    rss = pss = 0.0
    for member in proc_tree(pid):
        try:
            for line in Path(f"/proc/{member}/smaps_rollup").read_text().splitlines():
                if line.startswith("Rss:"):
                    rss += int(line.split()[1]) / 1024
                elif line.startswith("Pss:"):
                    pss += int(line.split()[1]) / 1024
        except OSError:
            pass
    return rss, pss


_METRIC = re.compile(rb"^(vedette_[a-z_]+)(?:\{[^}]*\})? ([0-9.e+-]+)$", re.M)


def metrics(server: Server) -> dict[str, float]:
    """Sums of the centre's Prometheus samples by name."""
    out: dict[str, float] = {}
    for raw, value in _METRIC.findall(server.get("/metrics")[1]):
        name = raw.decode().removesuffix("_total")
        out[name] = out.get(name, 0.0) + float(value)
    return out


def unit_counts(server: Server) -> dict[str, tuple[int, int]]:
    """(received, stored) per unit."""
    items = orjson.loads(server.get("/api/v1/units", server.analyst)[1])["items"]
    return {u["name"]: (u["events_received"], u["events_stored"]) for u in items}


# -- senders --------------------------------------------------------------------------------


def http_sender(
    port: int,
    token: str,
    payloads: list[tuple[bytes, int]],
    gzipped: bool,
    rate: float,
    offset: int,
    stop_at: float,
    acked: Any,
    refused: Any,
) -> None:
    """POST batches round-robin at ``rate`` events/s (0: flat out) until ``stop_at``."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    headers = {"Authorization": f"Bearer {token}", "Content-Type": "application/x-ndjson"}
    if gzipped:
        headers["Content-Encoding"] = "gzip"
    con = http.client.HTTPConnection("127.0.0.1", port, timeout=60)
    sent = 0
    start = time.time()
    for body, count in itertools.islice(itertools.cycle(payloads), offset, None):
        now = time.time()
        if now >= stop_at:
            break
        if rate > 0:
            due = start + sent / rate
            if due > now:
                time.sleep(min(due - now, stop_at - now))
        while True:
            con.request("POST", "/api/v1/events", body=body, headers=headers)
            answer = con.getresponse()
            answer.read()
            if answer.status in (200, 202):
                break
            with refused.get_lock():
                refused.value += 1
            time.sleep(min(float(answer.getheader("Retry-After") or 1), 1.0))
            if time.time() >= stop_at:
                return
        sent += count
        with acked.get_lock():
            acked.value += count


def syslog_sender(
    port: int,
    lines: list[bytes],
    rate: float,
    share: float,
    stop_at: float,
    sent_counter: Any,
    acked: Any,
) -> None:
    """Newline-framed syslog over one TCP connection, in chunks of 100 lines.

    At a target rate it keeps to ``rate``; flat out it keeps to ``share`` of all events, paced
    by what the HTTP senders got acknowledged (TCP has no acknowledgement to pace by).
    """
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    chunks = [b"\n".join(lines[i : i + 100]) + b"\n" for i in range(0, len(lines) - 99, 100)]
    sock = socket.create_connection(("127.0.0.1", port))
    sent = 0
    start = time.time()
    for chunk in itertools.cycle(chunks):
        now = time.time()
        if now >= stop_at:
            break
        if rate > 0:
            due = start + sent / rate
            if due > now:
                time.sleep(min(due - now, stop_at - now))
        else:
            while sent > acked.value * share / (1 - share) and time.time() < stop_at:
                time.sleep(0.01)
        sock.sendall(chunk)
        sent += 100
        with sent_counter.get_lock():
            sent_counter.value += 100
    sock.close()


# -- markers --------------------------------------------------------------------------------


class Markers:
    """Marker events sent on a schedule and their alerts watched for."""

    def __init__(self, server: Server, every: float, poll: float) -> None:
        self.server = server
        self.every = every
        self.poll = poll
        self.sent: dict[str, float] = {}
        self.seen: dict[str, float] = {}
        self.rule_id = ""
        self.rule_title = ""
        self._stop = threading.Event()
        self._lock = threading.Lock()

    def send(self, host: str) -> None:
        body = marker_record(host, datetime.now(UTC))
        con = http.client.HTTPConnection("127.0.0.1", self.server.port, timeout=60)
        headers = {
            "Authorization": f"Bearer {self.server.ingest}",
            "Content-Type": "application/x-ndjson",
        }
        with self._lock:
            self.sent[host] = time.time()
        con.request("POST", "/api/v1/events", body=body, headers=headers)
        answer = con.getresponse()
        answer.read()
        con.close()

    def alerts(self, limit: int) -> list[dict[str, Any]]:
        query = f"/api/v1/alerts?limit={limit}" + (
            f"&rule_id={self.rule_id}" if self.rule_id else ""
        )
        status, body = self.server.get(query, self.server.analyst)
        return orjson.loads(body)["items"] if status == 200 else []

    def calibrate(self, timeout: float = 120) -> None:
        """Send one marker on an idle server and learn which rule it fires."""
        self.send("bench-marker-calibrate")
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            hits = [a for a in self.alerts(200) if a["host"] == "bench-marker-calibrate"]
            if hits:
                self.rule_id = sorted(hits, key=lambda a: a["rule_id"])[0]["rule_id"]
                self.rule_title = next(
                    a["rule_title"] for a in hits if a["rule_id"] == self.rule_id
                )
                return
            time.sleep(0.2)
        raise SystemExit("the marker event raised no alert")

    def start(self) -> None:
        threading.Thread(target=self._send_loop, daemon=True).start()
        threading.Thread(target=self._poll_loop, daemon=True).start()

    def stop(self, drain: float) -> None:
        self._stop.set()
        deadline = time.monotonic() + drain
        while time.monotonic() < deadline and len(self.seen) < len(self.sent):
            self._poll_once()
            time.sleep(self.poll)

    def _send_loop(self) -> None:
        for n in itertools.count():
            if self._stop.wait(self.every):
                return
            self.send(f"bench-marker-{n}")

    def _poll_loop(self) -> None:
        while not self._stop.wait(self.poll):
            self._poll_once()

    def _poll_once(self) -> None:
        try:
            found = self.alerts(100)
        except OSError:
            return
        now = time.time()
        with self._lock:
            for alert in found:
                host = alert.get("host") or ""
                if host in self.sent and host not in self.seen:
                    self.seen[host] = now

    def latencies(self) -> list[float]:
        return sorted(self.seen[h] - self.sent[h] for h in self.seen)


# -- the run --------------------------------------------------------------------------------


def percentile(values: list[float], q: float) -> float:
    if not values:
        return float("nan")
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


def slope_per_min(points: list[tuple[float, float]]) -> float:
    """Least-squares slope of (seconds, value) in value per minute."""
    if len(points) < 3:
        return 0.0
    xs = [p[0] for p in points]
    ys = [p[1] for p in points]
    mx, my = statistics.fmean(xs), statistics.fmean(ys)
    den = sum((x - mx) ** 2 for x in xs)
    return 60 * sum((x - mx) * (y - my) for x, y in zip(xs, ys, strict=True)) / den if den else 0.0


def run(args: argparse.Namespace) -> dict[str, Any]:
    start_day = datetime.now(UTC).replace(microsecond=0)
    t0 = time.monotonic()
    win = windows_lines(start_day)
    sys_lines = syslog_lines()
    payloads = [(b, args.batch) for b in bodies(win, args.batch, args.gzip)]
    prepare = time.monotonic() - t0
    print(
        f"prepared {len(win):,} Windows events ({len(payloads)} bodies of {args.batch}) and "
        f"{len(sys_lines):,} syslog lines in {prepare:.1f} s",
        file=sys.stderr,
    )
    rules = [RULES_WINDOWS] + ([RULES_LINUX] if args.linux_rules else [])
    rule_files = sum(1 for r in rules for _ in r.rglob("*.yml"))
    home = Path(tempfile.mkdtemp(prefix="vedette-bench-serve-"))
    server = Server(home, rules, args.serve_arg)
    pid = server.process.pid
    loaded = metrics(server)
    print(
        f"server pid {pid} ready in {server.load_seconds:.1f} s: "
        f"{loaded.get('vedette_rules_loaded', 0):.0f} rules loaded",
        file=sys.stderr,
    )
    markers = Markers(server, args.marker_every, args.poll)
    markers.calibrate()
    print(f"marker rule: {markers.rule_id} ({markers.rule_title})", file=sys.stderr)

    http_rate = args.rate * (1 - args.syslog_share)
    syslog_rate = args.rate * args.syslog_share
    acked = mp.Value("q", 0)
    refused = mp.Value("q", 0)
    syslog_sent = mp.Value("q", 0)
    start_wall = time.time()
    stop_at = start_wall + args.duration
    ctx = mp.get_context("fork")
    procs = [
        ctx.Process(
            target=http_sender,
            args=(
                server.port,
                server.ingest,
                payloads,
                args.gzip,
                http_rate / args.clients,
                i * len(payloads) // args.clients,
                stop_at,
                acked,
                refused,
            ),
        )
        for i in range(args.clients)
    ]
    if args.syslog_share > 0:
        procs.append(
            ctx.Process(
                target=syslog_sender,
                args=(
                    server.syslog_port,
                    sys_lines,
                    syslog_rate,
                    args.syslog_share,
                    stop_at,
                    syslog_sent,
                    acked,
                ),
            )
        )
    base_counts = unit_counts(server)
    base_stored = sum(s for _, s in base_counts.values())
    base_received = sum(r for r, _ in base_counts.values())
    server_cpu0 = proc_cpu(pid, tree=True)
    for p in procs:
        p.start()
    markers.start()
    samples: list[dict[str, Any]] = []
    last_metrics: dict[str, float] = {}
    next_scrape = 0.0
    try:
        while time.time() < stop_at:
            time.sleep(1.0)
            now = time.time()
            if now >= next_scrape:
                last_metrics = metrics(server)
                next_scrape = now + 5.0
            counts = unit_counts(server)
            rss, pss = proc_memory(pid)
            sample = {
                "t": round(now - start_wall, 2),
                "acked_http": acked.value,
                "sent_syslog": syslog_sent.value,
                "received": sum(r for r, _ in counts.values()) - base_received,
                "stored": sum(s for _, s in counts.values()) - base_stored,
                "spool_depth": last_metrics.get("vedette_spool_depth_events", 0),
                "lag_s": last_metrics.get("vedette_lag_seconds", 0),
                "rss_mib": round(rss, 1),
                "pss_mib": round(pss, 1),
                "server_cpu_s": round(proc_cpu(pid, tree=True) - server_cpu0, 2),
                "client_cpu_s": round(sum(proc_cpu(p.pid or 0) for p in procs), 2),
                "markers_sent": len(markers.sent),
                "markers_seen": len(markers.seen),
            }
            samples.append(sample)
            if args.verbose:
                print(json.dumps(sample), file=sys.stderr)
        client_cpu = sum(proc_cpu(p.pid or 0) for p in procs)
        for p in procs:
            p.join(60)
        sent_end = time.time()
        # Drain: how long until everything acknowledged is stored (markers seen meanwhile).
        drain_start = time.monotonic()
        markers.stop(drain=args.drain)
        stored_final = received_final = 0
        while True:
            counts = unit_counts(server)
            received_final = sum(r for r, _ in counts.values()) - base_received
            stored_final = sum(s for _, s in counts.values()) - base_stored
            if stored_final >= received_final or time.monotonic() - drain_start > args.drain:
                break
            time.sleep(0.5)
        drain_s = time.monotonic() - drain_start
        server_cpu = proc_cpu(pid, tree=True) - server_cpu0
        final_metrics = metrics(server)
    finally:
        for p in procs:
            if p.is_alive():
                p.terminate()
        server.stop()

    wall = sent_end - start_wall
    warm = args.warmup
    steady = [s for s in samples if s["t"] >= warm]
    first, last = (steady[0], steady[-1]) if len(steady) >= 2 else (samples[0], samples[-1])
    span = last["t"] - first["t"] or 1.0
    lat = markers.latencies()
    mem_points = [(s["t"], s["rss_mib"]) for s in steady]
    pss_points = [(s["t"], s["pss_mib"]) for s in steady]
    depth_points = [(s["t"], s["spool_depth"]) for s in steady]
    result: dict[str, Any] = {
        "machine": f"{platform.machine()}, {os.cpu_count()} cores, "
        f"Python {platform.python_version()}",
        "load_average_1_5_15_at_end": [round(x, 2) for x in os.getloadavg()],
        "rules": {
            "paths": [str(r.relative_to(DATASETS)) for r in rules],
            "files": rule_files,
            "loaded": loaded.get("vedette_rules_loaded", 0),
            "not_loaded": loaded.get("vedette_rules_not_loaded", 0),
            "server_ready_s": round(server.load_seconds, 1),
        },
        "events": {
            "windows_distinct": len(win),
            "syslog_distinct": len(sys_lines),
            "batch": args.batch,
            "gzip": args.gzip,
            "clients": args.clients,
            "target_rate": args.rate,
            "syslog_share": args.syslog_share,
        },
        "duration_s": round(wall, 1),
        "warmup_s": warm,
        "acked_http_eps": round((last["acked_http"] - first["acked_http"]) / span),
        "sent_syslog_eps": round((last["sent_syslog"] - first["sent_syslog"]) / span),
        "received_eps": round((last["received"] - first["received"]) / span),
        "stored_eps": round((last["stored"] - first["stored"]) / span),
        "received_total": received_final,
        "stored_total": stored_final,
        "drain_after_stop_s": round(drain_s, 1),
        "spool_depth_max": max((s["spool_depth"] for s in steady), default=0),
        "spool_depth_end": steady[-1]["spool_depth"] if steady else 0,
        "spool_depth_slope_per_min": round(slope_per_min(depth_points)),
        "lag_max_s": round(max((s["lag_s"] for s in steady), default=0), 2),
        "refused_batches": refused.value,
        "markers": {
            "sent": len(markers.sent),
            "seen": len(markers.seen),
            "rule_id": markers.rule_id,
            "p50_s": round(percentile(lat, 0.50), 3),
            "p99_s": round(percentile(lat, 0.99), 3),
            "max_s": round(lat[-1], 3) if lat else None,
            "poll_s": args.poll,
            # (seconds since the start when sent, latency): the latency over time, e.g. once
            # a backlog built while the machine was busy is gone.
            "each": [
                [
                    round(markers.sent[h] - start_wall, 2),
                    round(markers.seen[h] - markers.sent[h], 3),
                ]
                for h in sorted(markers.seen, key=lambda h: markers.sent[h])
            ],
        },
        "memory_mib": {
            "rss_start": first["rss_mib"],
            "rss_max": max(p[1] for p in mem_points) if mem_points else 0,
            "rss_end": last["rss_mib"],
            "rss_slope_per_min": round(slope_per_min(mem_points), 2),
            "pss_end": last["pss_mib"],
            "pss_slope_per_min": round(slope_per_min(pss_points), 2),
        },
        # Load-independent: the machine is shared, wall-clock rates follow everyone's load.
        "stored_per_server_cpu_s": round(stored_final / server_cpu) if server_cpu else 0,
        "cpu": {
            "server_s": round(server_cpu, 1),
            "server_cores": round(server_cpu / (wall + drain_s), 2),
            "client_s": round(client_cpu, 1),
            "client_cores": round(client_cpu / wall, 2),
        },
        "server_detections": final_metrics.get("vedette_detections", 0),
        "server_alerts_created": final_metrics.get("vedette_alerts_created", 0),
        "samples": samples,
    }
    each = result["markers"]["each"]
    result["markers"]["over_2s"] = sum(1 for _, latency in each if latency > 2.0)
    result["markers"]["p99_per_minute"] = [
        round(percentile([lat for t, lat in each if minute * 60 <= t < minute * 60 + 60], 0.99), 2)
        for minute in range(int(max((t for t, _ in each), default=0) // 60) + 1)
    ]
    result["stalls"] = stalls(home / "serve.log")
    if not args.keep_home:
        subprocess.run(["rm", "-rf", str(home)], check=False)
    else:
        result["home"] = str(home)
    return result


_STALL = re.compile(
    r"(worker step \S+(?: alerts)? took|the event loop stalled|garbage collection of generation \d "
    r"took) ([0-9.]+) s"
)


def stalls(log: Path) -> dict[str, Any]:
    """The server's own reports of stalls (vedette.server.worker, loop_watch, the worker's GC
    watch): how many of each and the longest, with the time each was logged."""
    found: dict[str, list[tuple[str, float]]] = {}
    for line in log.read_text(errors="replace").splitlines():
        match = _STALL.search(line)
        if match:
            kind = match[1].removesuffix(" took").replace("the ", "")
            found.setdefault(kind, []).append((line[11:19], float(match[2])))
    return {
        kind: {"count": len(items), "longest_s": max(s for _, s in items), "each": items}
        for kind, items in found.items()
    }


def table(result: dict[str, Any]) -> str:
    m, mem, cpu = result["markers"], result["memory_mib"], result["cpu"]
    rows = [
        ("rules loaded", f"{result['rules']['loaded']:,.0f} of {result['rules']['files']:,} files "
                         f"({', '.join(result['rules']['paths'])}); ready in "
                         f"{result['rules']['server_ready_s']} s"),
        ("offered", f"{result['events']['target_rate'] or 'flat out'} events/s, "
                    f"{result['events']['clients']} HTTP clients, batch {result['events']['batch']}"
                    f"{', gzip' if result['events']['gzip'] else ''}, syslog share "
                    f"{result['events']['syslog_share']:.0%}"),
        ("duration", f"{result['duration_s']} s (first {result['warmup_s']} s not counted)"),
        ("acknowledged (HTTP)", f"{result['acked_http_eps']:,} events/s"),
        ("sent (syslog TCP)", f"{result['sent_syslog_eps']:,} events/s"),
        ("received (spool)", f"{result['received_eps']:,} events/s"),
        ("stored", f"{result['stored_eps']:,} events/s"),
        ("spool depth", f"max {result['spool_depth_max']:,.0f}, "
                        f"end {result['spool_depth_end']:,.0f}"
                        f", trend {result['spool_depth_slope_per_min']:+,} events/min"),
        ("drain after stop", f"{result['drain_after_stop_s']} s "
                             f"({result['stored_total']:,} of "
                             f"{result['received_total']:,} stored)"),
        ("ingest-to-alert", f"p50 {m['p50_s']} s, p99 {m['p99_s']} s, max {m['max_s']} s "
                            f"({m['seen']} of {m['sent']} markers; poll {m['poll_s']} s)"),
        ("p99 per minute", ", ".join(f"{v}" for v in m.get("p99_per_minute", [])) +
                           f" s; {m.get('over_2s', 0)} markers over 2 s"),
        ("stalls logged", "; ".join(f"{k}: {v['count']} (longest {v['longest_s']} s)"
                                    for k, v in result.get("stalls", {}).items()) or "none"),
        ("server RSS", f"{mem['rss_start']:.0f} -> {mem['rss_end']:.0f} MiB (max "
                       f"{mem['rss_max']:.0f}), trend {mem['rss_slope_per_min']:+.1f} MiB/min; "
                       f"PSS end {mem['pss_end']:.0f} MiB"),
        ("CPU", f"server {cpu['server_cores']} cores, load generator {cpu['client_cores']} cores"
                f"; {result['stored_per_server_cpu_s']:,} events stored per server CPU-s"),
        ("detections / new alerts", f"{result['server_detections']:,.0f} / "
                                    f"{result['server_alerts_created']:,.0f}"),
        ("refused batches (503/429)", f"{result['refused_batches']:,}"),
    ]  # fmt: skip
    width = max(len(k) for k, _ in rows)
    return "\n".join(f"{k:<{width}}  {v}" for k, v in rows)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--duration", type=float, default=60.0, help="seconds of load")
    parser.add_argument("--rate", type=float, default=0.0, help="events/s in total (0: flat out)")
    parser.add_argument("--clients", type=int, default=2, help="HTTP sender processes")
    parser.add_argument("--batch", type=int, default=500, help="events per HTTP request")
    parser.add_argument("--gzip", action="store_true", help="gzip the request bodies")
    parser.add_argument("--syslog-share", type=float, default=0.1,
                        help="share of the rate sent as syslog over TCP (0: none)")  # fmt: skip
    parser.add_argument("--linux-rules", action="store_true", help="load rules/linux as well")
    parser.add_argument("--marker-every", type=float, default=1.0, help="seconds between markers")
    parser.add_argument("--poll", type=float, default=0.1, help="alert poll interval, seconds")
    parser.add_argument("--warmup", type=float, default=10.0, help="seconds not counted")
    parser.add_argument("--drain", type=float, default=120.0, help="seconds to wait at the end")
    parser.add_argument("--serve-arg", action="append", default=[], help="extra serve argument")
    parser.add_argument("--keep-home", action="store_true", help="keep the server's home")
    parser.add_argument("--json", type=Path, help="write the result and samples here")
    parser.add_argument("--server-src", type=Path,
                        help="run the server from this src folder (a before/after comparison: "
                        "git archive HEAD src | tar -x -C DIR)")  # fmt: skip
    parser.add_argument("--verbose", action="store_true", help="print each sample")
    args = parser.parse_args()
    if args.server_src:
        SERVER_ENV["PYTHONPATH"] = str(args.server_src.resolve())
    result = run(args)
    result["server_src"] = str(args.server_src) if args.server_src else "this tree"
    print(table(result))
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps(result, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
