"""SqliteSpool: group commit, idempotency, back-pressure, counters, corruption, full disk."""

from __future__ import annotations

import os
import sqlite3
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from vedette.store.spool import (
    AppendResult,
    Spool,
    SpoolFull,
    SpoolUnavailable,
    SqliteSpool,
)


@pytest.fixture
def spool(tmp_path: Path) -> Iterator[SqliteSpool]:
    s = SqliteSpool(tmp_path / "spool.db")
    yield s
    s.close()


def _records(prefix: str, n: int) -> list[bytes]:
    return [f'{{"p": "{prefix}", "i": {i}}}'.encode() for i in range(n)]


def test_sqlite_spool_is_a_spool(spool: SqliteSpool) -> None:
    s: Spool = spool
    assert s.last_seq() == 0


def test_append_read_release_roundtrip(spool: SqliteSpool) -> None:
    a = spool.append("unit-a", "json", _records("a", 3))
    b = spool.append("unit-b", "syslog", [b"<13>Jan  1 00:00:00 host app: hello"])
    assert a == AppendResult(1, 3, False)
    assert b == AppendResult(2, 1, False)
    assert spool.pending_events() == 4 and spool.pending_batches() == 2
    batches = spool.read(0)
    assert [(x.seq, x.unit, x.kind, x.records) for x in batches] == [
        (1, "unit-a", "json", _records("a", 3)),
        (2, "unit-b", "syslog", [b"<13>Jan  1 00:00:00 host app: hello"]),
    ]
    assert all(x.corrupt is None for x in batches)
    assert [x.seq for x in spool.read(1)] == [2]
    assert [x.seq for x in spool.read(0, limit=1)] == [1]
    spool.release(1)
    assert spool.pending_events() == 1 and spool.pending_batches() == 1
    assert [x.seq for x in spool.read(0)] == [2]
    spool.release(2)
    assert spool.read(0) == [] and spool.pending_events() == 0
    # sequence numbers are never reused, even when every batch was released
    assert spool.append("unit-a", "json", [b"x"]).seq == 3


def test_sequence_survives_reopen_after_full_release(tmp_path: Path) -> None:
    with SqliteSpool(tmp_path / "s.db") as s:
        s.append("u", "json", [b"1"])
        s.append("u", "json", [b"2"])
        s.release(2)
    with SqliteSpool(tmp_path / "s.db") as s:
        assert s.last_seq() == 2 and s.pending_events() == 0
        assert s.append("u", "json", [b"3"]).seq == 3


def test_records_must_be_single_lines(spool: SqliteSpool) -> None:
    with pytest.raises(ValueError, match="record 1"):
        spool.append("u", "json", [b"ok", b"two\nlines"])
    with pytest.raises(ValueError):
        spool.append("u", "json", [])
    assert spool.last_seq() == 0


def test_idempotency_key_returns_original(spool: SqliteSpool) -> None:
    first = spool.append("u", "json", _records("x", 5), idempotency_key="k1")
    again = spool.append("u", "json", _records("y", 2), idempotency_key="k1")
    assert again == AppendResult(first.seq, 5, True)
    # the same key from another unit is another batch
    other = spool.append("v", "json", _records("z", 2), idempotency_key="k1")
    assert not other.duplicate and other.seq != first.seq
    assert spool.pending_batches() == 2
    # still a duplicate after the batch was consumed and released
    spool.release(other.seq)
    assert spool.append("u", "json", [b"q"], idempotency_key="k1").duplicate


def test_idempotency_keys_expire_after_ttl(tmp_path: Path) -> None:
    with SqliteSpool(tmp_path / "s.db", idempotency_ttl=0.0) as s:
        first = s.append("u", "json", [b"a"], idempotency_key="k")
        time.sleep(0.01)
        s.release(first.seq)
        again = s.append("u", "json", [b"a"], idempotency_key="k")
        assert not again.duplicate and again.seq > first.seq


def test_concurrent_appends_share_commits_and_same_key_is_stored_once(
    spool: SqliteSpool,
) -> None:
    threads = 8
    per_thread = 25
    barrier = threading.Barrier(threads)
    results: dict[int, list[AppendResult]] = {}

    def worker(t: int) -> None:
        barrier.wait()
        out = []
        for i in range(per_thread):
            # every thread also sends key "shared-i": exactly one of them stores it
            out.append(spool.append("u", "json", [f"{t}-{i}".encode()], idempotency_key=f"{t}-{i}"))
            out.append(spool.append("u", "json", [f"s-{i}".encode()], idempotency_key=f"s-{i}"))
        results[t] = out

    pool = [threading.Thread(target=worker, args=(t,)) for t in range(threads)]
    for th in pool:
        th.start()
    for th in pool:
        th.join()
    everything = [r for out in results.values() for r in out]
    stored = [r for r in everything if not r.duplicate]
    assert len(stored) == threads * per_thread + per_thread
    assert len({r.seq for r in stored}) == len(stored)
    shared = {}
    for out in results.values():
        for r in out[1::2]:
            shared.setdefault(r.seq, []).append(r.duplicate)
    assert len(shared) == per_thread
    assert all(sorted(flags) == [False] + [True] * (threads - 1) for flags in shared.values())
    batches = spool.read(0, limit=10_000)
    assert len(batches) == len(stored) == spool.pending_batches()
    payloads = [b for x in batches for b in x.records]
    assert len(payloads) == len(set(payloads))


