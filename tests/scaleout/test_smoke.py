"""The embedded smoke scenario, run against the scale-out set: api + 2 workers as separate
processes, NATS JetStream and PostgreSQL started by the tests."""

from __future__ import annotations

from pathlib import Path

import httpx
from scalekit import Cluster

SAMPLES = Path(__file__).resolve().parents[2] / "samples" / "windows" / "WS-FIN-07"


def test_events_in_alerts_out_across_api_and_two_workers_and_a_restart(
    work_dir: Path, nats_server: str, database: str
) -> None:
    cluster = Cluster(work_dir, nats_server, database, rules=())
    cluster.add_units([("hq", None), ("branch-a", "hq")])
    ingest = cluster.token("branch-a", "ingest")
    analyst = cluster.token("hq", "analyst")
    body = (SAMPLES / "sysmon.jsonl").read_bytes()
    events = len([line for line in body.splitlines() if line.strip()])
    cluster.start(workers=2)
    api = cluster.api
    try:
        cluster.wait_spread()
        with api.client(ingest) as http:
            answer = http.post(
                "/api/v1/events", content=body, headers={"Content-Type": "application/x-ndjson"}
            )
        assert answer.status_code == 202, answer.text
        assert answer.json()["accepted"] == events
        api.wait_stored(analyst, "branch-a", events)
        with api.client(analyst) as http:
            alerts = http.get("/api/v1/alerts", params={"limit": 1000}).json()
        titles = {a["rule_title"] for a in alerts["items"]}
        assert "LSASS Opened by a MiniDump Writer" in titles, titles
        lsass = next(a for a in alerts["items"] if a["rule_title"].startswith("LSASS"))
        assert lsass["unit"] == "branch-a" and lsass["host"] == "WS-FIN-07.corp.example"
        assert {"id": "T1003.001", "name": "LSASS Memory", "tactics": ["credential-access"]} in (
            lsass["attack"]
        )
        assert alerts["next"] is None
        # The worker of branch-a's partition wrote the files, named with its partition.
        files = list(cluster.store.rglob("part-*.parquet"))
        assert files and all("-p" in f.name for f in files), files
        metrics = httpx.get(api.url + "/metrics", timeout=10).text
        owned = [ln for ln in metrics.splitlines() if ln.startswith("vedette_partition_owned{")]
        assert len(owned) == cluster.partitions and all(ln.endswith(" 1.0") for ln in owned)
        assert "vedette_partitions_unowned 0.0" in metrics
    finally:
        codes = cluster.stop_all()
    assert codes == [0] * 5, cluster.logs()
    cluster.start(workers=2)
    try:
        unit = api.wait_stored(analyst, "branch-a", events, timeout=30)
        assert unit["events_received"] == events and unit["events_stored"] == events
    finally:
        cluster.kill_all()
