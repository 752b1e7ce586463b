"""Compaction in the scale-out set: workers write ``-p<N>`` files on the shared store, the
scheduler's housekeeping merges them per partition (positions ``store:p<N>`` in PostgreSQL), and
``vedette admin compact --database --store`` does the same from an operator's shell; hunting
through the api returns the same rows throughout."""

from __future__ import annotations

import re
import subprocess
import time
from collections import Counter
from pathlib import Path
from typing import Any

import httpx
import orjson
from scalekit import Cluster
from serverkit import VEDETTE

from vedette.store.eventstore import ParquetEventStore, PartName

SAMPLES = Path(__file__).resolve().parents[2] / "samples" / "windows"
# The samples' layout keeps known fields only: rows are ordered by their whole content (an
# event sent twice is two equal rows, so ties do not matter).
CONTENT = (
    "SELECT unit, time, host, product, services, source_format, record_id, fields, raw "
    "FROM events ORDER BY unit, time, host, fields, record_id"
)
UNITS = ("branch-a", "branch-b")


def lines() -> list[dict[str, Any]]:
    out = []
    for path in sorted(SAMPLES.rglob("*.jsonl")):
        out += [orjson.loads(x) for x in path.read_bytes().splitlines() if x.strip()]
    assert len(out) > 50
    return out


def hunt(cluster: Cluster, token: str) -> list[list[Any]]:
    with cluster.api.client(token) as http:
        answer = http.post("/api/v1/hunt", json={"sql": CONTENT, "limit": 10_000})
    assert answer.status_code == 200, answer.text
    rows: list[list[Any]] = answer.json()["rows"]
    return rows


def metric(cluster: Cluster, name: str) -> float:
    text = httpx.get(cluster.api.url + "/metrics", timeout=30).text
    found = re.search(rf"^{name} ([0-9.e+]+)$", text, re.M)
    assert found, f"{name} not in /metrics"
    return float(found.group(1))


def test_scheduler_housekeeping_and_admin_compact_merge_each_partition(
    work_dir: Path, nats_server: str, database: str
) -> None:
    cluster = Cluster(
        work_dir,
        nats_server,
        database,
        partitions=2,
        rules=(),
        extra_args=["--silent-check", "1", "--compact-every", "2"],
    )
    cluster.add_units([("hq", None), ("branch-a", "hq"), ("branch-b", "hq")])
    tokens = {u: cluster.token(u, "ingest") for u in UNITS}
    reader = cluster.token("hq", "analyst")
    records = lines()
    cluster.start(workers=1)
    stored = {u: 0 for u in UNITS}

    def send(tag: str, batches: int) -> None:
        for n in range(batches):
            unit = UNITS[n % 2]
            chunk = records[(n * 7) % 40 : (n * 7) % 40 + 20]
            key = f"{tag}{n:03d}"
            body = b"\n".join(
                orjson.dumps({**r, "vedette_batch": key, "vedette_i": i})
                for i, r in enumerate(chunk)
            )
            with cluster.api.client(tokens[unit]) as http:
                answer = http.post(
                    "/api/v1/events",
                    content=body,
                    headers={"Content-Type": "application/x-ndjson", "Idempotency-Key": key},
                )
            assert answer.status_code == 202, answer.text
            stored[unit] += len(chunk)
            cluster.api.wait_stored(reader, unit, stored[unit], timeout=120)

    try:
        send("a", 16)
        before = hunt(cluster, reader)
        assert len(before) == sum(stored.values())
        store = ParquetEventStore(cluster.store)
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline:
            shown = store.files(UNITS)
            if len(shown) == len({p.parent for p in shown}):
                break
            time.sleep(0.5)
        else:
            raise AssertionError(f"the scheduler did not compact: {shown}\n{cluster.logs()}")
        names = [PartName.parse(p.name) for p in shown]
        assert all(n is not None and n.partition is not None for n in names), shown
        assert any(n is not None and n.first != n.last for n in names), shown
        assert metric(cluster, "vedette_compaction_files_merged_total") >= 2
        assert hunt(cluster, reader) == before

        # No scheduler (nothing compacts on its own), more batches, and an operator's run
        # with the roles' --database and --store.
        assert all(s.stop() == 0 for s in cluster.schedulers)
        send("b", 8)
        everything = hunt(cluster, reader)
        assert len(everything) == sum(stored.values())
        assert not Counter(map(repr, before)) - Counter(map(repr, everything))
        done = subprocess.run(
            [*VEDETTE, "admin", "--home", str(cluster.api.home), "--database", database,
             "compact", "--store", str(cluster.store), "--grace", "0"],
            capture_output=True, text=True, timeout=300,
        )  # fmt: skip
        assert done.returncode == 0, done.stderr
        assert re.search(r"^[1-9][0-9,]* files merged", done.stdout, re.M), done.stdout
        files = sorted(cluster.store.glob("unit=*/day=*/part-*.parquet"))
        assert files == store.files(UNITS)  # the sources are gone (grace 0)
        assert len(files) == len({p.parent for p in files})  # a unit is in one partition
        assert hunt(cluster, reader) == everything
    finally:
        cluster.kill_all()
