"""The scale-out roles of ``vedette serve``: ``api`` and ``worker`` processes (NATS, PostgreSQL).

- **api**: the HTTP API (ingest, alerts, units, hunting, ...) and the syslog listeners, nothing
  else; a batch is published to JetStream (:class:`~vedette.store.jetstream.JetStreamSpool`)
  and answered 202 after the PubAck. Stateless apart from NATS and PostgreSQL: run as many as
  wanted behind a load balancer. /metrics adds the partition leases (owner, moves, takeovers),
  the scheduler duty and the counters the scheduler and notifier processes publish.
- **worker**: no HTTP; leases partitions and runs one pipeline Worker per partition
  (:mod:`vedette.server.partitions`), writing Parquet under ``--store`` (shared storage), and
  a small pool running retro-hunt and early-warning tasks from the work queue
  (:mod:`vedette.server.hunt_tasks`; the api and the scheduler split and publish them).
- **scheduler** (:mod:`vedette.server.scheduler`) and **notifier**
  (:mod:`vedette.server.notifier`): the coordinator and housekeeping, and the notifications.

``--home`` still holds the compiled-rule cache. ``--role all`` without ``--nats`` is the
embedded default, unchanged.
"""

from __future__ import annotations

import asyncio
import logging
import signal
import threading
import time
from collections.abc import Iterator
from datetime import UTC
from pathlib import Path
from typing import Any, cast

from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily
from prometheus_client.registry import Collector
from sqlalchemy import select

from vedette.alerts.warning import CoordinatorStats
from vedette.errors import ConfigError
from vedette.notify.dispatcher import DispatchStats
from vedette.server.centre import Centre, SpoolSink
from vedette.server.config import ServeConfig
from vedette.server.hunt_tasks import HuntTaskPool, QueuedHuntRunner
from vedette.server.partitions import PartitionWorkers
from vedette.server.role_signals import RELOAD_REFUSED, refuse_reload_on_sighup
from vedette.server.rules import RuleSet, correlator_factory, load_rules
from vedette.server.syslog_listen import SyslogListener
from vedette.server.worker import WorkerStats
from vedette.store.eventstore import ParquetEventStore
from vedette.store.huntqueue import HuntQueue, HuntQueueConfig
from vedette.store.jetstream import JetStreamConfig, JetStreamSpool
from vedette.store.state.db import StateDB, open_state
from vedette.store.state.duties import duty_table, live_members
from vedette.store.state.ingest_ledger import forget_keys_before, lookup_key, record_key
from vedette.store.state.leases import lease_table
from vedette.store.state.models import Unit, UnitStats
from vedette.store.state.worker_figures import publish as publish_figures
from vedette.store.state.worker_figures import retire as retire_figures
from vedette.store.state.worker_figures import totals as worker_totals

log = logging.getLogger("vedette.roles")

__all__ = ["ApiCentre", "DutyCollector", "MemberStats", "StateLedger", "open_api", "run_worker"]

LEDGER_TTL_S = 7 * 86400.0


class StateLedger:
    """The ingest ledger of :class:`JetStreamSpool` in the state store."""

    def __init__(self, state: StateDB) -> None:
        self.state = state
        self._pruned_at = 0.0

    def lookup(self, unit: str, key: str) -> tuple[int, int] | None:
        """``(seq, count)`` acknowledged under the key, or None."""
        with self.state.session(readonly=True) as session:
            return lookup_key(session, unit, key)

    def record(self, unit: str, key: str, seq: int, count: int) -> None:
        """Remember the key (and prune week-old keys once an hour)."""
        now = time.time()
        with self.state.session() as session:
            record_key(session, unit, key, seq, count, now)
        if now - self._pruned_at > 3600:
            self._pruned_at = now
            # Every unit's old keys: the request's own sessions see its units' rows only.
            with self.state.session(system=True) as session:
                forget_keys_before(session, now - LEDGER_TTL_S)


