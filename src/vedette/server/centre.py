"""The monitoring centre as one object: spool, event store, state, detector, worker, listeners.

``Centre.open(config)`` opens every store (migrating the state schema after a backup, refusing
a newer one), loads the rules, recovers the worker's positions and is ready to serve; the
FastAPI app (``vedette.server.app``) calls :meth:`Centre.start` and :meth:`Centre.stop` from its
lifespan. Everything the routes need hangs here, so the routes stay thin.
"""

from __future__ import annotations

import asyncio
import logging
import signal
import threading
import time
from collections import deque
from dataclasses import dataclass, field
from datetime import UTC, datetime

from starlette.concurrency import run_in_threadpool

from vedette.alerts.warning import Coordinator, CoordinatorStats, WarningSearch, load_policy
from vedette.notify.dispatcher import Dispatcher, DispatchStats
from vedette.pipeline.detector import Detector
from vedette.server.auth import Authenticator
from vedette.server.compaction import compact_store
from vedette.server.config import ServeConfig
from vedette.server.housekeeping import (
    RETENTION_EVERY_SECONDS,
    prune_expired_sessions,
    raise_silent_alerts,
)
from vedette.server.loop_watch import LoopWatch
from vedette.server.quota import UnitQuota
from vedette.server.retrohunt import (
    HuntRunner,
    RetroHuntRunner,
    hunt_new_indicators,
    hunt_new_rules,
)
from vedette.server.rules import RuleSet, correlator_factory, load_rules
from vedette.server.state_ops import PipelineState
from vedette.server.syslog_listen import Backpressure, SyslogListener
from vedette.server.worker import DETECT, STORE, Worker, WorkerStats
from vedette.server.worker_process import WorkerProcess
from vedette.store.compact import CompactPolicy, CompactReport
from vedette.store.eventstore import ParquetEventStore
from vedette.store.spool import SpoolFull, SpoolUnavailable, SqliteSpool
from vedette.store.state.db import StateDB, open_state
from vedette.store.state.positions import get_position, stored_per_unit

log = logging.getLogger("vedette.server")


@dataclass(slots=True)
class IngestCounters:
    """Counters of the HTTP ingest, for /metrics."""

    requests: int = 0
    accepted_events: int = 0
    duplicates: int = 0
    rejected_bad: int = 0
    refused_backpressure: int = 0
    refused_quota: int = 0
    refused_storage: int = 0
    last_storage_error: float = 0.0
    """``time.monotonic()`` of the last append the spool could not write (disk full, I/O)."""
    accepted_by_unit: dict[str, int] = field(default_factory=dict)


class SpoolSink:
    """The syslog listeners' sink: the same durable spool as HTTP ingest."""

    def __init__(self, centre: Centre) -> None:
        self.centre = centre

    def accepting(self) -> bool:
        """False at the spool's high-water mark: TCP stops reading, UDP counts drops."""
        return self.centre.accepting()

    async def submit(self, unit: str, lines: list[bytes]) -> None:
        """Durable when it returns."""
        try:
            await run_in_threadpool(self.centre.spool.append, unit, "syslog", lines)
        except SpoolUnavailable as exc:
            self.centre.ingest.last_storage_error = time.monotonic()
            raise Backpressure(str(exc)) from exc
        except SpoolFull as exc:
            raise Backpressure(str(exc)) from exc


