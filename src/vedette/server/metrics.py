"""Prometheus metrics, read from the live counters at each scrape (nothing double-kept).

Every drop the centre cannot avoid has a counter here: UDP syslog refused at high water, peers
mapped to no unit, oversize messages, batches refused with 503 or 429, corrupt spool batches.

Units are a security boundary here too: an anonymous scrape gets the per-unit families summed,
with no unit label (no unit's name or volume shows); a scrape with a bearer token (Prometheus'
``authorization`` setting) gets one series per unit the token covers, and only those.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

from prometheus_client import CollectorRegistry, generate_latest
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily
from prometheus_client.exposition import CONTENT_TYPE_LATEST
from prometheus_client.registry import Collector

from vedette.store.compact import read_status


class CentreCollector(Collector):
    """Turns the centre's counters into metric families."""

    def __init__(self, centre: Any, units: frozenset[str] | None = None) -> None:
        self.centre = centre
        self.units = units
        """Unit names the caller covers; None for an anonymous scrape (totals only)."""

    def _per_unit(
        self, name: str, documentation: str, counts: Iterator[tuple[str, float]]
    ) -> CounterMetricFamily:
        """Per unit for the caller's units, or one unlabelled total when anonymous."""
        if self.units is None:
            family = CounterMetricFamily(name, documentation)
            family.add_metric([], sum(count for _, count in counts))
            return family
        family = CounterMetricFamily(name, documentation + ", per unit", labels=["unit"])
        for unit, count in sorted(counts):
            if unit in self.units:
                family.add_metric([unit], count)
        return family

    def collect(self) -> Iterator[Any]:
        """One family per measure, labelled by unit, level or reason."""
        centre = self.centre
        ingest = centre.ingest
        worker = centre.worker_stats()

        yield self._per_unit(
            "vedette_events_received",
            "Events acknowledged by ingest",
            iter([(u, c) for u, (c, _) in centre.spool.received_counts().items()]),
        )
        yield self._per_unit(
            "vedette_events_stored",
            "Events in the event store",
            iter(list(centre.store_counts().items())),
        )

        yield _counter("vedette_ingest_requests", "HTTP ingest requests", ingest.requests)
        yield _counter(
            "vedette_ingest_duplicates", "Batches answered as duplicates", ingest.duplicates
        )
        refused = CounterMetricFamily(
            "vedette_ingest_refused",
            "Batches refused and not stored (the client must resend)",
            labels=["reason"],
        )
        refused.add_metric(["bad_request"], ingest.rejected_bad)
        refused.add_metric(["backpressure"], ingest.refused_backpressure)
        refused.add_metric(["quota"], ingest.refused_quota)
        refused.add_metric(["storage"], ingest.refused_storage)
        yield refused
        yield _gauge(
            "vedette_ingest_rate", "Events/s acknowledged over the last minute", centre.rate()
        )

        yield _gauge("vedette_spool_depth_events", "Acknowledged events not yet processed",
                     centre.spool.pending_events())  # fmt: skip
        yield _gauge("vedette_spool_depth_batches", "Acknowledged batches not yet processed",
                     centre.spool.pending_batches())  # fmt: skip
        yield _gauge("vedette_event_loop_stall_seconds",
                     "The api event loop's longest stall over the last minute",
                     centre.loop_watch.worst_recent())  # fmt: skip
        yield _counter("vedette_event_loop_slow_stalls", "Event loop stalls of a second or more",
                       centre.loop_watch.slow_stalls)  # fmt: skip
        yield _gauge("vedette_lag_seconds", "Receive-to-processed time of the newest batch",
                     worker.lag_seconds)  # fmt: skip
        yield _counter("vedette_events_processed", "Events through detection", worker.events)
        detections = CounterMetricFamily(
            "vedette_detections", "Detections raised (after exceptions)", labels=["level"]
        )
        for level, count in sorted(worker.detections_by_level.items()):
            detections.add_metric([level], count)
        yield detections
        yield _counter("vedette_detections_excepted", "Detections covered by a rule exception",
                       worker.excepted)  # fmt: skip
        yield _counter("vedette_alerts_created", "New alerts", worker.alerts_created)
        yield _counter("vedette_spool_corrupt_batches", "Spool batches that failed their checksum",
                       worker.corrupt_batches)  # fmt: skip
        yield _counter("vedette_worker_errors", "Errors the worker recovered from", worker.errors)
        yield _counter("vedette_worker_slow_steps",
                       "Worker steps that took over a second (each logged with its duration)",
                       worker.slow_steps)  # fmt: skip
        yield _counter("vedette_dead_letters", "Spool batches set aside after repeated failures",
                       worker.dead_letters)  # fmt: skip
        yield _counter("vedette_correlation_restarts",
                       "Times correlation windows were lost (a restart, a partition moved)",
                       worker.correlation_restarts)  # fmt: skip
        yield self._per_unit(
            "vedette_events_unclassified",
            "Events in no known layout, stored raw or generic",
            iter(list(centre.unclassified_counts().items())),
        )

        syslog = CounterMetricFamily(
            "vedette_syslog_messages",
            "Syslog messages per listener and outcome",
            labels=["listener", "outcome"],
        )
        for listener in centre.listeners:
            name = f"{listener.config.protocol}:{listener.port}"
            stats = listener.stats
            for outcome in (
                "received",
                "submitted",
                "dropped_backpressure",
                "dropped_unmapped",
                "dropped_shutdown",
                "oversize",
                "bad_frames",
                "tls_failures",
            ):
                syslog.add_metric([name, outcome], getattr(stats, outcome))
        yield syslog
        # Notifications (vedette.notify): outcomes per channel since start, and what waits.
        dispatch = centre.dispatch_stats()
        notifications = CounterMetricFamily(
            "vedette_notifications",
            "Notification sends per channel and outcome (failed sends are retried)",
            labels=["channel", "outcome"],
        )
        for (channel, outcome), count in sorted(dispatch.outcomes.items()):
            notifications.add_metric([channel, outcome], count)
        yield notifications
        pending = GaugeMetricFamily(
            "vedette_notifications_pending", "Notifications not yet sent", labels=["channel"]
        )
        for channel, count in sorted(dispatch.pending.items()):
            pending.add_metric([channel], count)
        yield pending
        # Coordination (vedette.alerts.warning): grouping, retro-hunts, warnings, failures.
        coordination = CounterMetricFamily(
            "vedette_coordination",
            "Alerts coordinated, grouped into incidents, unit hunts run, warnings, errors",
            labels=["outcome"],
        )
        coordinated = centre.coordination_stats()
        for outcome in ("alerts", "grouped", "hunts", "warnings", "errors"):
            coordination.add_metric([outcome], getattr(coordinated, outcome))
        yield coordination
        yield from _compaction(centre.store.root)
        yield _gauge("vedette_rules_loaded", "Sigma rules loaded", centre.rules.facts.rules_loaded)
        yield _gauge("vedette_rules_not_loaded", "Sigma rules that did not load",
                     len(centre.rules.facts.rule_errors))  # fmt: skip


