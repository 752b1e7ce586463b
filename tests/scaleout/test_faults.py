"""Faults of the scale-out set under sustained ingest from a retrying client: a worker killed
with SIGKILL mid-batch, and NATS restarted mid-stream. Then a count: every acknowledged event
stored once (per batch and index, by hunt), and detections equal to the same events matched
in-process by the same detector (so no alert was raised twice on redelivery)."""

from __future__ import annotations

import time
from collections import Counter
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path

import httpx
import pytest
from scalekit import STARTER, Cluster
from test_durability import (
    Batch,
    Sender,
    assert_exactly_once,
    detections_by_rule,
    make_batches,
    windows_records,
)

from natsserver import NatsServer
from vedette.pipeline.build import DetectorConfig, build_detector
from vedette.server.records import BatchDecoder
from vedette.store.spool import SpoolBatch

UNITS = ("branch-a", "branch-b", "branch-c", "branch-d")


def expected_detections(batches_by_unit: dict[str, list[Batch]], cache: Path) -> Counter[str]:
    """Sigma detections per rule of these events, matched here by the same detector."""
    detector, _ = build_detector(DetectorConfig(rule_paths=(STARTER,), cache_dir=cache))
    # Rules that only feed a correlation (generate: false) raise no alert of their own.
    suppressed = detector.suppressed_rule_ids
    decoder = BatchDecoder()
    counts: Counter[str] = Counter()
    for unit, batches in batches_by_unit.items():
        for n, batch in enumerate(batches):
            spooled = SpoolBatch(n + 1, unit, "json", time.time(), batch.body.split(b"\n"))
            for detection in detector.match(decoder.events(spooled)):
                if detection.kind != "correlation" and detection.rule_id not in suppressed:
                    counts[detection.rule_id] += 1
    return counts


def _wait_until(condition: Callable[[], bool], timeout: float, interval: float = 0.05) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if condition():
            return True
        time.sleep(interval)
    return False


def _metric(url: str, name: str) -> float:
    text = httpx.get(url + "/metrics", timeout=10).text
    return sum(
        float(line.rsplit(" ", 1)[1]) for line in text.splitlines() if line.startswith(name + "{")
    )


@pytest.fixture
def clusters() -> Iterator[list[Cluster]]:
    started: list[Cluster] = []
    yield started
    for cluster in started:
        cluster.kill_all()


def _setup(
    root: Path, nats: str, database: str, started: list[Cluster], per_unit: int
) -> tuple[Cluster, dict[str, list[Batch]], dict[str, str], str]:
    cluster = Cluster(root, nats, database, partitions=4, lease_seconds=3.0)
    started.append(cluster)
    cluster.add_units([("hq", None), *((u, "hq") for u in UNITS)])
    records = windows_records()
    batches = {
        unit: make_batches(records[i * per_unit : (i + 1) * per_unit], 40, unit)
        for i, unit in enumerate(UNITS)
    }
    tokens = {unit: cluster.token(unit, "ingest") for unit in UNITS}
    return cluster, batches, tokens, cluster.token("hq", "analyst")


def _senders(
    cluster: Cluster, batches: dict[str, list[Batch]], tokens: dict[str, str]
) -> list[Sender]:
    return [
        Sender(cluster.api, tokens[u], batches[u], threads=1, deadline=70).start() for u in UNITS
    ]


def _acked(senders: Sequence[Sender]) -> int:
    return sum(s.acked_count() for s in senders)


def _check(cluster: Cluster, analyst: str, batches: dict[str, list[Batch]], work_dir: Path) -> None:
    every = [b for unit in UNITS for b in batches[unit]]
    assert_exactly_once(cluster.api, analyst, every)
    got = detections_by_rule(cluster.api, analyst)
    want = expected_detections(batches, work_dir / "cache")
    assert sum(want.values()) > 5, want
    # Redelivery after the kill would raise these counts (or open a second alert): equal
    # counts per rule mean every detection was committed once.
    assert got == want, cluster.logs()


def test_worker_sigkilled_mid_batch_its_partitions_move_and_nothing_is_lost_or_doubled(
    work_dir: Path, nats_server: str, database: str, clusters: list[Cluster]
) -> None:
    cluster, batches, tokens, analyst = _setup(work_dir, nats_server, database, clusters, 1500)
    cluster.start(workers=2)
    cluster.wait_spread()
    victim = next(w for w in cluster.workers if w.held())
    senders = _senders(cluster, batches, tokens)
    total = sum(len(b) for b in batches.values())
    assert _wait_until(lambda: _acked(senders) >= total // 3, 40)
    # Mid-batch: once the victim has written a Parquet file of its own, kill it at once.
    mine = [f"-p{p}.parquet" for p in victim.held()]
    assert _wait_until(
        lambda: any(f.name.endswith(tuple(mine)) for f in cluster.store.rglob("part-*")), 30, 0.01
    )
    victim.kill()
    for sender in senders:
        sender.join()
    survivor = next(w for w in cluster.workers if w is not victim)
    assert _wait_until(lambda: len(survivor.held()) == cluster.partitions, 30), cluster.logs()
    _check(cluster, analyst, batches, work_dir)
    assert _metric(cluster.api.url, "vedette_partition_takeovers_total") >= 1
    assert _metric(cluster.api.url, "vedette_partition_moves_total") >= 1


def test_nats_restarted_mid_stream_loses_nothing_acknowledged(
    work_dir: Path, own_nats: NatsServer, database: str, clusters: list[Cluster]
) -> None:
    cluster, batches, tokens, analyst = _setup(work_dir, own_nats.url, database, clusters, 800)
    cluster.start(workers=2)
    cluster.wait_spread()
    senders = _senders(cluster, batches, tokens)
    total = sum(len(b) for b in batches.values())
    assert _wait_until(lambda: _acked(senders) >= total // 3, 40)
    own_nats.kill()  # SIGKILL: only what was fsync'd survives (sync_interval: always)
    assert _acked(senders) < total, "NATS was killed after the stream, not in it"
    time.sleep(1.0)
    own_nats.start()
    for sender in senders:
        sender.join()
    _check(cluster, analyst, batches, work_dir)
    assert cluster.stop_all() == [0] * 5, cluster.logs()
