"""The durable ingest spool: batches are on disk (fsync'd) before anyone is told they are accepted.

The embedded default is :class:`SqliteSpool`, one SQLite database in WAL mode with
``synchronous=FULL``. Each accepted batch is one row: its records joined by ``b"\\n"``,
zlib-compressed, with the CRC-32 of the uncompressed bytes and the event count beside it. A
commit costs an fsync (about 1.6 ms here), so appends are *group-committed*: one writer thread
drains a queue and commits every pending append in one transaction, then wakes each caller;
concurrent callers share one fsync.

Crash safety (``kill -9`` or power loss at any instant):

- an append returns only after its transaction's commit frame is fsync'd in the WAL, so nothing
  acknowledged is lost; a transaction whose commit frame did not reach the disk was never
  acknowledged, and its rows vanish as a whole;
- a torn WAL tail (a frame half written, or garbage after the last frame) is SQLite's own
  business: every WAL frame carries a running checksum and the header's salt, and recovery on
  open replays frames only up to the last valid commit frame, dropping the rest. The spool
  needs no checksum of its own for that (tested in ``tests/store/test_spool_crash.py``); the
  per-batch CRC-32 guards the blob against bit rot and bugs instead, and a bad one is reported
  as a corrupt batch, never an exception that wedges the consumer;
- an idempotency key is stored in the same transaction as its batch, so a client that retries
  after a crash gets the original sequence number back with ``duplicate=True`` and the batch is
  stored once.

Sequence numbers come from ``AUTOINCREMENT`` and are never reused, even after every batch was
released, so a consumer's committed position stays meaningful across restarts.
"""

from __future__ import annotations

import os
import queue
import sqlite3
import threading
import time
import zlib
from collections import deque
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Protocol

from vedette.errors import VedetteError

__all__ = [
    "AppendResult",
    "Spool",
    "SpoolBatch",
    "SpoolFull",
    "SpoolUnavailable",
    "SqliteSpool",
]


class SpoolFull(VedetteError):
    """The spool is past its high-water mark; retry after ``retry_after`` seconds."""

    def __init__(self, pending: int, high_water: int, retry_after: float) -> None:
        self.pending = pending
        self.high_water = high_water
        self.retry_after = retry_after
        super().__init__(
            f"spool full: {pending} events pending (high water {high_water}); "
            f"retry after {retry_after:.0f} s"
        )


class SpoolUnavailable(VedetteError):
    """The spool cannot store anything (disk full, I/O error); the message names the cause."""


@dataclass(slots=True)
class AppendResult:
    """Where an appended batch went: its sequence number and event count.

    ``duplicate`` is True when the idempotency key was seen before; ``seq`` and ``count`` are
    then the original batch's and nothing new was stored.
    """

    seq: int
    count: int
    duplicate: bool


@dataclass(slots=True)
class SpoolBatch:
    """One stored batch as read back; ``corrupt`` names why it could not be (records empty)."""

    seq: int
    unit: str
    kind: str
    received_at: float
    records: list[bytes]
    corrupt: str | None = None


class Spool(Protocol):
    """What the centre needs from a spool (SQLite here; a JetStream adapter later)."""

    def append(
        self,
        unit: str,
        kind: str,
        records: Sequence[bytes],
        *,
        idempotency_key: str | None = None,
    ) -> AppendResult:
        """Store one batch durably and return its position (blocks until fsync'd)."""
        ...

    def received_counts(self) -> dict[str, tuple[int, float]]:
        """Events received per unit and the time the last batch arrived."""
        ...

    def read(self, after_seq: int, limit: int = 64) -> list[SpoolBatch]:
        """Up to ``limit`` batches with seq > ``after_seq``, in seq order."""
        ...

    def wait(self, after_seq: int, timeout: float) -> bool:
        """Block until a batch with seq > ``after_seq`` exists; False on timeout."""
        ...

    def release(self, upto_seq: int) -> None:
        """Forget batches with seq <= ``upto_seq`` (consumed and committed downstream)."""
        ...

    def pending_events(self) -> int:
        """Events stored and not yet released."""
        ...

    def pending_batches(self) -> int:
        """Batches stored and not yet released."""
        ...

    def last_seq(self) -> int:
        """Highest sequence number ever assigned (0 when none)."""
        ...

    def close(self) -> None:
        """Stop the writer and close the store."""
        ...


