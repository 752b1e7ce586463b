"""The scheduler role: the centre's singleton duties, in whichever process holds their lease.

``vedette serve --role scheduler`` runs, in the one process holding the ``scheduler`` duty
(:mod:`vedette.store.state.duties`):

- the **coordinator** (incidents, early warning; :class:`vedette.alerts.warning.Coordinator`),
  fed with the ids of the alerts the workers commit, by polling; its early-warning searches
  run as (unit, day) tasks of the workers on the work queue (:mod:`vedette.server.warning_tasks`:
  a holder that dies while it waits leaves the job, which its successor finds by name);
- the **silent-unit check** and **housekeeping**: retention of stored events and compaction
  (:mod:`vedette.server.housekeeping`, :mod:`vedette.server.compaction`), every
  ``--compact-every`` seconds.

Any number of schedulers may run: one holds the duty and renews it every third of the lease,
the others try to claim it as often and take it over once the holder's lease expired (it died
or stalled). Every write of the duties is fenced by the lease and its epoch in the same
transaction, so a stalled holder that wakes up commits nothing; the coordinator commits its
position (the last alert done) with its warnings, so the new holder carries on from there.

Alert ids come from a sequence and the workers commit concurrently, so an id can become visible
after a higher one: the feed hands ids over in order and waits for a gap to fill for
:data:`GAP_SETTLE_SECONDS` (an id of a transaction that rolled back never fills) before it
moves past it.
"""

from __future__ import annotations

import logging
import signal
import threading
import time
from dataclasses import asdict
from pathlib import Path
from typing import Any, Final

from sqlalchemy import select
from sqlalchemy.orm import Session

from vedette.alerts.warning import (
    POSITION,
    Coordinator,
    CoordinatorStats,
    WarningSearch,
    load_policy,
)
from vedette.server.compaction import compact_store
from vedette.server.config import ServeConfig
from vedette.server.housekeeping import (
    RETENTION_EVERY_SECONDS,
    prune_expired_sessions,
    raise_silent_alerts,
)
from vedette.server.hunt_tasks import QueuedHuntRunner
from vedette.server.partitions import worker_identity
from vedette.server.role_signals import refuse_reload_on_sighup
from vedette.server.warning_tasks import QueuedWarningSearch
from vedette.store.compact import CompactPolicy
from vedette.store.eventstore import ParquetEventStore
from vedette.store.huntqueue import HuntQueue, HuntQueueConfig
from vedette.store.jetstream import JetStreamConfig
from vedette.store.state.db import StateDB, open_state
from vedette.store.state.duties import (
    SCHEDULER,
    check_duty,
    claim_duty,
    leave,
    release_duty,
    renew_member,
)
from vedette.store.state.models import Alert
from vedette.store.state.positions import get_position

log = logging.getLogger("vedette.scheduler")

__all__ = ["AlertFeed", "Scheduler", "run_scheduler"]

FEED_SECONDS: Final = 1.0
GAP_SETTLE_SECONDS: Final = 10.0
FEED_LIMIT: Final = 5000


class AlertFeed:
    """New alert ids, in order, from the state store (see the module docstring on gaps)."""

    def __init__(self, state: StateDB, after: int) -> None:
        self.state = state
        self.after = after
        self._gap_since: dict[int, float] = {}

    def poll(self, now: float | None = None) -> list[int]:
        """The ids to hand over now, ascending."""
        now = time.monotonic() if now is None else now
        with self.state.session(readonly=True) as session:
            ids = list(
                session.scalars(
                    select(Alert.id)
                    .where(Alert.id > self.after)
                    .order_by(Alert.id)
                    .limit(FEED_LIMIT)
                )
            )
        out: list[int] = []
        for alert_id in ids:
            expected = self.after + 1
            if alert_id != expected:
                # Ids expected..alert_id-1 are not visible: still committing, or rolled back.
                since = self._gap_since.setdefault(expected, now)
                if now - since < GAP_SETTLE_SECONDS:
                    break
                log.debug("alert ids %d-%d never appeared; moving on", expected, alert_id - 1)
            out.append(alert_id)
            self.after = alert_id
        self._gap_since = {k: v for k, v in self._gap_since.items() if k > self.after}
        return out


