"""A SIGTERM stops every role quickly, with status 0 and without a traceback in its output; a
SIGHUP or a rules reload is refused with what to do instead (the workers would keep the old
rules), and ends nothing."""

from __future__ import annotations

import signal
import time
from pathlib import Path

from scalekit import Cluster


def test_sighup_and_reload_are_refused_and_sigterm_stops_every_role_quickly_and_quietly(
    work_dir: Path, nats_server: str, database: str
) -> None:
    cluster = Cluster(work_dir, nats_server, database, rules=())
    cluster.add_units([("hq", None)])
    admin = cluster.token("hq", "admin")
    cluster.start(workers=2)
    try:
        cluster.wait_spread()
        cluster.wait_scheduler()
        everyone = [*cluster.processes(), *cluster.apis]
        with cluster.api.client(admin) as http:
            refused = http.post("/api/v1/rules/reload")
        assert refused.status_code == 400, refused.text
        assert "restart the worker and api processes" in refused.json()["message"]
        for role in everyone:
            assert role.process is not None
            role.process.send_signal(signal.SIGHUP)
        deadline = time.monotonic() + 30
        while not all("SIGHUP: rules not reloaded" in r.log() for r in everyone):
            assert time.monotonic() < deadline, cluster.logs()
            time.sleep(0.2)
        assert all(r.process is not None and r.process.poll() is None for r in everyone)
        with cluster.api.client(admin) as http:
            assert http.get("/api/v1/rules").status_code == 200
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
