"""The forwarder's state folder: read positions and the on-disk buffer, in one SQLite file.

A chunk of a file becomes batches in the buffer and the file's position moves past it in the
same transaction (``synchronous=FULL``), so after a ``kill -9`` every range is either
buffered with its key or still unread: nothing is skipped and nothing is cut twice. A batch
leaves the buffer only when the centre acknowledged it. A lock file keeps a second forwarder
off the same folder (the kernel drops the lock when the process dies).
"""

from __future__ import annotations

import fcntl
import sqlite3
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from vedette.errors import ConfigError
from vedette.forward.batching import Batch

SCHEMA = """
create table if not exists files (
    uid text primary key,
    dev integer not null,
    ino integer not null,
    path text not null,
    kind text not null,
    position integer not null,
    tail blob not null,
    size integer not null,
    mtime_ns integer not null
);
create table if not exists batches (
    id integer primary key autoincrement,
    key text not null unique,
    content_type text not null,
    body blob not null,
    records integer not null,
    path text not null,
    created real not null
);
create table if not exists rejected (
    id integer primary key,
    key text not null,
    content_type text not null,
    body blob not null,
    records integer not null,
    path text not null,
    reason text not null,
    at real not null
);
"""


@dataclass(slots=True)
class FileRecord:
    """Where one file generation is read up to.

    ``position`` is a byte offset (text) or an event index (EVTX); ``tail`` the bytes just
    before a text position, to tell the same file from a truncated or replaced one.
    """

    uid: str
    dev: int
    ino: int
    path: str
    kind: str
    position: int = 0
    tail: bytes = b""
    size: int = 0
    mtime_ns: int = 0


@dataclass(slots=True, frozen=True)
class Buffered:
    """A batch waiting in the buffer."""

    id: int
    key: str
    content_type: str
    body: bytes
    records: int
    path: str


@dataclass(slots=True, frozen=True)
class Backlog:
    """What the buffer holds."""

    batches: int
    records: int
    bytes: int


class ForwardState:
    """Positions and buffer of one forwarder (one ``--state`` folder)."""

    def __init__(self, folder: Path) -> None:
        if folder.exists() and not folder.is_dir():
            raise ConfigError(f"--state {folder} is not a folder")
        folder.mkdir(parents=True, exist_ok=True, mode=0o700)
        self._lock = (folder / "lock").open("a")
        try:
            fcntl.flock(self._lock.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            self._lock.close()
            raise ConfigError(
                f"another vedette forward is using the state folder {folder}"
            ) from None
        self._db = sqlite3.connect(folder / "forward.db", isolation_level=None)
        self._db.execute("pragma journal_mode=wal")
        self._db.execute("pragma synchronous=full")
        self._db.executescript(SCHEMA)

    def close(self) -> None:
        """Close the database and release the folder."""
        self._db.close()
        self._lock.close()

    def files(self) -> list[FileRecord]:
        """Every file generation with a position."""
        rows = self._db.execute(
            "select uid, dev, ino, path, kind, position, tail, size, mtime_ns from files"
        ).fetchall()
        return [FileRecord(*row) for row in rows]

    def commit(self, record: FileRecord, batches: Sequence[Batch]) -> None:
        """Buffer ``batches`` and move ``record`` to its new position, atomically."""
        now = time.time()
        with _transaction(self._db):
            self._db.executemany(
                "insert or ignore into batches (key, content_type, body, records, path, created)"
                " values (?, ?, ?, ?, ?, ?)",
                [
                    (b.key, b.content_type, b.body, b.records, record.path, now)
                    for b in batches
                    if b.records
                ],
            )
            self._db.execute(
                "insert or replace into files"
                " (uid, dev, ino, path, kind, position, tail, size, mtime_ns)"
                " values (?, ?, ?, ?, ?, ?, ?, ?, ?)",
                (
                    record.uid,
                    record.dev,
                    record.ino,
                    record.path,
                    record.kind,
                    record.position,
                    record.tail,
                    record.size,
                    record.mtime_ns,
                ),
            )

    def forget(self, uid: str) -> None:
        """Drop a file generation that is gone or finished (its batches stay buffered)."""
        with _transaction(self._db):
            self._db.execute("delete from files where uid = ?", (uid,))

    def pending(self, limit: int = 1) -> list[Buffered]:
        """The oldest buffered batches, in the order they were read."""
        rows = self._db.execute(
            "select id, key, content_type, body, records, path from batches order by id limit ?",
            (limit,),
        ).fetchall()
        return [Buffered(*row) for row in rows]

    def acknowledged(self, batch_id: int) -> None:
        """The centre has the batch: drop it from the buffer."""
        with _transaction(self._db):
            self._db.execute("delete from batches where id = ?", (batch_id,))

    def reject(self, batch: Buffered, reason: str) -> None:
        """The centre refused the batch for its content: keep it aside, never resend it."""
        with _transaction(self._db):
            self._db.execute(
                "insert into rejected (key, content_type, body, records, path, reason, at)"
                " values (?, ?, ?, ?, ?, ?, ?)",
                (
                    batch.key,
                    batch.content_type,
                    batch.body,
                    batch.records,
                    batch.path,
                    reason,
                    time.time(),
                ),
            )
            self._db.execute("delete from batches where id = ?", (batch.id,))

    def backlog(self) -> Backlog:
        """Batches, records and bytes waiting to be sent."""
        count, records, size = self._db.execute(
            "select count(*), coalesce(sum(records), 0), coalesce(sum(length(body)), 0)"
            " from batches"
        ).fetchone()
        return Backlog(int(count), int(records), int(size))

    def rejected_count(self) -> int:
        """Batches the centre refused for their content."""
        return int(self._db.execute("select count(*) from rejected").fetchone()[0])


class _transaction:
    """``begin immediate`` ... ``commit`` (rollback on error) on an autocommit connection."""

    def __init__(self, db: sqlite3.Connection) -> None:
        self._db = db

    def __enter__(self) -> None:
        self._db.execute("begin immediate")

    def __exit__(self, kind: object, exc: object, tb: object) -> None:
        self._db.execute("commit" if kind is None else "rollback")
