"""A SIGTERM stops every role quickly, with status 0 and without a traceback in its output."""

from __future__ import annotations

import signal
import time
from pathlib import Path

from scalekit import Cluster


def test_sigterm_stops_every_role_within_seconds_and_prints_no_traceback(
    work_dir: Path, nats_server: str, database: str
) -> None:
    cluster = Cluster(work_dir, nats_server, database, rules=())
    cluster.add_units([("hq", None)])
    cluster.start(workers=2)
    try:
        cluster.wait_spread()
        cluster.wait_scheduler()
        everyone = [*cluster.processes(), *cluster.apis]
        took: dict[str, float] = {}
        start = time.monotonic()
        for role in everyone:
            assert role.process is not None
            role.process.send_signal(signal.SIGTERM)
        for role in everyone:
            assert role.process is not None
            assert role.process.wait(60) == 0, cluster.logs()
            took[role.home.name] = time.monotonic() - start
    finally:
        cluster.kill_all()
    # The workers' work-queue connection used to be drained, which waits on the pull
    # subscription for its whole 10 s timeout and then printed "Task was destroyed" and
    # "Event loop is closed" tracebacks.
    assert max(took.values()) < 8.0, took
    for role in everyone:
        output = role.log()
        for bad in ("Traceback", "ERROR", "was never retrieved", "Task was destroyed"):
            assert bad not in output, f"{role.home.name}: {output[-4000:]}"
