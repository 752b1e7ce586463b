"""Reading logs: files in, batches of normalised events out, every skip reported.

``read_events`` is the one entry point for a file; ``plan_read_tasks``/``read_task`` split big
line-oriented files into byte ranges so that several worker processes can share one file. This
module is the boundary where any exception a reader or a third-party library lets escape becomes
a counted :class:`~vedette.errors.ReadWarning`: no traceback reaches a user from here.
"""

from __future__ import annotations

import os
import zipfile
import zlib
from collections.abc import Iterator
from dataclasses import dataclass
from itertools import islice

from vedette.errors import ConfigError
from vedette.events import Event
from vedette.sources.inputs import (
    DecompressionLimit,
    Source,
    is_zip,
    probe_file,
    read_head,
    split_member_path,
    zip_members,
)
from vedette.sources.registry import READERS, ReadOptions, sniff_format
from vedette.sources.report import ReadReport

DEFAULT_BATCH_SIZE = 2000
DEFAULT_TASK_BYTES = 64 * 1024 * 1024
_STREAM_ERRORS = (OSError, EOFError, zlib.error, zipfile.BadZipFile, ValueError, RuntimeError)
"""What opening a stream may raise (a RuntimeError: an encrypted zip member)."""
_TRUNCATION_ERRORS = (OSError, EOFError, zlib.error, zipfile.BadZipFile)
"""What reading a damaged or truncated (compressed) stream raises midway."""


@dataclass(slots=True, frozen=True)
class ReadTask:
    """A unit of reading work: a file or archive member, or a byte range of a plain file.

    Tasks are small and picklable: a parent plans them, worker processes read them.
    """

    path: str
    member: str | None = None
    format: str | None = None
    start: int = 0
    end: int | None = None

    @property
    def source(self) -> Source:
        """The input stream this task reads."""
        return Source(self.path, self.member, self.start, self.end)

    @property
    def display(self) -> str:
        """``file``, ``archive.zip!member``, or ``file[start:end]``."""
        text = self.source.display
        if self.start or self.end is not None:
            text += f"[{self.start}:{'' if self.end is None else self.end}]"
        return text


def _check_format(format: str | None) -> None:
    if format is not None and format not in READERS:
        known = ", ".join(sorted(READERS))
        raise ConfigError(f"unknown log format {format!r} (known: {known})")


_MAGIC_BYTES = 8
"""Bytes of a file the first look reads: enough for the zip, compression and BOM checks and for
every reader's magic; sniffing a format without magic reads ``HEAD_BYTES``."""


def _needs_sniff_bytes(head: bytes) -> bool:
    """True when sniffing ``head`` needs more than its first bytes (no reader's magic)."""
    return not any(r.magic is not None and head.startswith(r.magic) for r in READERS.values())


def _sources(
    path: str | os.PathLike[str], report: ReadReport, format: str | None
) -> list[tuple[Source, bytes | None]]:
    """The streams inside ``path`` (itself, or each member when it is a zip archive), each with
    its decoded head when the first look already has it (None: read it from the stream)."""
    real, member = split_member_path(path)
    if member is not None:
        return [(Source(real, member), None)]
    probe = probe_file(real, _MAGIC_BYTES, None if format is not None else _needs_sniff_bytes)
    if probe.special is not None:
        report.warn(real, "not-a-file", f"{probe.special}, not a regular file: not read", offset=0)
        return []
    if probe.is_zip:
        try:
            return [(Source(real, name), None) for name in zip_members(real)]
        except (zipfile.BadZipFile, OSError, ValueError) as exc:
            report.warn(real, "archive", f"unreadable zip archive: {exc}")
            return []
    head = probe.decoded_head
    if head is None:
        return [(Source(real), None)]
    return [(Source(real, plain_size=probe.size), head)]


def _resolve_format(
    source: Source, format: str | None, report: ReadReport, head: bytes | None = None
) -> str | None:
    """The reader name for ``source``: ``format`` if given, else sniffed from ``head`` (read
    from the stream when None); warn when none."""
    if head is None:
        try:
            head = read_head(source)
        except _STREAM_ERRORS as exc:
            report.warn(source.display, "unreadable", f"{type(exc).__name__}: {exc}", offset=0)
            return None
    if not head:
        report.warn(source.display, "empty", "no data", offset=0)
        return None
    if source.member is not None and is_zip(head):
        report.warn(
            source.display,
            "nested-archive",
            "a zip inside a zip is not read: extract it and scan the extracted archive",
            offset=0,
        )
        return None
    if format is not None:
        return format
    found = sniff_format(head, source.name)
    if found is None:
        report.warn(source.display, "not-a-log", "no reader recognises this content", offset=0)
    return found


