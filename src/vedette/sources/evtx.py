"""Windows XML event log files (``.evtx``), through the ``evtx`` package (Rust, multi-threaded).

A record as the parser renders it (one line of its JSON, shortened)::

    {"Event":{"System":{"Provider":{"#attributes":{"Name":"Microsoft-Windows-Security-Auditing"}},
    "EventID":4985,...,"TimeCreated":{"#attributes":{"SystemTime":"2019-08-14T14:06:44.495674Z"}},
    "EventRecordID":12294,"Channel":"Security","Computer":"MSEDGEWIN10"},"EventData":{
    "SubjectUserName":"IEUser","ProcessName":"C:\\\\ProgramData\\\\proc_doppel64.exe",...}}}

Format: https://github.com/libyal/libevtx/blob/main/documentation/Windows%20XML%20Event%20Log%20(EVTX).asciidoc

A corrupt chunk makes the parser raise for that chunk; the reader counts the chunk's records as a
warning (with the chunk's file offset when it can be found) and goes on with the next chunk.
"""

from __future__ import annotations

import io
import os
import re
from collections.abc import Callable, Iterator
from typing import Any, cast

import orjson
from evtx import PyEvtxParser

from vedette.events import Event, SourceRef
from vedette.normalize.timeparse import system_time
from vedette.normalize.winevent import classify_windows_event, flatten_evtx_event
from vedette.sources.inputs import Source
from vedette.sources.registry import Reader, ReadOptions, register
from vedette.sources.report import ReadReport

MAGIC = b"ElfFile\x00"
_FILE_HEADER = 4096
_CHUNK_SIZE = 65536
_CHUNK_RANGE = re.compile(r"record IDs (\d+)\.\.(\d+)")
IN_MEMORY_LIMIT = 64 * 1024 * 1024
"""An EVTX file inside an archive up to this size is decompressed into memory to be parsed."""
_MAX_CHUNK_RECORDS = (_CHUNK_SIZE - 512) // 24
"""The most records a chunk can hold (each has a 24-byte header): a bound for a damaged one."""
_MAX_CONSECUTIVE_ERRORS = 10_000
"""A parser that fails this often in a row is not making progress: stop rather than spin."""


_CHUNK_RECORDS = 512
"""Where a chunk's records start (after its header and string and template tables)."""
_RECORD_MAGIC = b"\x2a\x2a\x00\x00"
_RECORD_HEADER = 24


def _find_chunk(target: Any, first: int, last: int) -> tuple[int, bytes] | None:
    """Offset and bytes of the chunk whose header names record ids ``first..last`` (what the
    parser's error message quotes), in a file path or an in-memory stream; None when absent."""
    try:
        if isinstance(target, io.BytesIO):
            data = target.getbuffer()
            return _scan_chunks(lambda at: bytes(data[at : at + _CHUNK_SIZE]), first, last)
        if isinstance(target, str | os.PathLike):
            with open(target, "rb") as handle:

                def read_at(at: int) -> bytes:
                    handle.seek(at)
                    return handle.read(_CHUNK_SIZE)

                return _scan_chunks(read_at, first, last)
    except (OSError, ValueError):
        return None
    return None


def _scan_chunks(
    read_at: Callable[[int], bytes], first: int, last: int
) -> tuple[int, bytes] | None:
    offset = _FILE_HEADER
    while True:
        chunk = read_at(offset)
        if len(chunk) < 40:
            return None
        if (
            chunk.startswith(b"ElfChnk\x00")
            and int.from_bytes(chunk[24:32], "little") == first
            and int.from_bytes(chunk[32:40], "little") == last
        ):
            return offset, chunk
        offset += _CHUNK_SIZE


def _records_in(chunk: bytes) -> int:
    """Records a damaged chunk held, without trusting any one field a fuzzer may have hit.

    At least the records found by their headers (walked by size, and counted by magic); the
    header's record-number and record-id ranges count when they are possible (no more than a
    chunk holds, no fewer than were found), the smaller of them when both are.
    """
    walked, at = 0, _CHUNK_RECORDS
    while at + _RECORD_HEADER <= len(chunk) and chunk[at : at + 4] == _RECORD_MAGIC:
        size = int.from_bytes(chunk[at + 4 : at + 8], "little")
        if size < _RECORD_HEADER or at + size > len(chunk):
            break
        walked += 1
        at += size
    found = max(walked, chunk.count(_RECORD_MAGIC, _CHUNK_RECORDS))
    ranges = []
    for first_at in (8, 24):  # first/last record number, then first/last record id
        first = int.from_bytes(chunk[first_at : first_at + 8], "little")
        last = int.from_bytes(chunk[first_at + 8 : first_at + 16], "little")
        if found <= last - first + 1 <= _MAX_CHUNK_RECORDS:
            ranges.append(last - first + 1)
    return min(ranges, default=found)


