"""The worker role: one :class:`~vedette.server.worker.Worker` per event partition it leases.

A worker process claims partitions in the ``partition_leases`` table (PostgreSQL; see
:mod:`vedette.store.state.leases`) and renews them every third of the lease time. For each
partition it holds it runs the embedded mode's Worker unchanged, over that partition of the
JetStream spool, with positions of its own (``detect:p3``, ``store:p3``) and Parquet files whose
names carry the partition (``part-<first>-<last>-p3.parquet``), so workers never overwrite or
discard each other's files. Every commit of those positions is fenced by the lease in the same
transaction: a worker that lost its lease cannot commit for the partition again.

When a worker dies, its leases expire and the others take the partitions over on their next
claim (counted in ``takeovers`` and ``moves``, shown on the api's /metrics). The new owner
replays from the committed positions: each acknowledged event is stored once and raises its
alerts once. Correlation windows open in the dead worker are not carried over: the new owner
counts a ``correlation_restart`` for the partition, as the embedded mode does after a crash.
"""

from __future__ import annotations

import dataclasses
import logging
import os
import socket
import threading
import time
import uuid
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.parquet as pq

from vedette.pipeline.detector import Detector
from vedette.server.state_ops import PipelineState
from vedette.server.worker import Worker, WorkerStats, position_names
from vedette.store.eventstore import EVENTS_SCHEMA, ParquetEventStore
from vedette.store.jetstream import JetStreamSpool
from vedette.store.state.db import StateDB, unavailable
from vedette.store.state.leases import (
    check_lease,
    claim_partitions,
    ensure_partitions,
    release_partitions,
)

log = logging.getLogger("vedette.partitions")

__all__ = ["PartitionEventStore", "PartitionWorkers", "worker_identity"]


def worker_identity() -> str:
    """A name for this worker process: host, pid and a random suffix (unique per start)."""
    return f"{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex[:6]}"