class _Duties:
    """The work of one epoch of the duty: coordinator, its feed, housekeeping."""

    def __init__(self, scheduler: Scheduler, epoch: int) -> None:
        self.scheduler = scheduler
        self.epoch = epoch
        config = scheduler.config
        self.coordinator = Coordinator(
            scheduler.state,
            scheduler.store,
            load_policy(config.warning_policy),
            search=scheduler.search,
            fence=self.fence,
        )
        self._stop = threading.Event()
        self._threads: list[threading.Thread] = []

    def fence(self, session: Session) -> None:
        """Refuse the transaction unless this epoch of the duty is still held (LeaseLost)."""
        check_duty(session, SCHEDULER, self.scheduler.owner, self.epoch, time.time())

    def holding(self) -> bool:
        """True while this epoch runs."""
        return not self._stop.is_set() and self.scheduler.epoch == self.epoch

    def start(self) -> None:
        state = self.scheduler.state
        with state.session(readonly=True) as session:
            after = get_position(session, POSITION)
        feed = AlertFeed(state, after)
        self.coordinator.start()  # queues the alerts past its position
        for target, name in ((self._feed, "feed"), (self._housekeeping, "housekeeping")):
            thread = threading.Thread(
                target=target, args=(feed,), name=f"vedette-{name}", daemon=True
            )
            thread.start()
            self._threads.append(thread)

    def stop(self) -> None:
        self._stop.set()
        for thread in self._threads:
            thread.join(30)
        self.coordinator.stop(drain=False)

    def _feed(self, feed: AlertFeed) -> None:
        while not self._stop.wait(FEED_SECONDS):
            try:
                ids = feed.poll()
            except Exception as exc:
                log.warning("could not poll new alerts for coordination: %s", exc)
                continue
            if ids:
                self.coordinator.submit(ids)

    def _housekeeping(self, _feed: AlertFeed) -> None:
        """Silent units, retention, compaction; one after the other, as the embedded centre."""
        scheduler = self.scheduler
        config = scheduler.config
        last_retention = 0.0
        compacted_at = time.monotonic()
        while not self._stop.wait(config.silent_check_seconds):
            try:
                raised = raise_silent_alerts(
                    scheduler.state,
                    dedup_window_seconds=config.dedup_window_seconds,
                    fence=self.fence,
                )
                scheduler.silent_alerts += raised
                prune_expired_sessions(scheduler.state)
                if time.monotonic() - last_retention > RETENTION_EVERY_SECONDS:
                    last_retention = time.monotonic()
                    scheduler.store.apply_retention(config.retention_days)
                    scheduler.retention_runs += 1
                every = config.compact_seconds
                if every > 0 and time.monotonic() - compacted_at >= every and self.holding():
                    compacted_at = time.monotonic()
                    # One run at a time across processes (the compactor's lock on the store),
                    # so a scheduler that lost the duty mid-run does no harm.
                    policy = CompactPolicy(
                        target_bytes=config.compact_target_bytes,
                        target_rows=config.compact_target_rows,
                    )
                    report = compact_store(scheduler.store, scheduler.state, policy)
                    scheduler.compactions += int(not report.busy)
            except Exception as exc:
                log.warning("housekeeping failed; trying again later: %s", exc)


