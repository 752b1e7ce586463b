"""The embedded worker in a child process, so HTTP ingest and detection stop sharing one GIL.

``vedette serve --worker-process`` runs the same :class:`~vedette.server.worker.Worker` (spool →
Detector → Parquet store and alerts, the same two positions committed the same way) in a child
``python -m vedette.server.worker_process``. What each side does:

- **the child** owns the worker positions and is the only one to write them, exactly as the
  worker thread did. It reads the SQLite spool through a connection of its own (WAL: readers
  never block the API's group-commit writer) and, as another process appends, waits for new
  batches by polling. It never releases the spool. Once a second it writes its counters to a
  small JSON file (replaced atomically). On Linux it gets SIGKILL when the parent dies, even by
  SIGKILL (``PR_SET_PDEATHSIG``), and an exclusive ``flock`` on ``worker.lock`` keeps a second
  worker from ever running beside it (a restarted centre's child waits for the old one to go);
- **the parent** (:class:`WorkerProcess`, in place of the worker thread) starts, supervises and
  stops the child (SIGTERM, then waits: the child finishes its batch and commits), restarts it
  when it dies, releases the spool up to the committed positions it reads from the state store
  (the spool's pending counters live in the API process's writer), hands new alert ids to the
  coordinator by polling the alerts table (as the scale-out api role does), and shows the
  child's counters on ``/metrics`` and ``/readyz``. A rules reload (SIGHUP or
  ``POST /api/v1/rules/reload``) restarts the child on the new rules, which drops open
  correlation windows as the in-thread swap does; a rule exception change is signalled to the
  child (SIGUSR1), which re-reads the exceptions before its next detection.

The child's exit and restart lose nothing: it replays from the committed positions, as after a
crash of the single-process centre.
"""

from __future__ import annotations

import contextlib
import ctypes
import dataclasses
import fcntl
import gc
import logging
import os
import pickle
import signal
import subprocess
import sys
import threading
import time
from collections import Counter
from collections.abc import Callable
from pathlib import Path
from typing import Any

import orjson
from sqlalchemy import func, select

from vedette.server.config import ServeConfig
from vedette.server.worker import WorkerStats
from vedette.store.spool import SqliteSpool
from vedette.store.state.db import StateDB
from vedette.store.state.models import Alert
from vedette.store.state.positions import get_position

log = logging.getLogger("vedette.worker_process")

__all__ = ["ChildSpool", "WorkerProcess", "child_main"]

STATS_SECONDS = 1.0
"""How often the child writes its counters."""
POLL_SECONDS = 0.25
"""How often the parent reads them, the positions and new alert ids."""
RELEASE_SECONDS = 0.5
RESTART_DELAY_SECONDS = 1.0
_PR_SET_PDEATHSIG = 1
_INT_STATS = tuple(
    f.name
    for f in dataclasses.fields(WorkerStats)
    if f.name not in ("detections_by_level", "lag_seconds")
)


class ChildSpool(SqliteSpool):
    """The spool as the child reads it: another process appends, the parent releases."""

    def wait(self, after_seq: int, timeout: float) -> bool:
        """Poll for a batch past ``after_seq`` (the appends happen in another process)."""
        deadline = time.monotonic() + timeout
        while True:
            with self._rlock:
                row = self._rcon.execute(
                    "SELECT 1 FROM batches WHERE seq > ? LIMIT 1", (after_seq,)
                ).fetchone()
            if row is not None:
                return True
            left = deadline - time.monotonic()
            if left <= 0:
                return False
            time.sleep(min(0.05, left))

    def release(self, upto_seq: int) -> None:
        """Nothing: the parent releases up to the positions the child committed."""


@dataclasses.dataclass(slots=True)
class _Unclassified:
    """Stands in for the worker's decoder on /metrics: events in no known layout, per unit."""

    unclassified: dict[str, int] = dataclasses.field(default_factory=dict)


