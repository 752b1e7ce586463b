"""The workers' counters on the api's /metrics (scale-out): the api runs no worker, so the
worker processes publish theirs in PostgreSQL and the api sums them; real NATS, PostgreSQL,
api and worker processes.

The sums only grow: a worker that stops hands its counts over to the retired workers' row, a
killed one's last published counts stay, so Prometheus never sees a false counter reset.
"""

from __future__ import annotations

import re
import time
from pathlib import Path

import httpx
from scalekit import Cluster
from test_smoke import SAMPLES


def _metrics(url: str) -> dict[str, float]:
    """``name{labels}`` -> value of one anonymous scrape."""
    out: dict[str, float] = {}
    for line in httpx.get(url + "/metrics", timeout=10).text.splitlines():
        match = re.match(r"^([a-z_]+(?:\{[^}]*\})?) (\S+)$", line)
        if match:
            out[match.group(1)] = float(match.group(2))
    return out


def _wait_metric(url: str, name: str, wanted: float, timeout: float = 30.0) -> dict[str, float]:
    deadline = time.monotonic() + timeout
    seen: dict[str, float] = {}
    while time.monotonic() < deadline:
        seen = _metrics(url)
        if seen.get(name) == wanted:
            return seen
        time.sleep(0.3)
    raise AssertionError(f"{name} is {seen.get(name)}, not {wanted}: {seen}")


def _send(cluster: Cluster, token: str, body: bytes) -> None:
    with cluster.api.client(token) as http:
        answer = http.post(
            "/api/v1/events", content=body, headers={"Content-Type": "application/x-ndjson"}
        )
    assert answer.status_code == 202, answer.text


def test_the_api_metrics_show_the_worker_processes_counters_and_they_only_grow(
    work_dir: Path, nats_server: str, database: str
) -> None:
    cluster = Cluster(work_dir, nats_server, database, rules=(), partitions=2)
    cluster.add_units([("hq", None), ("branch-a", "hq")])
    ingest = cluster.token("branch-a", "ingest")
    analyst = cluster.token("hq", "analyst")
    body = (SAMPLES / "sysmon.jsonl").read_bytes()
    events = len([line for line in body.splitlines() if line.strip()])
    cluster.start(workers=1, schedulers=0, notifiers=0)
    api = cluster.api
    try:
        cluster.wait_spread()
        _send(cluster, ingest, body)
        api.wait_stored(analyst, "branch-a", events)
        seen = _wait_metric(api.url, "vedette_events_processed_total", events)
        with api.client(analyst) as http:
            alerts = http.get("/api/v1/alerts", params={"limit": 1000}).json()["items"]
        assert alerts
        assert seen["vedette_alerts_created_total"] == len(alerts)
        detections = sum(v for k, v in seen.items() if k.startswith("vedette_detections_total{"))
        assert detections == sum(a["count"] for a in alerts)
        assert seen['vedette_detections_total{level="high"}'] >= 1
        assert seen["vedette_worker_errors_total"] == 0
        assert seen["vedette_dead_letters_total"] == 0
        assert seen['vedette_role_processes{role="worker"}'] == 1

        # A clean stop: the counts move to the retired row; a new worker adds its own.
        first = cluster.workers[0]
        assert first.stop() == 0, first.log()
        second = cluster.add_worker().start()
        cluster.wait_spread()
        _send(cluster, ingest, body)
        api.wait_stored(analyst, "branch-a", 2 * events)
        seen = _wait_metric(api.url, "vedette_events_processed_total", 2 * events)
        assert seen["vedette_alerts_created_total"] == len(alerts)  # the same alerts, again
        assert seen['vedette_role_processes{role="worker"}'] == 1

        # A kill: its last published counts stay in the sum; it is no longer live.
        second.kill()
        seen = _wait_metric(api.url, 'vedette_role_processes{role="worker"}', 0)
        assert seen["vedette_events_processed_total"] == 2 * events
        assert seen["vedette_events_stored_total"] == 2 * events
    finally:
        cluster.kill_all()
