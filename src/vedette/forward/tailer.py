"""Following files: which files are watched, which generation each is, and their new lines.

A file is known by its identity (device, inode), never by its name, so a file renamed away by
log rotation is read to its end through the descriptor held open on it (or, after a restart,
found again in its folder by inode) while its replacement is read from the start. A file
that shrank below its position, or whose bytes before the position changed (copytruncate,
then new writes), is a new generation: a new id, read from offset 0, so its batch keys never
collide with the old ones.
"""

from __future__ import annotations

import os
import stat
import uuid
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path

from vedette.forward.state import FileRecord

EVTX = "evtx"
JSONL = "jsonl"
SYSLOG = "syslog"

TAIL_BYTES = 64
"""Bytes kept from just before a position to recognise the same content after a restart."""

SKIPPED_SUFFIXES = (".gz", ".bz2", ".xz", ".zst", ".zip", ".7z", ".tmp", ".partial", ".swp")
"""Compressed rotations and files still being written under a temporary name."""

JSON_SUFFIXES = (".json", ".jsonl", ".ndjson")


@dataclass(slots=True, frozen=True)
class Found:
    """A watched file as it is on disk now."""

    path: str
    dev: int
    ino: int
    size: int
    mtime_ns: int


@dataclass(slots=True)
class Tracked:
    """A file generation being read: its saved record and the descriptor held open on it."""

    record: FileRecord
    fd: int | None = None
    away_since: float | None = None
    """When it was last seen under a watched name (None: it is there now)."""


@dataclass(slots=True, frozen=True)
class Chunk:
    """Complete lines read from a text file: ``(offset, line)`` pairs and where they end."""

    lines: list[tuple[int, bytes]]
    end: int
    tail: bytes


def _skipped_name(name: str) -> bool:
    lowered = name.lower()
    return name.startswith(".") or lowered.endswith(SKIPPED_SUFFIXES)


def discover(paths: Sequence[Path], exclude: Sequence[Path] = ()) -> dict[tuple[int, int], Found]:
    """Regular files named on the command line or inside the named folders, by identity."""
    found: dict[tuple[int, int], Found] = {}
    excluded = {str(p.resolve()) for p in exclude}

    def add(path: str) -> None:
        try:
            info = os.stat(path)
        except OSError:
            return
        if stat.S_ISREG(info.st_mode):
            key = (info.st_dev, info.st_ino)
            found.setdefault(key, Found(path, *key, info.st_size, info.st_mtime_ns))

    for root in paths:
        if not root.is_dir():
            add(str(root))
            continue
        for folder, dirs, names in os.walk(root):
            dirs[:] = sorted(
                d
                for d in dirs
                if not d.startswith(".") and str(Path(folder, d).resolve()) not in excluded
            )
            for name in sorted(names):
                if not _skipped_name(name):
                    add(os.path.join(folder, name))
    return found


def file_kind(path: str, head: bytes) -> str | None:
    """``evtx``, ``jsonl`` or ``syslog`` by name and first bytes; None when not a log to tail."""
    lowered = path.lower()
    if lowered.endswith(".evtx") or head.startswith(b"ElfFile\x00"):
        return EVTX
    if b"\x00" in head[:512]:
        return None  # binary: not a text log
    if lowered.endswith(JSON_SUFFIXES) or head.lstrip()[:1] == b"{":
        return JSONL
    return SYSLOG


def new_record(found: Found, kind: str) -> FileRecord:
    """A first-seen file generation, read from its start.

    Size and time are those of the last read (text) or of the version read whole (EVTX: -1
    until then).
    """
    size = -1 if kind == EVTX else found.size
    return FileRecord(
        uid=uuid.uuid4().hex,
        dev=found.dev,
        ino=found.ino,
        path=found.path,
        kind=kind,
        size=size,
        mtime_ns=found.mtime_ns,
    )


def open_file(path: str, dev: int, ino: int) -> int | None:
    """A read descriptor on ``path`` if it is still the file (dev, ino); else None."""
    try:
        fd = os.open(path, os.O_RDONLY | os.O_CLOEXEC)
    except OSError:
        return None
    info = os.fstat(fd)
    if (info.st_dev, info.st_ino) != (dev, ino):
        os.close(fd)
        return None
    return fd


def locate(record: FileRecord) -> str | None:
    """The file's current name in its last folder (a rotation renamed it), by inode."""
    folder = os.path.dirname(record.path) or "."
    try:
        entries = list(os.scandir(folder))
    except OSError:
        return None
    for entry in entries:
        try:
            if entry.inode() == record.ino and entry.stat().st_dev == record.dev:
                return entry.path
        except OSError:
            continue
    return None


def read_head(path: str, size: int = 512) -> bytes:
    """The first bytes of a file (empty when unreadable)."""
    try:
        with open(path, "rb") as handle:
            return handle.read(size)
    except OSError:
        return b""


def same_content(fd: int, record: FileRecord) -> bool:
    """The file still holds what was read: not shorter than the position, same bytes before it."""
    size = os.fstat(fd).st_size
    if size < record.position:
        return False
    if not record.tail:
        return True
    start = record.position - len(record.tail)
    return os.pread(fd, len(record.tail), start) == record.tail


def read_lines(fd: int, position: int, tail: bytes, limit: int, *, final: bool) -> Chunk:
    """Complete lines from ``position``, at most ``limit`` bytes (one longer line is cut).

    A last line without its newline waits for it unless ``final`` (the file is finished).
    """
    data = os.pread(fd, limit, position)
    if not data:
        return Chunk([], position, tail)
    cut = data.rfind(b"\n") + 1
    at_end = len(data) < limit
    if (final and at_end) or (cut == 0 and not at_end):
        cut = len(data)  # the finished file's last line, or one line longer than the limit
    data = data[:cut]
    return Chunk(list(_split(data, position)), position + cut, (tail + data)[-TAIL_BYTES:])


def _split(data: bytes, base: int) -> Iterator[tuple[int, bytes]]:
    start = 0
    while start < len(data):
        end = data.find(b"\n", start)
        end = len(data) if end < 0 else end + 1
        yield base + start, data[start:end]
        start = end