def _batches(
    source: Source, fmt: str, report: ReadReport, batch_size: int, options: ReadOptions
) -> Iterator[list[Event]]:
    reader = READERS[fmt]
    batch: list[Event] = []
    # A file counts as read when it gave events, or gave none without a warning (an empty but
    # valid log). One the reader rejected outright (a JSON file forced through --input-format
    # evtx) is only a skip: counting it would make "no input could be read" (exit 2) unreachable.
    counts_file = source.is_whole or source.start == 0
    skipped_before = sum(report.skipped.values())
    produced = 0
    try:
        try:
            events = reader.read(source, report, options)
            while True:
                # list.extend pulls the events in C, and keeps those it got when the reader
                # raises midway (what was read stays)
                batch.extend(islice(events, batch_size))
                if len(batch) < batch_size:
                    break
                produced += len(batch)
                report.add_events(fmt, len(batch))
                yield batch
                batch = []
        except DecompressionLimit as exc:
            # a bomb: what was read before the bound stays, the rest is one counted skip
            report.warn(source.display, "decompression-limit", str(exc))
        except _TRUNCATION_ERRORS as exc:
            # Truncated compressed streams and I/O errors end the stream; what was read stays.
            report.warn(source.display, "truncated", f"{type(exc).__name__}: {exc}")
        except Exception as exc:  # the boundary: a reader bug must not kill a scan
            report.warn(source.display, "reader-error", f"{fmt}: {type(exc).__name__}: {exc}")
        if batch:
            produced += len(batch)
            report.add_events(fmt, len(batch))
            yield batch
    finally:
        if counts_file and (produced or sum(report.skipped.values()) == skipped_before):
            report.add_file(fmt)


def read_events(
    path: str | os.PathLike[str],
    *,
    format: str | None = None,
    batch_size: int = DEFAULT_BATCH_SIZE,
    report: ReadReport,
    threads: int = 0,
) -> Iterator[list[Event]]:
    """Yield batches of normalised events from one file (every member, for a zip archive).

    ``format`` names a reader (see ``READERS``) and skips sniffing. Anything unreadable is a
    warning on ``report``, never an exception; an unknown ``format`` is a ConfigError.
    ``threads`` limits the EVTX parser's worker threads (0: all cores).
    """
    _check_format(format)
    options = ReadOptions(threads=threads)
    for source, head in _sources(path, report, format):
        fmt = _resolve_format(source, format, report, head)
        if fmt is not None:
            yield from _batches(source, fmt, report, max(1, batch_size), options)


def plan_read_tasks(
    path: str | os.PathLike[str],
    target_bytes: int = DEFAULT_TASK_BYTES,
    *,
    format: str | None = None,
) -> list[ReadTask]:
    """Split ``path`` into tasks: byte ranges of about ``target_bytes`` for big plain files of a
    line-oriented format, one task per file or archive member otherwise.

    Planning sniffs the format (so workers need not); a source that cannot be sniffed still gets
    a task, and reading it reports why it was skipped.
    """
    _check_format(format)
    scratch = ReadReport()
    tasks: list[ReadTask] = []
    for source, head in _sources(path, scratch, format):
        fmt = _resolve_format(source, format, scratch, head)
        whole = ReadTask(source.path, source.member, fmt)
        if fmt is None or not source.plain_file() or not READERS[fmt].can_split(read_head(source)):
            tasks.append(whole)
            continue
        try:
            size = os.path.getsize(source.path)
        except OSError:
            tasks.append(whole)
            continue
        step = max(1, target_bytes)
        if size <= step:
            tasks.append(whole)
            continue
        for start in range(0, size, step):
            end = start + step
            tasks.append(ReadTask(source.path, None, fmt, start, None if end >= size else end))
    if not tasks and scratch.warnings:  # an unreadable archive: let the reading report it
        tasks.append(ReadTask(os.fspath(path)))
    return tasks


def read_task(
    task: ReadTask,
    *,
    report: ReadReport,
    batch_size: int = DEFAULT_BATCH_SIZE,
    threads: int = 0,
) -> Iterator[list[Event]]:
    """Yield batches of events of one planned task, reporting skips on ``report``."""
    if task.member is None and task.start == 0 and task.end is None and task.format is None:
        yield from read_events(task.path, batch_size=batch_size, report=report, threads=threads)
        return
    source = task.source
    fmt = task.format
    if fmt is None or source.start == 0:
        fmt = _resolve_format(source, task.format, report)
    if fmt is not None:
        yield from _batches(source, fmt, report, max(1, batch_size), ReadOptions(threads=threads))