_SCHEMA = """
CREATE TABLE IF NOT EXISTS batches (
    seq INTEGER PRIMARY KEY AUTOINCREMENT,
    unit TEXT NOT NULL,
    kind TEXT NOT NULL,
    received_at REAL NOT NULL,
    count INTEGER NOT NULL,
    crc INTEGER NOT NULL,
    blob BLOB NOT NULL
);
CREATE TABLE IF NOT EXISTS idempotency (
    unit TEXT NOT NULL,
    key TEXT NOT NULL,
    seq INTEGER NOT NULL,
    count INTEGER NOT NULL,
    created_at REAL NOT NULL,
    PRIMARY KEY (unit, key)
) WITHOUT ROWID;
CREATE INDEX IF NOT EXISTS idempotency_created ON idempotency (created_at);
CREATE TABLE IF NOT EXISTS received (
    unit TEXT PRIMARY KEY,
    count INTEGER NOT NULL,
    last_received_at REAL NOT NULL
) WITHOUT ROWID;
"""

# Release rates older than this do not predict when room will come back.
_RATE_WINDOW_S = 60.0
_RETRY_MIN_S = 1.0
_RETRY_MAX_S = 30.0
# An upper bound on one group transaction keeps a burst from holding every caller for long.
_MAX_GROUP = 1024


@dataclass(slots=True, eq=False)
class _Append:
    unit: str
    kind: str
    count: int
    crc: int
    blob: bytes
    key: str | None
    done: threading.Event = field(default_factory=threading.Event)
    result: AppendResult | None = None
    error: BaseException | None = None


@dataclass(slots=True, eq=False)
class _Release:
    upto_seq: int
    done: threading.Event = field(default_factory=threading.Event)
    error: BaseException | None = None


_Op = _Append | _Release


def _unavailable(exc: BaseException) -> SpoolUnavailable:
    """Translate a sqlite3 (or OS) error into SpoolUnavailable naming the cause."""
    name = getattr(exc, "sqlite_errorname", None) or type(exc).__name__
    return SpoolUnavailable(f"spool unavailable: {name}: {exc}")