def _log_slow_collections(slow_seconds: float = 0.25) -> None:
    """Log a garbage collection that stops the worker longer than ``slow_seconds``: a pause of
    the worker is latency for every unit, and this one shows nowhere else."""
    started = [0.0]

    def timed(phase: str, info: dict[str, int]) -> None:
        if phase == "start":
            started[0] = time.monotonic()
            return
        took = time.monotonic() - started[0]
        if took >= slow_seconds:
            log.warning("garbage collection of generation %d took %.2f s (%d collected)",
                        info["generation"], took, info["collected"])  # fmt: skip

    gc.callbacks.append(timed)


def _stats_record(stats: WorkerStats, unclassified: dict[str, int], **extra: Any) -> bytes:
    record: dict[str, Any] = {name: getattr(stats, name) for name in _INT_STATS}
    record["detections_by_level"] = dict(stats.detections_by_level)
    record["lag_seconds"] = stats.lag_seconds
    record["unclassified"] = dict(unclassified)
    record.update(extra)
    return orjson.dumps(record)


def _write_atomic(path: Path, data: bytes) -> None:
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_bytes(data)
    os.replace(tmp, path)


class WorkerProcess:
    """The parent's side: the worker thread's interface over a child process (module doc)."""

    def __init__(
        self,
        config: ServeConfig,
        state: StateDB,
        spool: SqliteSpool,
        *,
        on_new_alerts: Callable[[list[int]], None] | None = None,
        python: str = sys.executable,
    ) -> None:
        self.config = config
        self.state = state
        self.spool = spool
        self.on_new_alerts = on_new_alerts
        self.python = python
        self.stats = WorkerStats()
        self.decoder = _Unclassified()
        self.correlator_factory: Any = None  # the child builds its own; kept for Centre
        self.failure: str | None = None
        self.detect_pos = 0
        self.store_pos = 0
        self.restarts = 0
        self.processed = threading.Condition()
        self._thread: threading.Thread | None = None
        self._stop = threading.Event()
        self._restart = threading.Event()
        self._restarted = threading.Condition()
        self._generation = 0
        self._child: subprocess.Popen[bytes] | None = None
        self._child_ready = False
        self._base = WorkerStats()
        self._base_unclassified: Counter[str] = Counter()
        self._last: dict[str, Any] = {}
        self._parent_errors = 0
        self._last_alert_id = 0
        self._released = 0
        self._released_at = 0.0
        run = config.paths.create().root / "run"
        run.mkdir(mode=0o700, exist_ok=True)
        self._config_path = run / "worker-config.pickle"
        self._stats_path = run / "worker-stats.json"

    # -- life cycle --------------------------------------------------------------------------

    def recover(self) -> None:
        """Read the committed positions (the child recovers the store itself)."""
        self._read_positions()

    def start(self) -> None:
        """Start the supervising thread, which starts the child."""
        self.recover()
        with self.state.session(readonly=True) as session:
            self._last_alert_id = int(session.scalar(select(func.max(Alert.id))) or 0)
        child_config = dataclasses.replace(self.config, syslog=[])
        fd = os.open(self._config_path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "wb") as out:
            pickle.dump(child_config, out)
        # The child is started from this thread: PR_SET_PDEATHSIG fires when the thread that
        # forked it ends, so it must live as long as the child may.
        self._thread = threading.Thread(
            target=self._supervise, name="vedette-worker-process", daemon=True
        )
        self._thread.start()

    def stop(self, timeout: float = 30.0) -> None:
        """Stop the child (SIGTERM: it finishes its batch and commits) and wait for it."""
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout + 10.0)

    def swap_detector(self, detector: object, timeout: float = 300.0) -> None:
        """A reloaded rule set: restart the child on it; returns once the new child runs."""
        with self._restarted:
            target = self._generation + 1
            self._restart.set()
            self._restarted.wait_for(lambda: self._generation >= target or self._stop.is_set(),
                                     timeout)  # fmt: skip

    def exceptions_changed(self) -> None:
        """Rule exceptions changed: the child re-reads them before its next detection."""
        child = self._child
        if child is not None and self._child_ready and child.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                child.send_signal(signal.SIGUSR1)

    @property
    def position(self) -> int:
        """Everything up to here is both stored and alerted (as the child committed it)."""
        return min(self.detect_pos, self.store_pos)

    def wait_processed(self, seq: int, timeout: float) -> bool:
        """Block until batch ``seq`` is alerted and stored."""
        deadline = time.monotonic() + timeout
        with self.processed:
            while self.position < seq:
                left = deadline - time.monotonic()
                if left <= 0:
                    return False
                self.processed.wait(min(left, POLL_SECONDS))
        return True

    # -- the supervising thread ----------------------------------------------------------------

    def _supervise(self) -> None:
        next_start = 0.0
        while not self._stop.is_set():
            try:
                child = self._child
                if child is not None and child.poll() is not None:
                    self._ended(child, expected=False)
                    next_start = time.monotonic() + RESTART_DELAY_SECONDS
                if self._restart.is_set() and self._child is not None:
                    self._terminate()
                if self._child is None and time.monotonic() >= next_start:
                    self._spawn()
                self._poll()
            except Exception:  # supervision must go on whatever one round met
                log.exception("worker process supervision failed; trying again")
            self._stop.wait(POLL_SECONDS)
        try:
            if self._child is not None:
                self._terminate()
            self._poll()
        except Exception:
            log.exception("could not stop the worker process cleanly")
        with self._restarted:
            self._restarted.notify_all()

    def _spawn(self) -> None:
        with contextlib.suppress(FileNotFoundError):
            self._stats_path.unlink()
        self._child_ready = False
        self._child = subprocess.Popen(
            [
                self.python,
                "-m",
                "vedette.server.worker_process",
                str(self._config_path),
                str(self._stats_path),
                str(os.getpid()),
            ],
            stdin=subprocess.DEVNULL,
        )
        log.info("worker process %d started", self._child.pid)
        with self._restarted:
            if self._restart.is_set():
                self._restart.clear()
            self._generation += 1
            self._restarted.notify_all()

    def _terminate(self, timeout: float = 60.0) -> None:
        child = self._child
        if child is None:
            return
        if child.poll() is None:
            child.send_signal(signal.SIGTERM)
            try:
                child.wait(timeout)
            except subprocess.TimeoutExpired:
                log.error("worker process %d did not stop in %.0f s: killed", child.pid, timeout)
                child.kill()
                child.wait()
        self._ended(child, expected=True)

    def _ended(self, child: subprocess.Popen[bytes], *, expected: bool) -> None:
        """Fold the ended child's last counters into the base, so counters never go back."""
        self._read_stats(child.pid)
        last = self._last
        if last:
            for name in _INT_STATS:
                setattr(self._base, name, getattr(self._base, name) + int(last.get(name, 0)))
            self._base.detections_by_level.update(last.get("detections_by_level", {}))
            self._base_unclassified.update(last.get("unclassified", {}))
        self._last = {}
        self._child = None
        self._child_ready = False
        if not expected:
            self._parent_errors += 1
            self.failure = f"worker process {child.pid} exited with status {child.returncode}"
            log.error("%s; starting it again", self.failure)
        self.restarts += 1
        self._publish()

    def _poll(self) -> None:
        child = self._child
        if child is not None:
            self._read_stats(child.pid)
            self._publish()
        self._read_positions()
        self._release()
        self._feed_coordinator()
        with self.processed:
            self.processed.notify_all()

    def _read_stats(self, pid: int) -> None:
        try:
            record = orjson.loads(self._stats_path.read_bytes())
        except (OSError, orjson.JSONDecodeError):
            return
        if record.get("pid") == pid:
            self._last = record
            self._child_ready = True
            if record.get("failure"):
                self.failure = str(record["failure"])

    def _publish(self) -> None:
        """Base (ended children) plus the running child's counters, into ``stats``."""
        last, base = self._last, self._base
        stats = WorkerStats()
        for name in _INT_STATS:
            setattr(stats, name, getattr(base, name) + int(last.get(name, 0)))
        stats.errors += self._parent_errors
        stats.detections_by_level = base.detections_by_level + Counter(
            last.get("detections_by_level", {})
        )
        stats.lag_seconds = float(last.get("lag_seconds", self.stats.lag_seconds))
        self.stats = stats
        self.decoder.unclassified = dict(
            self._base_unclassified + Counter(last.get("unclassified", {}))
        )

    def _read_positions(self) -> None:
        with self.state.session(readonly=True) as session:
            self.detect_pos = get_position(session, "detect")
            self.store_pos = get_position(session, "store")

    def _release(self) -> None:
        """Release the spool up to what the child committed (at most every 0.5 s: a release is
        a spool transaction with its own fsync, through the API process's writer)."""
        position = self.position
        if position > self._released and (time.monotonic() - self._released_at >= RELEASE_SECONDS):
            self.spool.release(position)
            self._released = position
            self._released_at = time.monotonic()

    def _feed_coordinator(self) -> None:
        if self.on_new_alerts is None:
            return
        with self.state.session(readonly=True) as session:
            ids = list(
                session.scalars(
                    select(Alert.id).where(Alert.id > self._last_alert_id).order_by(Alert.id)
                )
            )
        if ids:
            self._last_alert_id = ids[-1]
            self.on_new_alerts(ids)