def received_from_state(state: StateDB) -> dict[str, tuple[int, float]]:
    """Events received per unit as the workers committed them, and when the last arrived."""
    with state.session(readonly=True) as session:
        rows = session.execute(
            select(Unit.name, UnitStats.events_received, UnitStats.last_received_at).join(
                UnitStats, UnitStats.unit_id == Unit.id
            )
        ).all()
    out: dict[str, tuple[int, float]] = {}
    for name, count, last in rows:
        at = last.replace(tzinfo=last.tzinfo or UTC).timestamp() if last else 0.0
        out[name] = (int(count or 0), at)
    return out


def open_spool(config: ServeConfig, state: StateDB, nats: JetStreamConfig) -> JetStreamSpool:
    """The JetStream spool with the state store's ledger and received counts."""
    return JetStreamSpool(
        nats,
        high_water_events=config.high_water_events,
        ledger=StateLedger(state),
        received=lambda: received_from_state(state),
    )


class LeaseCollector(Collector):
    """Partition leases for /metrics: owner, live, moves and takeovers per partition."""

    def __init__(self, state: StateDB) -> None:
        self.state = state

    def collect(self) -> Iterator[Any]:
        """Read the lease table (one query per scrape)."""
        with self.state.session(readonly=True) as session:
            rows = lease_table(session, time.time())
        moves = CounterMetricFamily(
            "vedette_partition_moves", "Times a partition changed owner", labels=["partition"]
        )
        takeovers = CounterMetricFamily(
            "vedette_partition_takeovers",
            "Times a partition was taken from a worker whose lease expired (it died or stalled)",
            labels=["partition"],
        )
        owned = GaugeMetricFamily(
            "vedette_partition_owned",
            "1 when the partition has a live lease, by owner",
            labels=["partition", "owner"],
        )
        for row in rows:
            moves.add_metric([str(row.partition)], row.moves)
            takeovers.add_metric([str(row.partition)], row.takeovers)
            owned.add_metric([str(row.partition), row.owner or ""], 1.0 if row.live else 0.0)
        yield moves
        yield takeovers
        yield owned
        yield GaugeMetricFamily(
            "vedette_partitions_unowned",
            "Partitions without a live lease (their events wait)",
            value=sum(1 for r in rows if not r.live),
        )


class DutyCollector(Collector):
    """The scheduler duty and the live role processes for /metrics (vedette.server.scheduler)."""

    def __init__(self, state: StateDB) -> None:
        self.state = state

    def collect(self) -> Iterator[Any]:
        """Read the duty leases and the live members (two queries per scrape)."""
        now = time.time()
        with self.state.session(readonly=True) as session:
            duties = duty_table(session, now)
            members = live_members(session, now)
        owned = GaugeMetricFamily(
            "vedette_duty_owned", "1 when the duty has a live lease, by holder",
            labels=["duty", "owner"],
        )  # fmt: skip
        moves = CounterMetricFamily(
            "vedette_duty_moves", "Times a duty changed holder", labels=["duty"]
        )
        takeovers = CounterMetricFamily(
            "vedette_duty_takeovers",
            "Times a duty was taken from a holder whose lease expired (it died or stalled)",
            labels=["duty"],
        )
        for row in duties:
            owned.add_metric([row.duty, row.owner or ""], 1.0 if row.live else 0.0)
            moves.add_metric([row.duty], row.moves)
            takeovers.add_metric([row.duty], row.takeovers)
        live = GaugeMetricFamily(
            "vedette_role_processes",
            "Live scheduler, notifier and worker processes",
            labels=["role"],
        )
        for role in ("scheduler", "notifier", "worker"):
            live.add_metric([role], sum(1 for m in members if m.role == role))
        yield owned
        yield moves
        yield takeovers
        yield live