class EvtxReader(Reader):
    """EVTX files to Windows events with Sigma field names."""

    name = "evtx"
    magic = MAGIC

    def sniff(self, head: bytes, name: str) -> int:
        return 100 if head.startswith(MAGIC) else 0

    def read(self, source: Source, report: ReadReport, options: ReadOptions) -> Iterator[Event]:
        if source.member is None and source.plain_file():
            size: int | None = source.plain_size
            if size is None:
                try:
                    size = os.path.getsize(source.path)
                except OSError:
                    size = None
            # the parsing generator itself, not wrapped in another: one resume less per event
            return self._parse(source.path, source, report, options, size)
        return self._read_stream(source, report, options)

    def _read_stream(
        self, source: Source, report: ReadReport, options: ReadOptions
    ) -> Iterator[Event]:
        """Inside an archive or compressed: the parser reads a seekable stream. Small files are
        decompressed into memory (seeking a decompressing stream is slow); big ones are
        streamed, which keeps memory bounded."""
        with source.open() as stream:
            head = stream.read(IN_MEMORY_LIMIT + 1)
            size: int | None = len(head)
            target: Any = io.BytesIO(head)
            if len(head) > IN_MEMORY_LIMIT:
                del head, target
                stream.seek(0)
                target, size = stream, None
            yield from self._parse(target, source, report, options, size)

    def _parse(
        self,
        target: Any,
        source: Source,
        report: ReadReport,
        options: ReadOptions,
        size: int | None,
    ) -> Iterator[Event]:
        """Events of the EVTX data at ``target`` (a path or a seekable stream of ``size``
        bytes)."""
        display = source.display
        try:
            parser = PyEvtxParser(target, number_of_threads=options.threads)
            records = parser.records_json()
        except (OSError, RuntimeError, ValueError) as exc:
            report.warn(display, "evtx-header", header_problem(_head(target), size, exc), offset=0)
            return
        failures = 0
        produced = 0
        skipped_before = report.total_skipped
        # The per-record work is inlined and its names bound locally: at ~10 µs of Python per
        # record, each attribute look-up and call saved shows (see BENCHMARKS.md, Readers).
        loads, decode_error, flatten = orjson.loads, orjson.JSONDecodeError, flatten_evtx_event
        classify, stamp, new_event, new_ref = classify_windows_event, system_time, Event, SourceRef
        # the iterator yields dicts (its stub says Optional[Any])
        next_record = cast("Callable[[], dict[str, Any]]", records.__next__)
        while True:
            try:
                record = next_record()
            except StopIteration:
                break
            except (RuntimeError, OSError, ValueError) as exc:
                failures += 1
                self._warn_chunk(source, report, str(exc), target)
                if failures >= _MAX_CONSECUTIVE_ERRORS:
                    report.warn(display, "evtx-abandoned", "too many consecutive parse errors")
                    return
                continue
            failures = 0
            try:
                tree = loads(record["data"])
            except (decode_error, KeyError, TypeError) as exc:
                record_id = record.get("event_record_id")
                report.warn(display, "evtx-record", f"record {record_id}: {exc}")
                continue
            fields = flatten(tree)
            logsource = classify(fields)
            timestamp = stamp(fields.get("TimeCreated") or record.get("timestamp"))
            computer = fields.get("Computer")
            # The System EventRecordID is what Event Viewer and other tools show; the record
            # header's number is the fallback for damaged System data.
            record_id = fields.get("EventRecordID")
            if not isinstance(record_id, int):
                record_id = record.get("event_record_id")
            produced += 1
            yield new_event(
                fields,
                logsource,
                timestamp,
                computer if isinstance(computer, str) else None,
                new_ref(display, "evtx", record_id),
            )
        warned = report.total_skipped > skipped_before
        self._check_completeness(source, report, produced, warned, size)

    @staticmethod
    def _check_completeness(
        source: Source, report: ReadReport, produced: int, warned: bool, size: int | None
    ) -> None:
        """Warn about what the parser skips silently: a partial last chunk, or no records."""
        if size is not None and size > _FILE_HEADER:
            partial = (size - _FILE_HEADER) % _CHUNK_SIZE
            if partial:
                report.warn(
                    source.display,
                    "evtx-truncated",
                    f"file ends inside a chunk ({partial} of {_CHUNK_SIZE} bytes present)",
                    offset=size - partial,
                )
                return
        if produced == 0 and not warned:
            report.warn(source.display, "evtx-no-records", "no readable record", offset=0)

    @staticmethod
    def _warn_chunk(source: Source, report: ReadReport, message: str, target: Any) -> None:
        """Count a chunk the parser gave up on by the records really in it (found in the file
        or in-memory data; else at most what a chunk can hold)."""
        match = _CHUNK_RANGE.search(message)
        records, offset = 1, None
        if match:
            first, last = int(match.group(1)), int(match.group(2))
            found = _find_chunk(target, first, last)
            if found is not None:
                offset, chunk = found
                records = max(1, _records_in(chunk))
            else:
                records = max(1, min(last - first + 1, _MAX_CHUNK_RECORDS))
        report.warn(source.display, "evtx-chunk", message, offset=offset, records=records)


register(EvtxReader())


def _head(target: Any) -> bytes | None:
    """The first bytes of a path or seekable stream, or None when they cannot be read."""
    try:
        if isinstance(target, str | os.PathLike):
            with open(target, "rb") as handle:
                return handle.read(16)
        target.seek(0)
        head: bytes = target.read(16)
        return head
    except (OSError, ValueError, AttributeError):
        return None


def header_problem(head: bytes | None, size: int | None, exc: BaseException) -> str:
    """Why an EVTX file header could not be read, in words a responder can act on.

    The parser's own text ("failed to fill whole buffer", "Invalid EVTX file header magic ...
    found [7B, 22, ...]") says nothing about what to do: re-collect a truncated copy, or drop a
    wrong ``--input-format``.
    """
    if head == b"":
        return "empty file: not an EVTX file (truncated copy?)"
    if head is not None and not head.startswith(MAGIC[: len(head)]):
        shown = head[:8].decode("latin-1")
        shown = "".join(c if c.isprintable() else "." for c in shown)
        return f"not an EVTX file (starts with {shown!r}); wrong --input-format?"
    if size is not None and size < _FILE_HEADER:
        return (
            f"file is {size:,} bytes, shorter than an EVTX header ({_FILE_HEADER:,} bytes):"
            " truncated copy?"
        )
    return f"damaged EVTX file header: truncated or damaged copy? ({exc})"