def _fsync_dir(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


class PartitionEventStore(ParquetEventStore):
    """The event store as one partition's worker writes it: its own file names only.

    Files are ``part-<first:016d>-<last:016d>-p<partition>.parquet`` beside the other
    partitions' files in the same unit and day folders (hunting globs ``part-*.parquet`` and
    reads them all). ``discard_after`` and ``last_seq`` look at this partition's files only: a
    worker restarting must never delete what another partition's worker wrote.
    """

    def __init__(self, root: Path, partition: int) -> None:
        super().__init__(root)
        self.partition = partition
        self._suffix = f"-p{partition}.parquet"

    def _name(self, first_seq: int, last_seq: int) -> str:
        return f"part-{first_seq:016d}-{last_seq:016d}{self._suffix}"

    def write(self, table: pa.Table, first_seq: int, last_seq: int) -> int:
        """As :meth:`ParquetEventStore.write`, under this partition's file names."""
        if table.num_rows == 0:
            return 0
        table = table.select(EVENTS_SCHEMA.names).cast(EVENTS_SCHEMA)
        groups: dict[tuple[str, str], list[int]] = {}
        for i, key in enumerate(
            zip(table.column("unit").to_pylist(), table.column("day").to_pylist(), strict=True)
        ):
            groups.setdefault(key, []).append(i)
        name = self._name(first_seq, last_seq)
        for (unit, day), indices in groups.items():
            folder = self.unit_dir(unit) / f"day={day}"
            folder.mkdir(parents=True, exist_ok=True)
            tmp = folder / f".{name}.tmp"
            with tmp.open("wb") as f:
                pq.write_table(table.take(indices), f, compression="zstd")
                f.flush()
                os.fsync(f.fileno())
            os.replace(tmp, folder / name)
            _fsync_dir(folder)
        return int(table.num_rows)

    def _own(self) -> list[tuple[Path, int]]:
        out = []
        for path in self.root.glob(f"unit=*/day=*/part-*{self._suffix}"):
            parts = path.name[len("part-") : -len(self._suffix)].split("-")
            if len(parts) == 2 and all(p.isdigit() for p in parts):
                out.append((path, int(parts[1])))
        return out

    def discard_after(self, seq: int) -> int:
        """Delete this partition's files past ``seq`` and its leftover temporary files."""
        for tmp in self.root.glob(f"unit=*/day=*/.part-*{self._suffix}.tmp"):
            tmp.unlink(missing_ok=True)
        removed = 0
        for path, last in self._own():
            if last > seq:
                path.unlink(missing_ok=True)
                _fsync_dir(path.parent)
                removed += 1
        return removed

    def last_seq(self) -> int:
        """Highest last_seq of this partition's files (0 when none)."""
        return max((last for _, last in self._own()), default=0)


class _Serialised:
    """A matcher whose ``match`` runs under a lock; everything else is the inner object's."""

    def __init__(self, inner: Any, lock: threading.Lock) -> None:
        self._inner = inner
        self._lock = lock

    def match(self, events: Any) -> Any:
        """The inner matcher's detections, one thread at a time."""
        with self._lock:
            return self._inner.match(events)

    def __getattr__(self, name: str) -> Any:
        return getattr(self._inner, name)


@dataclass(slots=True)
class PartitionStats:
    """Counters of the lease loop, for logs and tests."""

    claims: int = 0
    claim_errors: int = 0
    taken_over: int = 0
    released: int = 0
    lost: int = 0
    started: dict[int, int] = field(default_factory=dict)


class PartitionWorkers:
    """Claims partitions and runs a Worker for each one held (see the module docstring)."""

    def __init__(
        self,
        spool: JetStreamSpool,
        store_root: Path,
        state: StateDB,
        detector: Detector,
        *,
        correlator_factory: Callable[[], Any] | None,
        dedup_window_seconds: float,
        lease_seconds: float = 10.0,
        max_partitions: int | None = None,
        on_new_alerts: Callable[[list[int]], None] | None = None,
        owner: str | None = None,
    ) -> None:
        self.spool = spool
        self.store_root = Path(store_root)
        self.state = state
        self.detector = detector
        self._match_lock = threading.Lock()
        self.correlator_factory = correlator_factory
        self.dedup_window_seconds = dedup_window_seconds
        self.lease_seconds = lease_seconds
        self.max_partitions = max_partitions
        self.on_new_alerts = on_new_alerts
        self.owner = owner or worker_identity()
        self.partitions = spool.config.partitions
        self.workers: dict[int, Worker] = {}
        self.stats = PartitionStats()
        # Counters of the partition workers stopped so far (a lost lease, a rebalance): the
        # process's totals only grow (they are published for the api's /metrics).
        self._stopped = WorkerStats()
        self._stopped_unclassified: Counter[str] = Counter()
        self._stats_lock = threading.Lock()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._renewed_at = 0.0

    def start(self) -> None:
        """Create the lease rows if needed, then claim and run in a thread."""
        with self.state.session() as session:
            ensure_partitions(session, self.partitions)
        self._thread = threading.Thread(target=self._run, name="vedette-leases", daemon=True)
        self._thread.start()

    def stop(self, timeout: float = 30.0) -> None:
        """Stop every worker (each flushes and commits), then release the leases."""
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout)
        held = list(self.workers)
        self._stop_workers(held)
        try:
            with self.state.session() as session:
                release_partitions(session, self.owner, held, leaving=True)
        except Exception:
            log.exception("could not release leases; they expire in %.0f s", self.lease_seconds)

    def held(self) -> list[int]:
        """Partitions this process runs a worker for."""
        return sorted(self.workers)

    def worker_stats(self) -> WorkerStats:
        """This process's counters: the running workers' and the stopped ones' summed (the
        lag: the running workers' highest)."""
        total = WorkerStats()
        with self._stats_lock:
            _add_stats(total, self._stopped)
            total.lag_seconds = 0.0
            for worker in list(self.workers.values()):
                _add_stats(total, worker.stats)
        return total

    def unclassified(self) -> dict[str, int]:
        """Events in no known layout per unit, since this process started."""
        with self._stats_lock:
            total = Counter(self._stopped_unclassified)
            for worker in list(self.workers.values()):
                total.update(worker.decoder.unclassified)
        return dict(total)

    def figures(self) -> dict[str, Any]:
        """The counters as published for the api (vedette.store.state.worker_figures)."""
        stats = self.worker_stats()
        out: dict[str, Any] = {
            name: int(getattr(stats, name))
            for name in (
                "batches", "events", "events_stored", "detections", "excepted",
                "alerts_created", "corrupt_batches", "flushes", "errors", "dead_letters",
                "correlation_restarts", "slow_steps",
            )
        }  # fmt: skip
        out["detections_by_level"] = dict(stats.detections_by_level)
        out["unclassified"] = self.unclassified()
        out["lag_seconds"] = float(stats.lag_seconds)
        return out

    # -- the lease loop ----------------------------------------------------------------------

    def _run(self) -> None:
        while not self._stop.is_set():
            try:
                self._claim_once()
            except Exception as exc:  # a release after the claim failed: the loop must go on
                log.warning("lease loop: %s", exc)
            self._stop.wait(self.lease_seconds / 3)

    def _claim_once(self) -> None:
        now = time.time()
        try:
            with self.state.session() as session:
                held, surplus, taken = claim_partitions(
                    session,
                    self.owner,
                    self.partitions,
                    now,
                    self.lease_seconds,
                    limit=self.max_partitions,
                )
        except Exception as exc:
            self.stats.claim_errors += 1
            if unavailable(exc):
                log.warning("lease claim failed, the state store is unavailable: %s", exc)
            else:
                log.exception("lease claim failed")
            if time.time() - self._renewed_at > self.lease_seconds and self.workers:
                # The leases have surely expired: someone else may own them now.
                log.error("leases not renewed for %.0f s: stopping workers", self.lease_seconds)
                self.stats.lost += len(self.workers)
                self._stop_workers(list(self.workers))
            return
        self._renewed_at = now
        self.stats.claims += 1
        self.stats.taken_over += taken
        for partition in [p for p in self.workers if p not in held]:
            self.stats.lost += 1
            log.warning("partition %d: lease lost, stopping its worker", partition)
            self._stop_workers([partition])
        if surplus:
            self._stop_workers(surplus)
            with self.state.session() as session:
                release_partitions(session, self.owner, surplus)
            self.stats.released += len(surplus)
            log.info("partitions %s released to rebalance", surplus)
        for partition in held:
            if partition not in surplus and partition not in self.workers:
                self._start_worker(partition)

    def _start_worker(self, partition: int) -> None:
        detect, store = position_names(partition)
        owner = self.owner

        def fence(session: Any) -> None:
            check_lease(session, owner, partition, time.time())

        state = PipelineState(
            self.state,
            dedup_window_seconds=self.dedup_window_seconds,
            detect_position=detect,
            store_position=store,
            fence=fence,
        )
        state.on_new_alerts = self.on_new_alerts
        worker = Worker(
            self.spool.partition(partition),
            PartitionEventStore(self.store_root, partition),
            state,
            self._shared_detector(),
            correlator_factory=self.correlator_factory,
        )
        worker.start()
        with self._stats_lock:
            self.workers[partition] = worker
        self.stats.started[partition] = self.stats.started.get(partition, 0) + 1
        log.info("partition %d: worker started at position %d", partition, worker.position)

    def _shared_detector(self) -> Detector:
        """The detector for one more partition thread of this process.

        Hyperscan's scratch space belongs to one scanning thread at a time
        (``ScratchInUseError`` otherwise), and the partition threads share one compiled rule
        set: their matching is serialised by one lock. The GIL serialises Python work anyway,
        so this costs no throughput; more partitions per process buy overlap of I/O only.
        """
        detector = self.detector
        return dataclasses.replace(
            detector,
            engine=_Serialised(detector.engine, self._match_lock) if detector.engine else None,
            indicators=(
                _Serialised(detector.indicators, self._match_lock) if detector.indicators else None
            ),
        )

    def _stop_workers(self, partitions: list[int]) -> None:
        for partition in partitions:
            worker = self.workers.get(partition)
            if worker is not None:
                worker.stop()
                # Moved from the running to the stopped in one step: a reader of the totals
                # never sees them drop (Prometheus would take it for a counter reset).
                with self._stats_lock:
                    _add_stats(self._stopped, worker.stats)
                    self._stopped_unclassified.update(worker.decoder.unclassified)
                    del self.workers[partition]


def _add_stats(total: WorkerStats, s: WorkerStats) -> None:
    """Add ``s`` to ``total`` (the lag: the higher)."""
    total.batches += s.batches
    total.events += s.events
    total.events_stored += s.events_stored
    total.detections += s.detections
    total.excepted += s.excepted
    total.alerts_created += s.alerts_created
    total.corrupt_batches += s.corrupt_batches
    total.flushes += s.flushes
    total.errors += s.errors
    total.detections_by_level.update(s.detections_by_level)
    total.lag_seconds = max(total.lag_seconds, s.lag_seconds)
    total.correlation_restarts += s.correlation_restarts
    total.dead_letters += s.dead_letters
    total.slow_steps += s.slow_steps
