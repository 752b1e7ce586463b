"""More scale-out faults: a worker paused (SIGSTOP) past its lease, as a network pause between
it and NATS/PostgreSQL would; every acknowledged event stored once, no alert doubled, and no
good batch dead-lettered."""

from __future__ import annotations

import signal
import time
from pathlib import Path

from scalekit import Cluster
from test_faults import _acked, _check, _senders, _setup, _wait_until, clusters  # noqa: F401


def test_worker_paused_past_its_lease_then_resumed_loses_and_doubles_nothing(
    work_dir: Path,
    nats_server: str,
    database: str,
    clusters: list[Cluster],  # noqa: F811
) -> None:
    cluster, batches, tokens, analyst = _setup(work_dir, nats_server, database, clusters, 800)
    admin = cluster.token("hq", "admin")
    cluster.start(workers=2)
    cluster.wait_spread()
    victim = next(w for w in cluster.workers if w.held())
    survivor = next(w for w in cluster.workers if w is not victim)
    senders = _senders(cluster, batches, tokens)
    total = sum(len(b) for b in batches.values())
    assert _wait_until(lambda: _acked(senders) >= total // 3, 40)
    assert victim.process is not None
    victim.process.send_signal(signal.SIGSTOP)
    try:
        # Longer than the lease (3 s): the survivor takes the paused worker's partitions.
        # 90 s: on a busy machine the survivor's claim loop and the lease expiry take a while.
        assert _wait_until(lambda: len(survivor.held()) == cluster.partitions, 90), cluster.logs()
        time.sleep(1.0)
    finally:
        victim.process.send_signal(signal.SIGCONT)
    for sender in senders:
        sender.join()
    # The resumed worker's commits are fenced by the lease it lost; the partitions settle.
    cluster.wait_spread(60)
    _check(cluster, analyst, batches, work_dir)
    with cluster.api.client(admin) as http:
        assert http.get("/api/v1/deadletters").json()["items"] == []
