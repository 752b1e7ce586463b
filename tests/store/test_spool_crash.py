"""SqliteSpool across crashes: a torn WAL tail, and a real process killed with SIGKILL."""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import orjson

from vedette.store.spool import SqliteSpool

# WAL frame = 24-byte frame header + one page; the file starts with a 32-byte header.
_WAL_HEADER = 32
_FRAME_HEADER = 24


def _snapshot(path: Path, dest: Path) -> Path:
    """Copy the database and its WAL as a crash would leave them (no checkpoint)."""
    dest.mkdir()
    for suffix in ("", "-wal"):
        shutil.copyfile(f"{path}{suffix}", f"{dest / path.name}{suffix}")
    return dest / path.name


def _spool_with_batches(tmp_path: Path, n: int) -> tuple[SqliteSpool, Path, list[list[bytes]]]:
    path = tmp_path / "live" / "spool.db"
    spool = SqliteSpool(path)
    sent = []
    for i in range(n):
        records = [f'{{"batch": {i}, "i": {j}}}'.encode() for j in range(3)]
        spool.append("u", "json", records, idempotency_key=f"k{i}")
        sent.append(records)
    return spool, path, sent


def test_torn_wal_tail_is_cut_by_sqlite_recovery(tmp_path: Path) -> None:
    spool, path, sent = _spool_with_batches(tmp_path, 6)
    copy = _snapshot(path, tmp_path / "crashed")
    spool.close()
    wal = Path(f"{copy}-wal")
    page_size = int.from_bytes(wal.read_bytes()[8:12], "big")  # from the WAL header
    size = wal.stat().st_size
    assert size > _WAL_HEADER and (size - _WAL_HEADER) % (_FRAME_HEADER + page_size) == 0
    # cut the last frame in half (its transaction's commit frame), then add garbage
    with wal.open("r+b") as f:
        f.truncate(size - page_size // 2)
        f.seek(0, os.SEEK_END)
        f.write(os.urandom(10_000))
    with SqliteSpool(copy) as reopened:
        batches = reopened.read(0)
        # every transaction with an intact commit frame is there; the torn one is gone whole
        assert [b.records for b in batches] == sent[:-1]
        assert all(b.corrupt is None for b in batches)
        assert reopened.pending_events() == 3 * (len(sent) - 1)
        assert reopened.append("u", "json", [b"x"], idempotency_key="k0").duplicate
        assert not reopened.append("u", "json", [b"x"], idempotency_key="k5").duplicate
        after = reopened.append("u", "json", [b"after"])
        assert after.seq == reopened.last_seq() and not after.duplicate


def test_garbage_after_the_last_frame_loses_nothing(tmp_path: Path) -> None:
    spool, path, sent = _spool_with_batches(tmp_path, 4)
    copy = _snapshot(path, tmp_path / "crashed")
    spool.close()
    with open(f"{copy}-wal", "ab") as f:
        f.write(os.urandom(5000))
    with SqliteSpool(copy) as reopened:
        assert [b.records for b in reopened.read(0)] == sent


_CHILD = textwrap.dedent(
    """
    import sys, threading
    from pathlib import Path
    from vedette.store.spool import SqliteSpool

    spool = SqliteSpool(Path(sys.argv[1]))
    lock = threading.Lock()

    def worker(t):
        for i in range(1_000_000):
            key = f"{t}-{i}"
            records = [f'{{"key": "{key}", "j": {j}}}'.encode() for j in range(1 + i % 5)]
            result = spool.append("unit-%d" % (t % 2), "json", records, idempotency_key=key)
            with lock:
                sys.stdout.write(f"{result.seq} {key} {result.count}\\n")
                sys.stdout.flush()

    for t in range(4):
        threading.Thread(target=worker, args=(t,), daemon=True).start()
    threading.Event().wait()
    """
)


def test_sigkill_mid_ingest_loses_nothing_acknowledged_and_stores_once(tmp_path: Path) -> None:
    path = tmp_path / "spool.db"
    child = subprocess.Popen(
        [sys.executable, "-c", _CHILD, str(path)],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
    )
    assert child.stdout is not None
    out: list[bytes] = []
    deadline = time.monotonic() + 60
    while len(out) < 300 and time.monotonic() < deadline:
        line = child.stdout.readline()
        if not line:
            break
        out.append(line)
    child.send_signal(signal.SIGKILL)
    rest, err = child.communicate(timeout=30)
    assert child.returncode == -signal.SIGKILL, err.decode()
    # every line the child finished printing is an acknowledgement; a torn last line is not
    text = b"".join(out) + rest
    complete = text[: text.rfind(b"\n") + 1].decode().splitlines()
    assert len(complete) >= 300, err.decode()
    acked: dict[str, tuple[int, int]] = {}
    for line in complete:
        seq, key, count = line.split()
        acked[key] = (int(seq), int(count))
    with SqliteSpool(path) as spool:
        stored: dict[str, list[tuple[int, int]]] = {}
        for batch in spool.read(0, limit=1_000_000):
            assert batch.corrupt is None
            keys = {orjson.loads(r)["key"] for r in batch.records}
            assert len(keys) == 1
            stored.setdefault(keys.pop(), []).append((batch.seq, len(batch.records)))
        assert all(len(seqs) == 1 for seqs in stored.values())
        for key, (seq, count) in acked.items():
            assert stored[key] == [(seq, count)]
            unit = f"unit-{int(key.split('-')[0]) % 2}"
            again = spool.append(unit, "json", [b"retry"], idempotency_key=key)
            assert (again.seq, again.count, again.duplicate) == (seq, count, True)