# -- the child --------------------------------------------------------------------------------


def _die_with_parent(parent: int) -> None:
    """Linux: SIGKILL this process when the parent dies, even by SIGKILL; exit now if it did."""
    if sys.platform.startswith("linux"):
        try:
            libc = ctypes.CDLL(None, use_errno=True)
            libc.prctl(_PR_SET_PDEATHSIG, signal.SIGKILL)
        except (OSError, AttributeError):
            pass  # without it an orphan still stops: it sees its parent gone below
    if os.getppid() != parent:
        os._exit(0)  # the parent died before prctl took effect


def child_main(config_path: Path, stats_path: Path, parent: int) -> int:
    """The child: run the worker until SIGTERM (or the parent's death); see the module doc."""
    _die_with_parent(parent)
    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    # Ctrl-C reaches the whole process group: the parent stops the child, in order.
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    logging.basicConfig(
        level=logging.INFO,
        format="%(asctime)s %(levelname)s %(name)s[worker]: %(message)s",
        stream=sys.stderr,
    )
    from vedette.server.rules import correlator_factory, load_rules
    from vedette.server.state_ops import PipelineState
    from vedette.server.worker import Worker
    from vedette.store.eventstore import ParquetEventStore
    from vedette.store.state.db import open_state

    with config_path.open("rb") as source:
        config: ServeConfig = pickle.load(source)
    home = config.paths
    lock = (home.root / "run" / "worker.lock").open("a")
    fcntl.flock(lock, fcntl.LOCK_EX)  # an older worker still stopping goes first
    state = open_state(config.state_url, backup_dir=home.backups)
    spool = ChildSpool(home.spool_db, high_water_events=config.high_water_events)
    rules = load_rules(config)
    pipeline = PipelineState(state, dedup_window_seconds=config.dedup_window_seconds)
    signal.signal(signal.SIGUSR1, lambda *_: pipeline.expire_exceptions())
    worker = Worker(
        spool,
        ParquetEventStore(home.events),
        pipeline,
        rules.detector,
        correlator_factory=correlator_factory(rules.detector),
    )
    # The rule set lives as long as the process: keep it out of the collector's generations.
    gc.collect()
    gc.freeze()
    _log_slow_collections()
    worker.start()
    log.info("worker process %d running on %d rules", os.getpid(), rules.facts.rules_loaded)

    def publish() -> None:
        record = _stats_record(
            worker.stats,
            worker.decoder.unclassified,
            pid=os.getpid(),
            detect=worker.detect_pos,
            store=worker.store_pos,
            failure=worker.failure,
        )
        _write_atomic(stats_path, record)

    publish()
    while not stop.wait(STATS_SECONDS):
        if os.getppid() != parent:
            break  # orphaned where PR_SET_PDEATHSIG is missing
        publish()
    worker.stop()
    publish()
    spool.close()
    state.close()
    return 0


if __name__ == "__main__":
    sys.exit(child_main(Path(sys.argv[1]), Path(sys.argv[2]), int(sys.argv[3])))