def _compaction(root: Path) -> Iterator[Any]:
    """The event store's compaction, from its status file: whichever process ran it (this
    centre's housekeeping, a scheduler, ``vedette admin compact``) on the same store."""
    status = read_status(root)
    last = status.get("last_run") or {}
    yield _counter("vedette_compaction_runs", "Compaction runs over the event store",
                   status.get("runs", 0))  # fmt: skip
    yield _counter("vedette_compaction_files_merged",
                   "Small event files merged away (each is deleted after its merge)",
                   status.get("files_merged", 0))  # fmt: skip
    yield _counter("vedette_compaction_files_written", "Merged event files written",
                   status.get("merges", 0))  # fmt: skip
    yield _counter("vedette_compaction_bytes_read", "Bytes of the files merged",
                   status.get("bytes_in", 0))  # fmt: skip
    yield _counter("vedette_compaction_bytes_written", "Bytes of the merged files",
                   status.get("bytes_out", 0))  # fmt: skip
    yield _gauge("vedette_compaction_last_run_timestamp_seconds",
                 "When the last compaction run started (Unix time; 0: never)",
                 last.get("started_at", 0.0))  # fmt: skip
    yield _gauge("vedette_compaction_last_run_seconds", "How long the last compaction run took",
                 last.get("seconds", 0.0))  # fmt: skip


def _counter(name: str, documentation: str, value: float) -> CounterMetricFamily:
    family = CounterMetricFamily(name, documentation)
    family.add_metric([], value)
    return family


def _gauge(name: str, documentation: str, value: float) -> GaugeMetricFamily:
    return GaugeMetricFamily(name, documentation, value=value)


def render_metrics(centre: Any, units: frozenset[str] | None = None) -> tuple[bytes, str]:
    """The exposition text for one scrape (per-unit series only for ``units``)."""
    registry = CollectorRegistry(auto_describe=False)
    registry.register(CentreCollector(centre, units))
    # The scale-out api role adds its own (partition leases, vedette.server.roles).
    for collector in getattr(centre, "extra_collectors", ()):
        registry.register(collector)
    return generate_latest(registry), CONTENT_TYPE_LATEST
