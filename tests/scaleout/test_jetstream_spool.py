"""The JetStream spool alone: durable append, dedup, partitions, read by position, release."""

from __future__ import annotations

import os
import subprocess
import sys
import threading
import time
from collections.abc import Iterator

import pytest

from vedette.store.jetstream import JetStreamConfig, JetStreamSpool, partition_of
from vedette.store.spool import SpoolFull, SpoolUnavailable


@pytest.fixture
def spool(nats_server: str, stream_name: str) -> Iterator[JetStreamSpool]:
    config = JetStreamConfig(
        url=nats_server, stream=stream_name, subject_prefix=stream_name.lower(), partitions=4
    )
    opened = JetStreamSpool(config)
    try:
        yield opened
    finally:
        opened.close()


def _records(n: int, tag: str) -> list[bytes]:
    return [f'{{"n": {i}, "tag": "{tag}"}}'.encode() for i in range(n)]


def test_partition_is_stable_and_spreads_units() -> None:
    units = [f"unit-{i}" for i in range(200)]
    first = [partition_of(u, 8) for u in units]
    assert first == [partition_of(u, 8) for u in units]
    assert set(first) == set(range(8))
    # The same in another process with another hash seed (not Python's salted hash()).
    code = (
        "from vedette.store.jetstream import partition_of as p\n"
        "print([p(f'unit-{i}', 8) for i in range(200)])"
    )
    done = subprocess.run(
        [sys.executable, "-c", code],
        env={**os.environ, "PYTHONHASHSEED": "12345"},
        capture_output=True,
        text=True,
        check=True,
    )
    assert done.stdout.strip() == str(first)


def test_append_reads_back_in_its_partition_once_and_release_purges(
    spool: JetStreamSpool,
) -> None:
    units = ["north", "south", "east", "west", "centre"]
    sent: dict[str, list[bytes]] = {}
    for round_ in range(3):
        for unit in units:
            records = _records(5, f"{unit}-{round_}")
            result = spool.append(unit, "json", records)
            assert not result.duplicate and result.count == 5
            sent.setdefault(unit, []).extend(records)
    got: dict[str, list[bytes]] = {}
    for p in range(4):
        view = spool.partition(p)
        batches = view.read(0, limit=100)
        seqs = [b.seq for b in batches]
        assert seqs == sorted(seqs)
        for batch in batches:
            assert batch.corrupt is None and batch.kind == "json"
            assert partition_of(batch.unit, 4) == p
            got.setdefault(batch.unit, []).extend(batch.records)
        if batches:
            # Reading from a position resumes after it: nothing before, nothing twice.
            middle = batches[len(batches) // 2].seq
            assert [b.seq for b in view.read(middle, limit=100)] == [s for s in seqs if s > middle]
            view.release(middle)
            assert [b.seq for b in view.read(0, limit=100)] == [s for s in seqs if s > middle]
            assert view.pending_batches() == len([s for s in seqs if s > middle])
    assert got == sent


def test_retry_with_the_same_key_is_one_message(spool: JetStreamSpool) -> None:
    first = spool.append("north", "json", _records(3, "a"), idempotency_key="k-1")
    again = spool.append("north", "json", _records(3, "a"), idempotency_key="k-1")
    other_unit = spool.append("south", "json", _records(3, "a"), idempotency_key="k-1")
    assert not first.duplicate and again.duplicate and again.seq == first.seq
    assert not other_unit.duplicate and other_unit.seq != first.seq
    view = spool.partition(partition_of("north", 4))
    assert [b.seq for b in view.read(0) if b.unit == "north"] == [first.seq]


class _Ledger:
    def __init__(self) -> None:
        self.rows: dict[tuple[str, str], tuple[int, int]] = {}

    def lookup(self, unit: str, key: str) -> tuple[int, int] | None:
        return self.rows.get((unit, key))

    def record(self, unit: str, key: str, seq: int, count: int) -> None:
        self.rows.setdefault((unit, key), (seq, count))


def test_ledger_answers_keys_past_the_duplicate_window(nats_server: str, stream_name: str) -> None:
    ledger = _Ledger()
    config = JetStreamConfig(
        url=nats_server, stream=stream_name, subject_prefix=stream_name.lower(), partitions=2
    )
    spool = JetStreamSpool(config, ledger=ledger)
    try:
        first = spool.append("north", "json", _records(2, "x"), idempotency_key="late")
        assert ledger.rows[("north", "late")] == (first.seq, 2)
        # The stream forgot it (as after the duplicate window); the ledger has not.
        spool.partition(partition_of("north", 2)).release(first.seq)
        again = spool.append("north", "json", _records(2, "x"), idempotency_key="late")
        assert again.duplicate and again.seq == first.seq
    finally:
        spool.close()


def test_concurrent_appends_from_threads_are_all_acknowledged(spool: JetStreamSpool) -> None:
    seqs: list[int] = []
    lock = threading.Lock()

    def send(i: int) -> None:
        result = spool.append(f"u{i % 7}", "json", _records(4, str(i)), idempotency_key=str(i))
        with lock:
            seqs.append(result.seq)

    threads = [threading.Thread(target=send, args=(i,)) for i in range(40)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert len(set(seqs)) == 40
    assert sum(len(spool.partition(p).read(0, 100)) for p in range(4)) == 40


def test_a_full_stream_refuses_with_spool_full(nats_server: str, stream_name: str) -> None:
    config = JetStreamConfig(
        url=nats_server,
        stream=stream_name,
        subject_prefix=stream_name.lower(),
        partitions=1,
        max_bytes=4096,
    )
    spool = JetStreamSpool(config)
    try:
        with pytest.raises(SpoolFull):
            for i in range(200):
                spool.append("north", "json", _records(20, f"fill-{i}"))
    finally:
        spool.close()


def test_partition_count_must_match_the_stream(nats_server: str, stream_name: str) -> None:
    config = JetStreamConfig(
        url=nats_server, stream=stream_name, subject_prefix=stream_name.lower(), partitions=2
    )
    JetStreamSpool(config).close()
    with pytest.raises(Exception, match="partitions"):
        JetStreamSpool(
            JetStreamConfig(
                url=nats_server,
                stream=stream_name,
                subject_prefix=stream_name.lower(),
                partitions=3,
            )
        )


def test_nats_down_is_spool_unavailable_and_up_again_works(own_nats) -> None:  # type: ignore[no-untyped-def]
    spool = JetStreamSpool(JetStreamConfig(url=own_nats.url, partitions=2, request_timeout=2.0))
    try:
        before = spool.append("north", "json", _records(2, "before"))
        own_nats.kill()
        with pytest.raises(SpoolUnavailable):
            spool.append("north", "json", _records(2, "during"))
        own_nats.start()
        after = None
        for _ in range(100):
            try:
                after = spool.append("north", "json", _records(2, "after"))
                break
            except SpoolUnavailable:
                time.sleep(0.1)
        assert after is not None and after.seq > before.seq
        # The batch acknowledged before the kill survived it (sync_interval: always).
        view = spool.partition(partition_of("north", 2))
        tags = [b.records[0] for b in view.read(0, 100)]
        assert tags[0] == _records(2, "before")[0] and tags[-1] == _records(2, "after")[0]
    finally:
        spool.close()
