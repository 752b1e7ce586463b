"""Durability of ``vedette serve`` through the real process: SIGKILL and SIGTERM mid-stream, a
full disk under the spool, back-pressure and quotas.

The events are the OTRF Windows atomic datasets (flat NXLog-style JSON, the layout the readers
know), each record tagged with its batch's idempotency key and its place in the batch, so the
hunt endpoint can tell exactly which acknowledged event is stored, and how many times.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import threading
import time
import zipfile
from collections import Counter
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import orjson
import pytest
from serverkit import Centre, add_token, make_centre

from datasets import dataset

STARTER = Path(__file__).resolve().parents[2] / "src" / "vedette" / "rulepacks" / "starter"
RULES = ["--rules", str(STARTER)]
NDJSON = {"Content-Type": "application/x-ndjson"}
BATCH_FIELD = "vedette_test_batch"
SEQ_FIELD = "vedette_test_seq"


# -- events and batches ----------------------------------------------------------------------


_records: list[dict[str, Any]] = []


def windows_records() -> list[dict[str, Any]]:
    """Every record of the OTRF Windows atomic datasets (read once per test session)."""
    if not _records:
        root = dataset("otrf-security-datasets", "datasets", "atomic", "windows")
        for path in sorted(root.rglob("*.zip")):
            with zipfile.ZipFile(path) as archive:
                for name in archive.namelist():
                    if name.endswith(".json"):
                        for line in archive.read(name).splitlines():
                            if line.strip():
                                _records.append(orjson.loads(line))
    assert len(_records) > 10_000, "the OTRF Windows datasets look truncated"
    return _records


@dataclass(frozen=True, slots=True)
class Batch:
    """One request body, tagged: every record carries the key and its index."""

    key: str
    body: bytes
    events: int


def make_batches(records: Sequence[dict[str, Any]], size: int, tag: str) -> list[Batch]:
    """``records`` cut into batches of ``size``, each with its own Idempotency-Key."""
    out = []
    for number, start in enumerate(range(0, len(records), size)):
        key = f"{tag}-{number:05d}"
        chunk = records[start : start + size]
        lines = [orjson.dumps({**r, BATCH_FIELD: key, SEQ_FIELD: i}) for i, r in enumerate(chunk)]
        out.append(Batch(key, b"\n".join(lines), len(chunk)))
    return out


# -- a client that never gives up on a batch ------------------------------------------------


@dataclass
class Sender:
    """Sends batches from a few threads, retrying each with the same key until acknowledged."""

    centre: Centre
    token: str
    batches: list[Batch]
    threads: int = 2
    deadline: float = 60.0
    acked: dict[str, int] = field(default_factory=dict)
    """Key → HTTP status that acknowledged it (202, or 200 for a duplicate)."""
    answers: Counter[int] = field(default_factory=Counter)
    transport_errors: int = 0
    _lock: threading.Lock = field(default_factory=threading.Lock)
    _next: int = 0
    _workers: list[threading.Thread] = field(default_factory=list)

    def start(self) -> Sender:
        self._stop_at = time.monotonic() + self.deadline
        for _ in range(self.threads):
            thread = threading.Thread(target=self._run, daemon=True)
            thread.start()
            self._workers.append(thread)
        return self

    def join(self) -> None:
        for thread in self._workers:
            thread.join(max(1.0, self._stop_at - time.monotonic() + 5))
        assert not any(t.is_alive() for t in self._workers), "sender did not finish in time"
        assert len(self.acked) == len(self.batches), f"{len(self.acked)} acknowledged"

    def acked_count(self) -> int:
        with self._lock:
            return len(self.acked)

    def _take(self) -> Batch | None:
        with self._lock:
            if self._next >= len(self.batches):
                return None
            self._next += 1
            return self.batches[self._next - 1]

    def _run(self) -> None:
        with httpx.Client(
            base_url=self.centre.url,
            headers={"Authorization": f"Bearer {self.token}", **NDJSON},
            timeout=5,
        ) as http:
            while (batch := self._take()) is not None:
                while time.monotonic() < self._stop_at:
                    try:
                        answer = http.post(
                            "/api/v1/events",
                            content=batch.body,
                            headers={"Idempotency-Key": batch.key},
                        )
                    except httpx.TransportError:
                        with self._lock:
                            self.transport_errors += 1
                        time.sleep(0.05)
                        continue
                    with self._lock:
                        self.answers[answer.status_code] += 1
                    if answer.status_code in (200, 202):
                        body = answer.json()
                        assert body["accepted"] == batch.events, body
                        assert body["duplicate"] is (answer.status_code == 200), body
                        with self._lock:
                            self.acked[batch.key] = answer.status_code
                        break
                    time.sleep(0.05)


# -- what the centre holds -------------------------------------------------------------------


def hunt(centre: Centre, token: str, sql: str) -> list[list[Any]]:
    with centre.client(token) as http:
        answer = http.post("/api/v1/hunt", json={"sql": sql, "limit": 10_000})
    assert answer.status_code == 200, answer.text
    result = answer.json()
    assert not result["truncated"]
    return list(result["rows"])


def stored_by_batch(centre: Centre, token: str) -> dict[str, tuple[int, int]]:
    """Batch key → (rows stored, distinct indices stored)."""
    rows = hunt(
        centre,
        token,
        f"SELECT fields->>'{BATCH_FIELD}' AS b, count(*), "
        f"count(DISTINCT fields->>'{SEQ_FIELD}') FROM events GROUP BY b",
    )
    return {str(b): (int(n), int(d)) for b, n, d in rows}


def total_stored(centre: Centre, token: str) -> int:
    return int(hunt(centre, token, "SELECT count(*) FROM events")[0][0])


def wait_total(centre: Centre, token: str, expected: int, timeout: float = 30.0) -> int:
    """Wait until the store holds ``expected`` events (or more: then the caller fails)."""
    deadline = time.monotonic() + timeout
    count = total_stored(centre, token)
    while count < expected and time.monotonic() < deadline:
        time.sleep(0.2)
        count = total_stored(centre, token)
    return count


def alerts(centre: Centre, token: str) -> list[dict[str, Any]]:
    items: list[dict[str, Any]] = []
    cursor: str | None = None
    with centre.client(token) as http:
        while True:
            params: dict[str, Any] = {"limit": 500}
            if cursor:
                params["cursor"] = cursor
            page = http.get("/api/v1/alerts", params=params).json()
            items.extend(page["items"])
            cursor = page["next"]
            if cursor is None:
                return items


def detections_by_rule(centre: Centre, token: str) -> Counter[str]:
    """Detections per rule, correlations left out (their windows do not survive a restart,
    as the worker's docs say)."""
    counts: Counter[str] = Counter()
    for alert in alerts(centre, token):
        if alert["kind"] != "correlation":
            counts[alert["rule_id"]] += alert["count"]
    return counts


def metric(centre: Centre, name: str) -> str:
    """The lines of /metrics that start with ``name``."""
    text = httpx.get(centre.url + "/metrics", timeout=10).text
    return "\n".join(line for line in text.splitlines() if line.startswith(name))


def assert_exactly_once(centre: Centre, token: str, batches: Sequence[Batch]) -> None:
    """Every batch stored whole, no event twice, nothing else stored."""
    expected = sum(b.events for b in batches)
    assert wait_total(centre, token, expected) == expected, centre.log()
    stored = stored_by_batch(centre, token)
    wrong = {b.key: stored.get(b.key) for b in batches if stored.get(b.key) != (b.events, b.events)}
    assert not wrong, f"batches stored not exactly once (key: rows, distinct): {wrong}"
    assert set(stored) == {b.key for b in batches}


@pytest.fixture
def centres() -> Iterator[list[Centre]]:
    """Centres a test started; each is killed at the end whatever happened."""
    started: list[Centre] = []
    yield started
    for centre in started:
        centre.kill()


def new_centre(home: Path, started: list[Centre], args: Sequence[str] = ()) -> Centre:
    centre = make_centre(home, args=[*RULES, *args])
    started.append(centre)
    return centre


# -- the tests -------------------------------------------------------------------------------


@pytest.mark.contract
@pytest.mark.scaleout_excluded(
    "cost: 110 s (a reference centre and three starts of five processes); scale-out kills: "
    "tests/scaleout/test_faults*.py (a worker SIGKILLed mid-batch, NATS and PostgreSQL restarted)"
)
def test_sigkill_twice_mid_stream_stores_every_acknowledged_event_once_and_alerts_once(
    tmp_path: Path, centres: list[Centre]
) -> None:
    batches = make_batches(windows_records(), 40, "crash")
    # The reference: the same events into a centre nobody kills (in bigger batches: the
    # detections of Sigma rules do not depend on how events are cut into batches).
    reference = new_centre(tmp_path / "reference", centres)
    ref_ingest = add_token(reference.home, "branch-a", "ingest")
    ref_analyst = add_token(reference.home, "hq", "analyst")
    reference.start()
    ref_batches = make_batches(windows_records(), 1000, "crash")
    Sender(reference, ref_ingest, ref_batches, threads=2).start().join()
    assert_exactly_once(reference, ref_analyst, ref_batches)
    expected_detections = detections_by_rule(reference, ref_analyst)
    assert sum(expected_detections.values()) > 10, expected_detections
    reference.kill()

    centre = new_centre(tmp_path / "crash", centres)
    ingest = add_token(centre.home, "branch-a", "ingest")
    analyst = add_token(centre.home, "hq", "analyst")
    centre.start()
    sender = Sender(centre, ingest, batches, threads=2, deadline=180).start()
    # First kill: a third of the way through, whatever the worker is doing.
    _wait_until(lambda: sender.acked_count() >= len(batches) // 3, 30)
    centre.kill()
    time.sleep(0.3)  # the client meets a closed port and keeps retrying
    centre.start()
    # Second kill: while the worker writes a Parquet file, or just after it is renamed into
    # place and before its position is committed (the flush's crash windows).
    events_dir = centre.home / "events"
    before = len(list(events_dir.rglob("part-*.parquet")))
    caught = _wait_until(
        lambda: (
            any(events_dir.rglob(".part-*.tmp"))
            or len(list(events_dir.rglob("part-*.parquet"))) > before
        ),
        20,
        interval=0.0005,
    )
    assert caught, "no Parquet flush seen after the restart"
    centre.kill()
    centre.start()
    sender.join()
    assert centre.starts == 3
    assert_exactly_once(centre, analyst, batches)
    assert detections_by_rule(centre, analyst) == expected_detections
    # The client's retries met duplicates or a closed port at least once: the kills were real.
    assert sender.transport_errors > 0, sender.answers
    assert set(sender.answers) <= {200, 202}, sender.answers


@pytest.mark.contract
def test_sigterm_while_ingesting_exits_0_and_loses_nothing_acknowledged(
    tmp_path: Path, centres: list[Centre]
) -> None:
    batches = make_batches(windows_records()[:8000], 40, "term")
    centre = new_centre(tmp_path / "home", centres)
    ingest = add_token(centre.home, "branch-a", "ingest")
    analyst = add_token(centre.home, "hq", "analyst")
    centre.start()
    sender = Sender(centre, ingest, batches, threads=2, deadline=60).start()
    _wait_until(lambda: sender.acked_count() >= len(batches) // 2, 30)
    assert centre.stop() == 0, centre.log()
    assert "Traceback" not in centre.log(), centre.log()
    centre.start()
    sender.join()
    assert_exactly_once(centre, analyst, batches)


@dataclass
class Tmpfs:
    """A small tmpfs mounted over a folder (needs root and mount rights)."""

    path: Path
    size: str

    def __enter__(self) -> Tmpfs:
        self.path.mkdir(parents=True, exist_ok=True)
        done = subprocess.run(
            ["mount", "-t", "tmpfs", "-o", f"size={self.size}", "tmpfs", str(self.path)],
            capture_output=True,
            text=True,
        )
        if done.returncode != 0:
            pytest.skip(f"cannot mount a tmpfs here: {done.stderr.strip()}")
        return self

    def __exit__(self, *exc: object) -> None:
        subprocess.run(["umount", "-l", str(self.path)], check=False)


@pytest.mark.embedded_only("the SQLite spool on a full disk; the scale-out api spools to JetStream")
def test_full_disk_under_the_spool_answers_503_and_loses_nothing_acknowledged(
    tmp_path: Path, centres: list[Centre]
) -> None:
    if os.geteuid() != 0 or shutil.which("mount") is None:
        pytest.skip("mounting a small tmpfs needs root")
    batches = make_batches(windows_records()[:6000], 100, "full")
    centre = new_centre(tmp_path / "home", centres)
    ingest = add_token(centre.home, "branch-a", "ingest")
    analyst = add_token(centre.home, "hq", "analyst")
    spool_dir = centre.home / "spool"
    with Tmpfs(spool_dir, "4m"):
        centre.start()
        with centre.client(ingest) as http:
            first = http.post(
                "/api/v1/events",
                content=batches[0].body,
                headers={**NDJSON, "Idempotency-Key": batches[0].key},
            )
            assert first.status_code == 202, first.text
            # Fill what is left of the disk the spool lives on.
            filler = spool_dir / "filler"
            with filler.open("wb") as f:
                try:
                    while True:
                        f.write(b"\0" * 65536)
                        f.flush()
                except OSError:
                    pass
            acked = [batches[0]]
            refused = None
            for batch in batches[1:]:
                answer = http.post(
                    "/api/v1/events",
                    content=batch.body,
                    headers={**NDJSON, "Idempotency-Key": batch.key},
                )
                if answer.status_code == 202:
                    acked.append(batch)
                    continue
                refused = (batch, answer)
                break
            assert refused is not None, "the spool never noticed the full disk"
            batch, answer = refused
            assert answer.status_code == 503, answer.text
            assert int(answer.headers["Retry-After"]) >= 1
            assert answer.json()["error"] == "storage_unavailable", answer.text
            assert "full" in answer.json()["message"], answer.text
            assert 'reason="storage"' in metric(centre, "vedette_ingest_refused")
            refused_line = [
                line
                for line in metric(centre, "vedette_ingest_refused").splitlines()
                if 'reason="storage"' in line
            ]
            assert float(refused_line[0].split()[-1]) >= 1, refused_line
            # The same batch again: still refused, still not stored, the server still up.
            again = http.post(
                "/api/v1/events",
                content=batch.body,
                headers={**NDJSON, "Idempotency-Key": batch.key},
            )
            assert again.status_code == 503, again.text
            assert httpx.get(centre.url + "/healthz").status_code == 200
            # Alive but not ready: a load balancer sends the units elsewhere meanwhile.
            ready = httpx.get(centre.url + "/readyz")
            assert ready.status_code == 503 and "could not write" in ready.text, ready.text
            # Space comes back: the very same key is taken, once.
            filler.unlink()
            answer = http.post(
                "/api/v1/events",
                content=batch.body,
                headers={**NDJSON, "Idempotency-Key": batch.key},
            )
            assert answer.status_code == 202, answer.text
            acked.append(batch)
        assert_exactly_once(centre, analyst, acked)
        centre.kill()
        # The operator moves the spool to a bigger disk (its files as the kill left them).
        saved = tmp_path / "spool-saved"
        shutil.copytree(spool_dir, saved)
    shutil.rmtree(spool_dir)
    shutil.copytree(saved, spool_dir)
    # Restarted there after SIGKILL: nothing acknowledged lost, nothing twice, ingest works.
    centre.start()
    assert_exactly_once(centre, analyst, acked)
    rest = batches[len(acked) : len(acked) + 5]
    sender = Sender(centre, ingest, rest, threads=1, deadline=20).start()
    sender.join()
    assert_exactly_once(centre, analyst, [*acked, *rest])


@pytest.mark.contract
def test_high_water_answers_503_and_readyz_fails_and_refused_batches_store_nothing(
    tmp_path: Path, centres: list[Centre]
) -> None:
    records = windows_records()
    batches = make_batches(records * 2, 5000, "hw")
    centre = new_centre(tmp_path / "home", centres, ["--high-water", "1", "--unit-quota", "0"])
    ingest = add_token(centre.home, "branch-a", "ingest")
    analyst = add_token(centre.home, "hq", "analyst")
    centre.start()
    answers: dict[str, httpx.Response] = {}
    ready_codes: Counter[int] = Counter()
    stop = threading.Event()

    def watch_ready() -> None:
        while not stop.is_set():
            ready_codes[httpx.get(centre.url + "/readyz", timeout=10).status_code] += 1
            time.sleep(0.005)

    def send(part: list[Batch]) -> None:
        with centre.client(ingest) as http:
            for batch in part:
                answers[batch.key] = http.post(
                    "/api/v1/events",
                    content=batch.body,
                    headers={**NDJSON, "Idempotency-Key": batch.key},
                )

    watcher = threading.Thread(target=watch_ready, daemon=True)
    watcher.start()
    senders = [threading.Thread(target=send, args=(batches[i::3],)) for i in range(3)]
    for thread in senders:
        thread.start()
    for thread in senders:
        thread.join(60)
    stop.set()
    watcher.join(10)
    codes = Counter(a.status_code for a in answers.values())
    assert set(codes) <= {202, 503}, codes
    assert codes[202] >= 1 and codes[503] >= 1, codes
    refused = [a for a in answers.values() if a.status_code == 503]
    for answer in refused:
        assert int(answer.headers["Retry-After"]) >= 1
        assert answer.json()["error"] == "backpressure", answer.text
    assert ready_codes[503] >= 1, ready_codes
    accepted = [b for b in batches if answers[b.key].status_code == 202]
    assert_exactly_once(centre, analyst, accepted)
    assert httpx.get(centre.url + "/readyz").status_code == 200
    refused_metric = metric(centre, 'vedette_ingest_refused_total{reason="backpressure"}')
    assert float(refused_metric.split()[-1]) == codes[503], refused_metric


@pytest.mark.contract
def test_unit_over_its_quota_gets_429_and_nothing_of_the_refused_batch_is_stored(
    tmp_path: Path, centres: list[Centre]
) -> None:
    batches = make_batches(windows_records()[:1500], 500, "quota")
    centre = new_centre(tmp_path / "home", centres, ["--unit-quota", "10"])
    ingest = add_token(centre.home, "branch-a", "ingest")
    other = add_token(centre.home, "hq", "ingest")
    analyst = add_token(centre.home, "hq", "analyst")
    centre.start()
    with centre.client(ingest) as http:
        post = [
            http.post(
                "/api/v1/events", content=b.body, headers={**NDJSON, "Idempotency-Key": b.key}
            )
            for b in batches
        ]
    # A full bucket lets one batch bigger than the bucket through; the next ones wait.
    assert post[0].status_code == 202, post[0].text
    for answer in post[1:]:
        assert answer.status_code == 429, answer.text
        assert answer.json()["error"] == "quota_exceeded"
        assert int(answer.headers["Retry-After"]) > 1
    # Another unit is not slowed by it.
    other_batch = make_batches(windows_records()[:50], 50, "quota-hq")[0]
    with centre.client(other) as http:
        answer = http.post("/api/v1/events", content=other_batch.body, headers=NDJSON)
    assert answer.status_code == 202, answer.text
    assert_exactly_once(centre, analyst, [batches[0], other_batch])


def _wait_until(condition: Any, timeout: float, interval: float = 0.05) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if condition():
            return True
        time.sleep(interval)
    return False


@pytest.mark.embedded_only(
    "the SQLite spool file deleted between runs; scale-out has no spool file"
)
def test_a_spool_made_anew_numbers_after_the_committed_positions_and_loses_nothing(
    tmp_path: Path, centres: list[Centre]
) -> None:
    # The spool's file is lost (a disk replaced, an operator clearing a damaged spool) after
    # everything in it was processed: batches acknowledged afterwards must still be stored,
    # not skipped as "already done" because their new numbers restart at 1.
    batches = make_batches(windows_records()[:600], 100, "anew")
    centre = new_centre(tmp_path / "home", centres)
    ingest = add_token(centre.home, "branch-a", "ingest")
    analyst = add_token(centre.home, "hq", "analyst")
    centre.start()
    Sender(centre, ingest, batches[:3], threads=1, deadline=20).start().join()
    assert_exactly_once(centre, analyst, batches[:3])
    assert centre.stop() == 0
    shutil.rmtree(centre.home / "spool")
    centre.start()
    Sender(centre, ingest, batches[3:], threads=1, deadline=20).start().join()
    assert_exactly_once(centre, analyst, batches)