class MemberStats:
    """The counters the scheduler and notifier processes publish, summed (cached 2 s)."""

    def __init__(self, state: StateDB) -> None:
        self.state = state
        self._at = 0.0
        self._coordination = CoordinatorStats()
        self._dispatch = DispatchStats()
        self._lock = threading.Lock()

    def coordination(self) -> CoordinatorStats:
        """Coordination counters of every live scheduler."""
        self._refresh()
        return self._coordination

    def dispatch(self) -> DispatchStats:
        """Notification counters of every live notifier (pending: the newest report)."""
        self._refresh()
        return self._dispatch

    def _refresh(self) -> None:
        with self._lock:
            if time.monotonic() - self._at < 2.0:
                return
            with self.state.session(readonly=True) as session:
                members = live_members(session, time.time())
            coordination = CoordinatorStats()
            dispatch = DispatchStats()
            for member in members:
                stats = member.stats or {}
                if member.role == "scheduler":
                    for name, value in (stats.get("coordination") or {}).items():
                        if isinstance(value, int) and hasattr(coordination, name):
                            setattr(coordination, name, getattr(coordination, name) + value)
                elif member.role == "notifier":
                    for channel, outcome, count in stats.get("outcomes") or []:
                        key = (str(channel), str(outcome))
                        dispatch.outcomes[key] = dispatch.outcomes.get(key, 0) + int(count)
                    dispatch.pending.update(stats.get("pending") or {})
                    dispatch.errors += int(stats.get("errors") or 0)
            self._coordination, self._dispatch = coordination, dispatch
            self._at = time.monotonic()


FIGURES_SECONDS = 2.0
"""How often a worker process publishes its counters for the api's /metrics."""


class FiguresPublisher:
    """A worker process's counters into the state store (vedette.store.state.worker_figures)."""

    def __init__(self, state: StateDB, workers: PartitionWorkers, *, ttl: float) -> None:
        self.state = state
        self.workers = workers
        self.ttl = ttl
        self._at = 0.0

    def maybe_publish(self) -> None:
        """Publish when due; a failure (the database away) is logged and tried again later."""
        if time.monotonic() - self._at < FIGURES_SECONDS:
            return
        self._at = time.monotonic()
        try:
            with self.state.session() as session:
                publish_figures(
                    session, self.workers.owner, time.time(), self.ttl, self.workers.figures()
                )
        except Exception as exc:
            log.warning("could not publish the worker's counters: %s", exc)

    def retire(self) -> None:
        """The process stops: its final counters join the retired workers' (kept summed)."""
        try:
            with self.state.session() as session:
                retire_figures(session, self.workers.owner, self.workers.figures())
        except Exception as exc:
            log.warning("could not retire the worker's counters: %s", exc)


class WorkerFigures:
    """The worker processes' counters as the api's /metrics shows them (cached 2 s)."""

    def __init__(self, state: StateDB) -> None:
        self.state = state
        self._at = 0.0
        self._stats = WorkerStats()
        self._unclassified: dict[str, int] = {}
        self.live = 0
        self._lock = threading.Lock()

    def stats(self) -> WorkerStats:
        """Every worker's counters summed (lag: the highest of the live workers)."""
        self._refresh()
        return self._stats

    def unclassified(self) -> dict[str, int]:
        """Events in no known layout per unit, every worker summed."""
        self._refresh()
        return self._unclassified

    def _refresh(self) -> None:
        with self._lock:
            if time.monotonic() - self._at < 2.0:
                return
            with self.state.session(readonly=True, system=True) as session:
                found = worker_totals(session, time.time())
            stats = WorkerStats()
            for name, value in found.counters.items():
                if hasattr(stats, name) and isinstance(getattr(stats, name), int):
                    setattr(stats, name, value)
            stats.detections_by_level.update(found.by_key.get("detections_by_level", {}))
            stats.lag_seconds = found.gauges.get("lag_seconds", 0.0)
            self._stats = stats
            self._unclassified = dict(found.by_key.get("unclassified", {}))
            self.live = found.live
            self._at = time.monotonic()