def _fsync_dir(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _connect(path: Path, max_pages: int | None) -> sqlite3.Connection:
    con = sqlite3.connect(path, isolation_level=None, check_same_thread=False, timeout=30.0)
    con.execute("PRAGMA journal_mode=WAL")
    con.execute("PRAGMA synchronous=FULL")
    if max_pages is not None:
        con.execute(f"PRAGMA max_page_count={int(max_pages)}")
    return con


class SqliteSpool:
    """The embedded spool: SQLite WAL, ``synchronous=FULL``, group commit (see module doc).

    ``max_pages`` is for tests: it caps the database size (``PRAGMA max_page_count``) so a
    full disk can be simulated. ``numbered_after`` is the highest position a consumer has
    committed: a spool made anew (its file lost or removed) numbers its batches after it, or
    the consumer would skip them as already processed.
    """

    def __init__(
        self,
        path: Path,
        *,
        high_water_events: int = 1_000_000,
        idempotency_ttl: float = 7 * 86400,
        max_pages: int | None = None,
        numbered_after: int = 0,
    ) -> None:
        self.path = Path(path)
        self.high_water_events = high_water_events
        self.idempotency_ttl = idempotency_ttl
        self.corrupt_batches = 0
        self._corrupt_seen: set[int] = set()
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            self._wcon = _connect(self.path, max_pages)
            self._wcon.executescript(_SCHEMA)
            self._rcon = _connect(self.path, None)
            events, batches = self._rcon.execute(
                "SELECT COALESCE(SUM(count), 0), COUNT(*) FROM batches"
            ).fetchone()
            row = self._rcon.execute(
                "SELECT seq FROM sqlite_sequence WHERE name = 'batches'"
            ).fetchone()
            if numbered_after > (int(row[0]) if row else 0):
                self._number_after(numbered_after, exists=row is not None)
                row = (numbered_after,)
            # The directory entries of the database and its WAL must survive power loss too.
            _fsync_dir(self.path.parent)
        except (sqlite3.Error, OSError) as exc:
            raise _unavailable(exc) from exc
        self._pending_events = int(events)
        self._pending_batches = int(batches)
        self._last_seq = int(row[0]) if row else 0
        self._rlock = threading.Lock()
        self._cond = threading.Condition()
        self._released: deque[tuple[float, int]] = deque()
        self._queue: queue.SimpleQueue[_Op | None] = queue.SimpleQueue()
        self._dir_synced = False
        self._closed = False
        self._writer = threading.Thread(target=self._run, name="spool-writer", daemon=True)
        self._writer.start()

    # -- public API ---------------------------------------------------------------------------

    def append(
        self,
        unit: str,
        kind: str,
        records: Sequence[bytes],
        *,
        idempotency_key: str | None = None,
    ) -> AppendResult:
        """Store one batch durably; see :class:`Spool`. Raises SpoolFull, SpoolUnavailable."""
        if not records:
            raise ValueError("an append needs at least one record")
        for i, record in enumerate(records):
            if b"\n" in record:
                raise ValueError(f"record {i} contains a newline; records are single lines")
        data = b"\n".join(records)
        op = _Append(
            unit=unit,
            kind=kind,
            count=len(records),
            crc=zlib.crc32(data),
            blob=zlib.compress(data, 1),
            key=idempotency_key,
        )
        self._submit(op)
        if op.error is not None:
            raise op.error
        assert op.result is not None
        return op.result

    def received_counts(self) -> dict[str, tuple[int, float]]:
        """Events received per unit and when the last batch arrived (persisted)."""
        with self._rlock:
            rows = self._rcon.execute(
                "SELECT unit, count, last_received_at FROM received"
            ).fetchall()
        return {unit: (int(count), float(at)) for unit, count, at in rows}

    def read(self, after_seq: int, limit: int = 64) -> list[SpoolBatch]:
        """Batches after ``after_seq`` in seq order; a bad CRC or blob gives a corrupt batch."""
        try:
            with self._rlock:
                rows = self._rcon.execute(
                    "SELECT seq, unit, kind, received_at, count, crc, blob FROM batches "
                    "WHERE seq > ? ORDER BY seq LIMIT ?",
                    (after_seq, limit),
                ).fetchall()
        except sqlite3.Error as exc:
            raise _unavailable(exc) from exc
        return [self._decode(*row) for row in rows]

    def wait(self, after_seq: int, timeout: float) -> bool:
        """Block until a batch with seq > ``after_seq`` was committed, or ``timeout`` passes."""
        with self._cond:
            return self._cond.wait_for(lambda: self._last_seq > after_seq, timeout)

    def release(self, upto_seq: int) -> None:
        """Delete batches <= ``upto_seq`` and idempotency keys older than the TTL."""
        op = _Release(upto_seq)
        self._submit(op)
        if op.error is not None:
            raise op.error

    def pending_events(self) -> int:
        """Events stored and not yet released."""
        return int(self._pending_events)

    def pending_batches(self) -> int:
        """Batches stored and not yet released."""
        return int(self._pending_batches)

    def last_seq(self) -> int:
        """Highest sequence number ever assigned (0 when none)."""
        return self._last_seq

    def close(self) -> None:
        """Stop the writer after the queued work and close both connections."""
        if self._closed:
            return
        self._closed = True
        self._queue.put(None)
        self._writer.join()
        with self._rlock:
            self._rcon.close()
        self._wcon.close()

    def __enter__(self) -> SqliteSpool:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # -- internals ----------------------------------------------------------------------------

    def _number_after(self, seq: int, *, exists: bool) -> None:
        """Make AUTOINCREMENT hand out numbers above ``seq`` (before the writer starts)."""
        con = self._wcon
        con.execute("BEGIN IMMEDIATE")
        if exists:
            con.execute("UPDATE sqlite_sequence SET seq = ? WHERE name = 'batches'", (seq,))
        else:
            con.execute("INSERT INTO sqlite_sequence (name, seq) VALUES ('batches', ?)", (seq,))
        con.execute("COMMIT")

    def _submit(self, op: _Op) -> None:
        if self._closed:
            raise SpoolUnavailable("spool unavailable: closed")
        self._queue.put(op)
        op.done.wait()

    def _decode(
        self, seq: int, unit: str, kind: str, at: float, count: int, crc: int, blob: bytes
    ) -> SpoolBatch:
        reason: str | None = None
        try:
            data = zlib.decompress(blob)
        except zlib.error as exc:
            reason = f"zlib: {exc}"
        else:
            if zlib.crc32(data) != crc:
                reason = "crc mismatch"
            else:
                records = data.split(b"\n")
                if len(records) != count:
                    reason = f"count mismatch: {len(records)} records, {count} expected"
                else:
                    return SpoolBatch(seq, unit, kind, at, records)
        if seq not in self._corrupt_seen:
            self._corrupt_seen.add(seq)
            self.corrupt_batches += 1
        return SpoolBatch(seq, unit, kind, at, [], corrupt=reason)

    def _retry_after(self, excess: int) -> float:
        """Seconds until the consumer is likely to have released ``excess`` events."""
        now = time.monotonic()
        while self._released and now - self._released[0][0] > _RATE_WINDOW_S:
            self._released.popleft()
        released = sum(n for _, n in self._released)
        if released <= 0:
            return _RETRY_MAX_S
        span = max(now - self._released[0][0], 1.0)
        return min(_RETRY_MAX_S, max(_RETRY_MIN_S, excess / (released / span)))

    def _run(self) -> None:
        """The writer thread: drain the queue, one transaction per group, then wake callers."""
        while True:
            first = self._queue.get()
            if first is None:
                return
            group: list[_Op] = [first]
            stop = False
            while len(group) < _MAX_GROUP:
                try:
                    nxt = self._queue.get_nowait()
                except queue.Empty:
                    break
                if nxt is None:
                    stop = True
                    break
                group.append(nxt)
            try:
                self._commit(group)
            except BaseException as exc:  # every caller must wake, whatever happened
                for op in group:
                    op.error = exc if isinstance(exc, VedetteError) else _unavailable(exc)
            for op in group:
                op.done.set()
            if stop:
                return

    def _commit(self, group: list[_Op]) -> None:
        """Commit one group; counters change only once the commit is durable."""
        now = time.time()
        con = self._wcon
        pending = self._pending_events
        batches = self._pending_batches
        received: dict[str, tuple[int, float]] = {}
        released_events = 0
        last_seq = self._last_seq
        try:
            con.execute("BEGIN IMMEDIATE")
            for op in group:
                if isinstance(op, _Release):
                    n_events, n_batches = con.execute(
                        "SELECT COALESCE(SUM(count), 0), COUNT(*) FROM batches WHERE seq <= ?",
                        (op.upto_seq,),
                    ).fetchone()
                    con.execute("DELETE FROM batches WHERE seq <= ?", (op.upto_seq,))
                    con.execute(
                        "DELETE FROM idempotency WHERE created_at < ?",
                        (now - self.idempotency_ttl,),
                    )
                    pending -= n_events
                    batches -= n_batches
                    released_events += n_events
                    continue
                if op.key is not None:
                    row = con.execute(
                        "SELECT seq, count FROM idempotency WHERE unit = ? AND key = ?",
                        (op.unit, op.key),
                    ).fetchone()
                    if row is not None:
                        op.result = AppendResult(int(row[0]), int(row[1]), True)
                        continue
                if pending >= self.high_water_events:
                    excess = pending - self.high_water_events + op.count
                    op.error = SpoolFull(pending, self.high_water_events, self._retry_after(excess))
                    continue
                cur = con.execute(
                    "INSERT INTO batches (unit, kind, received_at, count, crc, blob) "
                    "VALUES (?, ?, ?, ?, ?, ?)",
                    (op.unit, op.kind, now, op.count, op.crc, op.blob),
                )
                seq = int(cur.lastrowid or 0)
                if op.key is not None:
                    con.execute(
                        "INSERT INTO idempotency (unit, key, seq, count, created_at) "
                        "VALUES (?, ?, ?, ?, ?)",
                        (op.unit, op.key, seq, op.count, now),
                    )
                count, _ = received.get(op.unit, (0, now))
                received[op.unit] = (count + op.count, now)
                pending += op.count
                batches += 1
                last_seq = max(last_seq, seq)
                op.result = AppendResult(seq, op.count, False)
            for unit, (count, at) in received.items():
                con.execute(
                    "INSERT INTO received (unit, count, last_received_at) VALUES (?, ?, ?) "
                    "ON CONFLICT (unit) DO UPDATE SET count = count + excluded.count, "
                    "last_received_at = excluded.last_received_at",
                    (unit, count, at),
                )
            con.execute("COMMIT")
            if not self._dir_synced:
                # The first commit of this instance may have created the WAL file.
                _fsync_dir(self.path.parent)
                self._dir_synced = True
        except (sqlite3.Error, OSError) as exc:
            try:
                if con.in_transaction:
                    con.execute("ROLLBACK")
            except sqlite3.Error:
                pass  # the transaction is gone either way; the error below says why
            error = _unavailable(exc)
            for op in group:
                if isinstance(op, _Append):
                    op.result = None
                op.error = error
            return
        self._pending_events = pending
        self._pending_batches = batches
        if released_events:
            self._released.append((time.monotonic(), released_events))
        with self._cond:
            self._last_seq = last_seq
            self._cond.notify_all()
