"""Compaction in a real ``vedette serve``: events in over HTTP, a file per flush, then merged by
``vedette admin compact`` beside the running server and by the server's own housekeeping;
what the hunt endpoint returns is the same before and after, also across a SIGKILL.

Events are the OTRF Windows atomic recordings, each tagged with its batch and place, so a hunt
can compare the stored content row by row.
"""

from __future__ import annotations

import re
import subprocess
import time
import zipfile
from pathlib import Path
from typing import Any

import httpx
import orjson
import pytest
from serverkit import VEDETTE, Centre, add_token, make_centre

from datasets import dataset
from vedette.store.eventstore import ParquetEventStore

pytestmark = pytest.mark.embedded_only(
    "vedette admin --home compact beside the embedded centre; scale-out compaction: "
    "tests/scaleout/test_compaction.py"
)

STARTER = Path(__file__).resolve().parents[2] / "src" / "vedette" / "rulepacks" / "starter"
NDJSON = {"Content-Type": "application/x-ndjson"}
CONTENT = (
    "SELECT unit, fields->>'vedette_batch' AS batch, fields->>'vedette_i' AS i, time, host, "
    "product, services, categories, source_format, record_id, fields, raw FROM events "
    "ORDER BY batch, CAST(i AS INTEGER)"
)


def records(count: int) -> list[dict[str, Any]]:
    """The first ``count`` records of the OTRF Windows defence-evasion recordings."""
    out: list[dict[str, Any]] = []
    root = dataset("otrf-security-datasets", "datasets", "atomic", "windows", "defense_evasion")
    for path in sorted(root.rglob("*.zip")):
        with zipfile.ZipFile(path) as archive:
            for name in archive.namelist():
                if name.endswith(".json"):
                    out += [orjson.loads(x) for x in archive.read(name).splitlines() if x.strip()]
        if len(out) >= count:
            return out[:count]
    raise AssertionError(f"only {len(out)} records in {root}")


def send(
    centre: Centre,
    tokens: dict[str, str],
    reader: str,
    batches: list[tuple[str, str, list[dict[str, Any]]]],
    stored: dict[str, int],
) -> int:
    """Post each batch and wait until it is stored before the next (one flush, one file each);
    ``stored`` holds each unit's count so far. The events sent."""
    sent = 0
    for key, unit, chunk in batches:
        lines = [
            orjson.dumps({**r, "vedette_batch": key, "vedette_i": i}) for i, r in enumerate(chunk)
        ]
        with centre.client(tokens[unit]) as http:
            answer = http.post(
                "/api/v1/events",
                content=b"\n".join(lines),
                headers={**NDJSON, "Idempotency-Key": key},
            )
        assert answer.status_code == 202, answer.text
        stored[unit] = stored.get(unit, 0) + len(chunk)
        sent += len(chunk)
        centre.wait_stored(reader, unit, stored[unit], timeout=120)
    return sent


def hunt(centre: Centre, token: str) -> list[list[Any]]:
    with centre.client(token) as http:
        answer = http.post("/api/v1/hunt", json={"sql": CONTENT, "limit": 10_000})
    assert answer.status_code == 200, answer.text
    body = answer.json()
    assert not body["truncated"]
    rows: list[list[Any]] = body["rows"]
    return rows


def parquet_files(events: Path) -> list[Path]:
    return sorted(events.glob("unit=*/day=*/part-*.parquet"))


def metric(centre: Centre, name: str) -> float:
    text = httpx.get(centre.url + "/metrics", timeout=30).text
    found = re.search(rf"^{name} ([0-9.e+]+)$", text, re.M)
    assert found, f"{name} not in /metrics"
    return float(found.group(1))


def test_compaction_beside_a_running_centre_keeps_every_event_once(tmp_path: Path) -> None:
    home = tmp_path / "centre"
    events = home / "events"
    centre = make_centre(
        home,
        units=(("hq", None), ("branch-a", "hq"), ("branch-b", "hq")),
        args=["--rules", str(STARTER), "--compact-every", "0"],
    )
    tokens = {u: add_token(home, u, "ingest") for u in ("branch-a", "branch-b")}
    reader = add_token(home, "hq", "analyst")
    data = records(1_800)
    first = [
        (f"a{n:03d}", ("branch-a", "branch-b")[n % 2], data[n * 60 : n * 60 + 60])
        for n in range(20)
    ]
    later = [
        (f"b{n:03d}", ("branch-a", "branch-b")[n % 2], data[1200 + n * 60 : 1260 + n * 60])
        for n in range(10)
    ]
    centre.start()
    try:
        stored: dict[str, int] = {}
        total = send(centre, tokens, reader, first, stored)
        before = hunt(centre, reader)
        assert len(before) == total == 1_200
        files_before = parquet_files(events)
        assert len(files_before) >= 20  # a file per batch at least

        # An operator's run beside the server.
        done = subprocess.run(
            [*VEDETTE, "admin", "--home", str(home), "compact", "--grace", "0"],
            capture_output=True, text=True, timeout=300,
        )  # fmt: skip
        assert done.returncode == 0, done.stderr
        assert re.search(r"^[1-9][0-9,]* files merged into [1-9]", done.stdout, re.M), done.stdout
        files_after = parquet_files(events)
        folders = {p.parent for p in files_before}
        assert len(files_after) == len(folders) < len(files_before)
        assert hunt(centre, reader) == before
        singles = [f for f in folders if sum(p.parent == f for p in files_before) == 1]
        merged = metric(centre, "vedette_compaction_files_merged_total")
        assert merged == len(files_before) - len(singles)
        assert metric(centre, "vedette_compaction_runs_total") == 1
        with centre.client(reader) as http:
            units = {u["name"]: u for u in http.get("/api/v1/units").json()["items"]}
        assert units["branch-a"]["events_stored"] + units["branch-b"]["events_stored"] == total
    finally:
        centre.kill()  # no clean stop: the restart recovers from the committed positions

    # Restarted with the housekeeping compacting every 2 s: the recovery keeps the merged
    # files (all committed), new flushes are merged in turn.
    centre.args = ["--rules", str(STARTER), "--silent-check", "1", "--compact-every", "2"]
    centre.start()
    try:
        assert hunt(centre, reader) == before
        total += send(centre, tokens, reader, later, stored)
        everything = hunt(centre, reader)
        assert len(everything) == total == 1_800
        assert everything[: len(before)] == before
        # Merged sources stay 300 s for running hunts (the default grace), hidden from readers.
        store = ParquetEventStore(events)
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline:
            shown = store.files(["branch-a", "branch-b"])
            if len(shown) == len({p.parent for p in shown}):
                break
            time.sleep(0.5)
        else:
            raise AssertionError(f"not compacted by the housekeeping: {shown}\n{centre.log()}")
        assert len(parquet_files(events)) > len(shown)
        assert hunt(centre, reader) == everything
        assert metric(centre, "vedette_compaction_runs_total") >= 2
        assert metric(centre, "vedette_compaction_bytes_written_total") > 0
        assert metric(centre, "vedette_compaction_last_run_timestamp_seconds") > time.time() - 600
    finally:
        assert centre.stop() == 0, centre.log()