class Centre:
    """One monitoring centre process (the embedded default: every role in one process)."""

    def __init__(
        self,
        config: ServeConfig,
        state: StateDB,
        spool: SqliteSpool,
        store: ParquetEventStore,
        rules: RuleSet,
        *,
        retrohunts: HuntRunner | None = None,
        warning_search: WarningSearch | None = None,
    ) -> None:
        self.config = config
        self.state = state
        self.spool = spool
        self.store = store
        self.rules = rules
        self.auth = Authenticator(
            state,
            idle_seconds=config.session_idle_seconds,
            lifetime_seconds=config.session_lifetime_seconds,
        )
        self.quota = UnitQuota(config.unit_quota_eps)
        self.pipeline_state = PipelineState(state, dedup_window_seconds=config.dedup_window_seconds)
        self.loop_watch = LoopWatch()
        self.ingest = IngestCounters()
        # Notifications: sends the outbox the worker fills (vedette.notify).
        self.dispatcher = Dispatcher(state)
        # Coordination: incidents and early warning for the alerts the worker commits (the
        # search in this process, or on the workers in the scale-out mode).
        self.coordinator = Coordinator(
            state, store, load_policy(config.warning_policy), search=warning_search
        )
        self.worker: Worker | WorkerProcess
        if config.worker_process and isinstance(spool, SqliteSpool):
            # Detection in a child process of its own (vedette.server.worker_process).
            self.worker = WorkerProcess(config, state, spool, on_new_alerts=self.coordinator.submit)
            self.pipeline_state.on_exceptions_changed = self.worker.exceptions_changed
        else:
            self.worker = Worker(
                spool,
                store,
                self.pipeline_state,
                rules.detector,
                correlator_factory=correlator_factory(rules.detector),
            )
            self.pipeline_state.on_new_alerts = self.coordinator.submit
        # Retro-hunt: rules and indicator sets over stored events, in the background (in this
        # process by default; the scale-out api hands them to the workers' queue).
        self.retrohunts: HuntRunner = retrohunts or RetroHuntRunner(
            state, store, attack_kb=rules.detector.attack_kb
        )
        self.listeners: list[SyslogListener] = []
        self.started_at = time.time()
        self.reload_errors: list[str] = []
        self._reload_lock = threading.Lock()
        self._tasks: list[asyncio.Task[None]] = []
        self._rate_samples: deque[tuple[float, int]] = deque()
        self._store_counts: dict[str, int] = {}
        self._store_counts_at = 0.0

    # -- opening -----------------------------------------------------------------------------

    @classmethod
    def open(cls, config: ServeConfig) -> Centre:
        """Open every store and load the rules; raises ConfigError on a setup that cannot run."""
        home = config.paths.create()
        state = open_state(config.state_url, backup_dir=home.backups)
        spool = SqliteSpool(
            home.spool_db,
            high_water_events=config.high_water_events,
            numbered_after=_committed_position(state),
        )
        store = ParquetEventStore(home.events)
        rules = load_rules(config)
        return cls(config, state, spool, store, rules)

    # -- life cycle --------------------------------------------------------------------------

    async def start(self) -> None:
        """Start the worker, the syslog listeners and the housekeeping tasks."""
        self.coordinator.start()
        self.retrohunts.start()
        self.worker.start()
        self.dispatcher.start()
        sink = SpoolSink(self)
        for listener_config in self.config.syslog:
            listener = SyslogListener(listener_config, sink)
            await listener.start()
            self.listeners.append(listener)
            log.info(
                "syslog %s listening on %s:%d",
                listener_config.protocol,
                listener_config.host,
                listener.port,
            )
        self._tasks.append(asyncio.create_task(self._housekeeping()))
        self._tasks.append(asyncio.create_task(self.loop_watch.run()))
        self._watch_sighup()

    def _watch_sighup(self) -> None:
        """SIGHUP reloads rules and feeds, as daemons do (main thread, Unix only)."""
        if threading.current_thread() is not threading.main_thread() or not hasattr(
            signal, "SIGHUP"
        ):
            return
        loop = asyncio.get_running_loop()

        def reload() -> None:
            async def run() -> None:
                try:
                    rules = await run_in_threadpool(self.reload_rules)
                    log.info(
                        "SIGHUP: %d rules loaded, %d not loaded",
                        rules.facts.rules_loaded,
                        len(rules.facts.rule_errors),
                    )
                except Exception as exc:
                    log.error("SIGHUP: rules not reloaded, the old set keeps running: %s", exc)

            self._tasks.append(loop.create_task(run()))

        loop.add_signal_handler(signal.SIGHUP, reload)

    async def stop(self) -> None:
        """Stop accepting, drain listeners, let the worker finish its batch, close stores."""
        for task in self._tasks:
            task.cancel()
        for listener in self.listeners:
            await listener.stop()
        await run_in_threadpool(self.worker.stop)
        await run_in_threadpool(self.coordinator.stop)
        await run_in_threadpool(self.retrohunts.stop)
        await run_in_threadpool(self.dispatcher.stop)
        self.spool.close()
        self.state.close()

    def accepting(self) -> bool:
        """True below the spool's high-water mark."""
        return self.spool.pending_events() < self.config.high_water_events

    def rate(self) -> float:
        """Events/s acknowledged over about the last minute (HTTP and syslog)."""
        now = time.monotonic()
        total = sum(count for count, _ in self.spool.received_counts().values())
        samples = self._rate_samples
        samples.append((now, total))
        while len(samples) > 2 and now - samples[0][0] > 60:
            samples.popleft()
        first_time, first_total = samples[0]
        return (total - first_total) / (now - first_time) if now > first_time else 0.0

    def store_counts(self) -> dict[str, int]:
        """Events stored per unit since the unit began, as the workers committed them with
        their Parquet files (the state store's unit counters; cached for a few seconds).

        A count that only grows, as a Prometheus counter must: retention does not lower it.
        Not summed from the Parquet footers: that read every file of every day kept, and
        took 3.5 s of the api's CPU every scrape after ten minutes at 10,000 events/s.
        """
        now = time.monotonic()
        if now - self._store_counts_at > 5.0:
            with self.state.session(readonly=True, system=True) as session:
                self._store_counts = stored_per_unit(session)
            self._store_counts_at = now
        return self._store_counts

    # -- rules -------------------------------------------------------------------------------

    def reload_rules(self) -> RuleSet:
        """Load the rules and feeds again; swap them in only if they load.

        A rule that does not load is reported in the new set's facts, the others run; a set
        that cannot load at all (no rule, a missing folder, a broken feed) leaves the old set
        running and the reason in ``reload_errors``.
        """
        with self._reload_lock:
            try:
                rules = load_rules(self.config)
            except Exception as exc:
                message = f"{datetime.now(UTC).isoformat()}: {exc}"
                self.reload_errors.append(message)
                del self.reload_errors[:-20]
                raise
            old, self.rules = self.rules, rules
            self.worker.swap_detector(rules.detector)
            self.worker.correlator_factory = correlator_factory(rules.detector)
        self._hunt_new_indicators(old.detector, rules.detector)
        self._hunt_new_rules(old.detector, rules)
        return rules

    def _hunt_new_rules(self, old: Detector, new: RuleSet) -> None:
        """Retro-hunt the detection rules the reload added (by rule id) like new indicators:
        every unit, the policy's look-back and unit filters; never fails the reload."""
        policy = self.coordinator.policy
        if not policy.automatic:
            return
        try:
            job = hunt_new_rules(
                self.retrohunts,
                old,
                new.detector,
                rule_paths=new.rule_paths,
                placeholders=self.config.placeholders,
                lookback_days=policy.lookback_days,
                exclude_units=policy.exclude_units,
                target_units=policy.target_units,
            )
            if job is not None:
                log.info("rules reloaded: retro-hunt %d of the new rules started", job)
        except Exception:
            log.exception("rules reloaded, but the retro-hunt of new rules did not start")

    def _hunt_new_indicators(self, old: Detector, new: Detector) -> None:
        """Retro-hunt the indicators the reload added over every unit, for the warning
        policy's look-back (``automatic: false`` turns it off); never fails the reload."""
        policy = self.coordinator.policy
        if not policy.automatic:
            return
        try:
            job = hunt_new_indicators(
                self.retrohunts,
                old,
                new,
                lookback_days=policy.lookback_days,
                exclude_units=policy.exclude_units,
                target_units=policy.target_units,
            )
            if job is not None:
                log.info("feeds reloaded: retro-hunt %d of the new indicators started", job)
        except Exception:
            log.exception("feeds reloaded, but the retro-hunt of new indicators did not start")

    # -- housekeeping ------------------------------------------------------------------------

    async def _housekeeping(self) -> None:
        """Silent sensors, retention and compaction of the event store, on a timer
        (vedette.server.housekeeping, vedette.server.compaction).

        Retention and compaction run one after the other in this task, never side by side.
        """
        last_retention = 0.0
        compacted_at = time.monotonic()
        while True:
            await asyncio.sleep(self.config.silent_check_seconds)
            try:
                await run_in_threadpool(self.raise_silent_alerts)
                await run_in_threadpool(prune_expired_sessions, self.state)
                if time.monotonic() - last_retention > RETENTION_EVERY_SECONDS:
                    last_retention = time.monotonic()
                    await run_in_threadpool(self.store.apply_retention, self.config.retention_days)
                every = self.config.compact_seconds
                if every > 0 and time.monotonic() - compacted_at >= every:
                    compacted_at = time.monotonic()
                    await run_in_threadpool(self.compact_store)
            except Exception:
                log.exception("housekeeping failed; trying again later")

    def compact_store(self) -> CompactReport:
        """Merge the event store's small committed files (vedette.server.compaction)."""
        policy = CompactPolicy(
            target_bytes=self.config.compact_target_bytes,
            target_rows=self.config.compact_target_rows,
        )
        return compact_store(self.store, self.state, policy)

    def raise_silent_alerts(self, now: datetime | None = None) -> int:
        """An alert for each unit that has sent events and gone quiet past its threshold."""
        return raise_silent_alerts(
            self.state, dedup_window_seconds=self.config.dedup_window_seconds, now=now
        )

    # -- counters of the duties (the scale-out api reads them from the processes running them)

    def coordination_stats(self) -> CoordinatorStats:
        """The coordinator's counters, for /metrics."""
        return self.coordinator.stats

    def dispatch_stats(self) -> DispatchStats:
        """The notification dispatcher's counters, for /metrics."""
        return self.dispatcher.stats

    def worker_stats(self) -> WorkerStats:
        """The pipeline worker's counters, for /metrics."""
        return self.worker.stats

    def unclassified_counts(self) -> dict[str, int]:
        """Events in no known layout per unit, for /metrics."""
        return dict(self.worker.decoder.unclassified)


def _committed_position(state: StateDB) -> int:
    """The highest spool position the worker committed (a new spool must number past it)."""
    with state.session(readonly=True) as session:
        return max(get_position(session, DETECT), get_position(session, STORE))