class ApiCentre(Centre):
    """The api role: the centre's HTTP and syslog face over JetStream and nothing else.

    No pipeline worker, no coordinator, no dispatcher, no housekeeping: those run in the
    worker, scheduler and notifier roles, so any number of apis can serve side by side.
    """

    runs_worker = False

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.extra_collectors: list[Collector] = [
            LeaseCollector(self.state),
            DutyCollector(self.state),
        ]
        self.member_stats = MemberStats(self.state)
        self.worker_figures = WorkerFigures(self.state)

    async def start(self) -> None:
        """The retro-hunt queue's sweep (idempotent: every api may run it) and the syslog
        listeners; HTTP is uvicorn's."""
        self.retrohunts.start()
        refuse_reload_on_sighup("api")
        sink = SpoolSink(self)
        for listener_config in self.config.syslog:
            listener = SyslogListener(listener_config, sink)
            await listener.start()
            self.listeners.append(listener)
        self._tasks.append(asyncio.create_task(self.loop_watch.run()))

    def reload_rules(self) -> RuleSet:
        """Refused: the workers would go on with the old rules (see role_signals)."""
        raise ConfigError(RELOAD_REFUSED)

    def coordination_stats(self) -> CoordinatorStats:
        """The schedulers' coordination counters (vedette.server.scheduler)."""
        return self.member_stats.coordination()

    def dispatch_stats(self) -> DispatchStats:
        """The notifiers' counters (vedette.server.notifier)."""
        return self.member_stats.dispatch()

    def worker_stats(self) -> WorkerStats:
        """The worker processes' counters, as they publish them (vedette.server.roles)."""
        return self.worker_figures.stats()

    def unclassified_counts(self) -> dict[str, int]:
        """The worker processes' unclassified events per unit."""
        return self.worker_figures.unclassified()

    def accepting(self) -> bool:
        """Below the high-water mark (an estimate from the stream; see JetStreamSpool)."""
        return bool(self.spool.pending_events() < self.config.high_water_events)


def open_api(config: ServeConfig, nats: JetStreamConfig, store: Path) -> ApiCentre:
    """Open the api role's stores (PostgreSQL state, JetStream spool, shared event store)."""
    home = config.paths.create()
    state = open_state(config.state_url, backup_dir=home.backups)
    spool = open_spool(config, state, nats)
    events = ParquetEventStore(store)
    rules = load_rules(config)
    hunts = QueuedHuntRunner(state, events, HuntQueue(HuntQueueConfig.like(nats)))
    return ApiCentre(config, state, cast(Any, spool), events, rules, retrohunts=hunts)


def run_worker(
    config: ServeConfig,
    nats: JetStreamConfig,
    store: Path,
    *,
    lease_seconds: float = 10.0,
    max_partitions: int | None = None,
    hunt_threads: int = 1,
) -> int:
    """The worker role in the foreground until SIGTERM or SIGINT; returns the exit status."""
    home = config.paths.create()
    # A worker frozen inside a transaction must not hold its lease rows locked for ever.
    state = open_state(config.state_url, backup_dir=home.backups, stall_timeout=lease_seconds)
    spool = JetStreamSpool(nats)
    partitions = nats.partitions
    rules = load_rules(config)
    workers = PartitionWorkers(
        spool,
        store,
        state,
        rules.detector,
        correlator_factory=correlator_factory(rules.detector),
        dedup_window_seconds=config.dedup_window_seconds,
        lease_seconds=lease_seconds,
        max_partitions=max_partitions,
    )
    stop = threading.Event()

    def on_signal(signum: int, _frame: object) -> None:
        stop.set()

    signal.signal(signal.SIGTERM, on_signal)
    signal.signal(signal.SIGINT, on_signal)
    refuse_reload_on_sighup("worker")
    workers.start()
    hunts = None
    if hunt_threads > 0:
        hunts = HuntTaskPool(
            state,
            ParquetEventStore(store),
            HuntQueue(HuntQueueConfig.like(nats)),
            owner=workers.owner,
            threads=hunt_threads,
            attack_kb=rules.detector.attack_kb,
        )
        hunts.start()
    figures = FiguresPublisher(state, workers, ttl=max(3 * FIGURES_SECONDS, lease_seconds))
    log.info("worker %s: %d partitions, lease %.0f s", workers.owner, partitions, lease_seconds)
    print(f"vedette serve: worker {workers.owner} running; stream {nats.stream} keeps "
          f"{spool.replicas} replica(s)", flush=True)  # fmt: skip
    held: list[int] = []
    while not stop.wait(1.0):
        if workers.held() != held:
            held = workers.held()
            print(f"vedette serve: worker {workers.owner} holds partitions {held}", flush=True)
        figures.maybe_publish()
    if hunts is not None:
        hunts.stop()
    workers.stop()
    figures.retire()
    spool.close()
    state.close()
    print("vedette serve: stopped", flush=True)
    return 0