class Scheduler:
    """Claims the scheduler duty and runs it while held (see the module docstring)."""

    def __init__(
        self,
        config: ServeConfig,
        state: StateDB,
        store: ParquetEventStore,
        *,
        lease_seconds: float = 10.0,
        owner: str | None = None,
        search: WarningSearch | None = None,
    ) -> None:
        self.config = config
        self.state = state
        self.store = store
        self.search = search
        """The coordinator's early-warning search (None: in this process)."""
        self.lease_seconds = lease_seconds
        self.owner = owner or worker_identity()
        self.epoch: int | None = None
        """The epoch of the duty this process runs, None while standing by."""
        self.activations = 0
        self.claim_errors = 0
        self.silent_alerts = 0
        self.retention_runs = 0
        self.compactions = 0
        self._duties: _Duties | None = None
        self._coordination = CoordinatorStats()
        self._renewed_at = 0.0
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def start(self) -> None:
        """Run the lease loop in a thread."""
        self._thread = threading.Thread(target=self._run, name="vedette-duty", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        """Stop the duties, then give the lease up so another scheduler takes it at once."""
        self._stop.set()
        if self._thread is not None:
            self._thread.join(60)
        held = self._duties is not None
        self._end_duties()
        try:
            with self.state.session() as session:
                leave(session, self.owner)
                if held:
                    release_duty(session, SCHEDULER, self.owner)
        except Exception as exc:
            log.warning("could not release the duty (it expires in %.0f s): %s",
                        self.lease_seconds, exc)  # fmt: skip

    def stats(self) -> dict[str, Any]:
        """Counters for the api's /metrics (role_members.stats)."""
        coordination = asdict(self._coordination)
        if self._duties is not None:
            coordination = _added(coordination, asdict(self._duties.coordinator.stats))
        return {
            "active": self._duties is not None,
            "coordination": coordination,
            "silent_alerts": self.silent_alerts,
            "retention_runs": self.retention_runs,
            "compactions": self.compactions,
            "activations": self.activations,
        }

    def _run(self) -> None:
        while not self._stop.is_set():
            try:
                self._claim_once()
            except Exception as exc:  # the loop is the process's life: it must go on
                log.warning("scheduler lease loop: %s", exc)
            self._stop.wait(self.lease_seconds / 3)

    def _claim_once(self) -> None:
        now = time.time()
        try:
            with self.state.session() as session:
                renew_member(session, self.owner, "scheduler", now, self.lease_seconds,
                             self.stats())  # fmt: skip
                epoch = claim_duty(session, SCHEDULER, self.owner, now, self.lease_seconds)
        except Exception as exc:
            self.claim_errors += 1
            log.warning("scheduler lease not renewed: %s", exc)
            if self._duties is not None and time.time() - self._renewed_at > self.lease_seconds:
                # The lease has surely expired: another scheduler may run the duty now.
                log.error("lease not renewed for %.0f s: stopping the duties", self.lease_seconds)
                self._end_duties()
            return
        self._renewed_at = now
        if self._duties is not None and epoch != self._duties.epoch:
            log.warning("scheduler duty lost (epoch %d): stopping", self._duties.epoch)
            self._end_duties()
        if epoch is not None and self._duties is None:
            self._begin_duties(epoch)

    def _begin_duties(self, epoch: int) -> None:
        self.epoch = epoch
        duties = _Duties(self, epoch)
        try:
            duties.start()
        except Exception as exc:
            log.warning("scheduler duties did not start (retrying): %s", exc)
            duties.stop()
            self.epoch = None
            return
        self._duties = duties
        self.activations += 1
        log.info("scheduler %s runs the duties (epoch %d)", self.owner, epoch)
        print(f"vedette serve: scheduler {self.owner} active (epoch {epoch})", flush=True)

    def _end_duties(self) -> None:
        duties, self._duties = self._duties, None
        self.epoch = None
        if duties is not None:
            duties.stop()
            # Counters survive the epoch: /metrics counts since the process started.
            added = _added(asdict(self._coordination), asdict(duties.coordinator.stats))
            self._coordination = CoordinatorStats(**added)
            print(f"vedette serve: scheduler {self.owner} standing by", flush=True)


def _added(a: dict[str, Any], b: dict[str, Any]) -> dict[str, Any]:
    """Counters of ``a`` plus those of ``b`` (other fields: ``b``'s when set)."""
    out = dict(a)
    for name, value in b.items():
        if isinstance(value, int) and isinstance(out.get(name), int):
            out[name] = out[name] + value
        elif value is not None:
            out[name] = value
    return out


def run_scheduler(
    config: ServeConfig, nats: JetStreamConfig | None, store: Path, *, lease_seconds: float = 10.0
) -> int:
    """The scheduler role in the foreground until SIGTERM or SIGINT; the exit status.

    The early-warning searches go on the work queue as tasks of the workers
    (:mod:`vedette.server.warning_tasks`), published from here with ``nats``; without it they
    wait for an api's sweep to publish them (within 30 s).
    """
    home = config.paths.create()
    state = open_state(config.state_url, backup_dir=home.backups, stall_timeout=lease_seconds)
    events = ParquetEventStore(store)
    hunts = None
    if nats is not None:
        hunts = QueuedHuntRunner(state, events, HuntQueue(HuntQueueConfig.like(nats)))
    scheduler = Scheduler(
        config,
        state,
        events,
        lease_seconds=lease_seconds,
        search=QueuedWarningSearch(state, events, hunts),
    )
    stop = threading.Event()

    def on_signal(signum: int, _frame: object) -> None:
        stop.set()

    signal.signal(signal.SIGTERM, on_signal)
    signal.signal(signal.SIGINT, on_signal)
    refuse_reload_on_sighup("scheduler")
    scheduler.start()
    print(f"vedette serve: scheduler {scheduler.owner} standing by", flush=True)
    while not stop.wait(1.0):
        pass
    scheduler.stop()
    if hunts is not None:
        hunts.stop()
    state.close()
    print("vedette serve: stopped", flush=True)
    return 0