def test_received_counts_persist(tmp_path: Path) -> None:
    with SqliteSpool(tmp_path / "s.db") as s:
        before = time.time()
        s.append("a", "json", _records("a", 3))
        s.append("a", "json", _records("a", 2))
        s.append("b", "json", _records("b", 1))
        s.append("a", "json", [b"dup"], idempotency_key="k")
        s.append("a", "json", [b"dup"], idempotency_key="k")
        s.release(s.last_seq())
    with SqliteSpool(tmp_path / "s.db") as s:
        counts = s.received_counts()
    assert {u: c for u, (c, _) in counts.items()} == {"a": 6, "b": 1}
    assert all(at >= before for _, at in counts.values())


def test_wait_wakes_on_commit(spool: SqliteSpool) -> None:
    assert not spool.wait(0, 0.05)
    woke: list[bool] = []
    th = threading.Thread(target=lambda: woke.append(spool.wait(0, 10.0)))
    th.start()
    spool.append("u", "json", [b"x"])
    th.join()
    assert woke == [True]
    assert spool.wait(0, 0.0)
    assert not spool.wait(1, 0.01)


def test_high_water_answers_spool_full_until_released(tmp_path: Path) -> None:
    with SqliteSpool(tmp_path / "s.db", high_water_events=10) as s:
        s.append("u", "json", _records("a", 6), idempotency_key="a")
        s.append("u", "json", _records("b", 6))
        with pytest.raises(SpoolFull) as info:
            s.append("u", "json", [b"c"])
        assert 1.0 <= info.value.retry_after <= 30.0
        # a duplicate is still answered as a duplicate, not refused
        assert s.append("u", "json", [b"a"], idempotency_key="a").duplicate
        assert s.pending_events() == 12
        s.release(1)
        assert s.append("u", "json", [b"c"]).seq == 3


def test_retry_after_follows_release_rate(tmp_path: Path) -> None:
    with SqliteSpool(tmp_path / "s.db", high_water_events=120) as s:
        for _ in range(3):
            s.append("u", "json", _records("a", 50))
        s.release(1)  # 50 events released within a second: about 50 events/s
        s.append("u", "json", _records("b", 50))
        with pytest.raises(SpoolFull) as info:
            s.append("u", "json", _records("c", 10))
        # 40 events over the mark at >= 50 events/s: well under the 30 s ceiling
        assert 1.0 <= info.value.retry_after < 30.0


def _corrupt(path: Path, seq: int, sql: str, *args: object) -> None:
    con = sqlite3.connect(path)
    con.execute(sql, (*args, seq))
    con.commit()
    con.close()


def test_corrupt_batches_are_reported_not_raised(tmp_path: Path) -> None:
    path = tmp_path / "s.db"
    with SqliteSpool(path) as s:
        for i in range(4):
            s.append("u", "json", _records(str(i), 2))
    _corrupt(path, 2, "UPDATE batches SET crc = crc + 1 WHERE seq = ?")
    _corrupt(path, 3, "UPDATE batches SET blob = ? WHERE seq = ?", b"not zlib")
    with SqliteSpool(path) as s:
        batches = s.read(0)
        again = s.read(0)
        assert [(b.seq, b.corrupt is None, len(b.records)) for b in batches] == [
            (1, True, 2),
            (2, False, 0),
            (3, False, 0),
            (4, True, 2),
        ]
        assert batches[1].corrupt == "crc mismatch"
        assert batches[2].corrupt is not None and batches[2].corrupt.startswith("zlib")
        assert [b.corrupt for b in again] == [b.corrupt for b in batches]
        assert s.corrupt_batches == 2


def test_full_disk_is_unavailable_and_recovers(tmp_path: Path) -> None:
    path = tmp_path / "s.db"
    acked: dict[int, list[bytes]] = {}
    with SqliteSpool(path, max_pages=64) as s:
        with pytest.raises(SpoolUnavailable, match="FULL") as info:
            for i in range(1000):
                # random bytes do not compress: the database fills within a few batches
                records = [os.urandom(600).hex().encode() for _ in range(4)]
                acked[s.append("u", "json", records, idempotency_key=f"k{i}").seq] = records
        assert "full" in str(info.value)
        assert acked
        # still unavailable while the disk is full, and nothing of those appends is stored
        with pytest.raises(SpoolUnavailable):
            s.append("u", "json", [os.urandom(3000).hex().encode()])
        assert s.pending_batches() == len(acked)
    with SqliteSpool(path) as s:
        stored = {b.seq: b.records for b in s.read(0, limit=10_000)}
        assert stored == acked
        assert s.append("u", "json", [b"after"]).seq > max(acked)
        for i in range(len(acked)):
            assert s.append("u", "json", [b"again"], idempotency_key=f"k{i}").duplicate
        # the failed key was never acknowledged and is free again
        assert not s.append("u", "json", [b"x"], idempotency_key=f"k{len(acked)}").duplicate


def test_closed_spool_refuses(tmp_path: Path) -> None:
    s = SqliteSpool(tmp_path / "s.db")
    s.close()
    s.close()
    with pytest.raises(SpoolUnavailable, match="closed"):
        s.append("u", "json", [b"x"])


def test_unopenable_path_is_unavailable(tmp_path: Path) -> None:
    (tmp_path / "dir.db").mkdir()
    with pytest.raises(SpoolUnavailable):
        SqliteSpool(tmp_path / "dir.db")
