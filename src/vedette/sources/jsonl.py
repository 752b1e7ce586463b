"""JSON logs: NDJSON, concatenated (pretty-printed) objects, arrays, ``{"Records": [...]}``.

Sample lines (one per layout recognised by :mod:`vedette.sources.json_layouts`)::

    {"Event":{"System":{"Provider":{"#attributes":{"Name":"Microsoft-Windows-Sysmon"}},"EventID":11,...}}}
    {"SourceName":"Microsoft-Windows-Sysmon","EventID":10,"Channel":"Microsoft-Windows-Sysmon/Operational",...}
    {"_path":"dns","ts":"2018-03-24T17:15:20.865716Z","uid":"CqKst53mF3det3eDV9","id.orig_h":"10.47.1.100",...}
    {"timestamp":"2018-07-05T15:01:09.820360-0400","event_type":"ssh","src_ip":"192.168.86.85",...}
    {"eventVersion":"1.05","eventSource":"s3.amazonaws.com","eventName":"ListObjects",...}

Formats: NDJSON https://github.com/ndjson/ndjson-spec, JSON https://www.rfc-editor.org/rfc/rfc8259

NDJSON (every line a complete value) is read line by line with orjson and may be split into byte
ranges. Anything else (pretty-printed objects one after another, as evtx_dump and the SigmaHQ
regression files write them, or one big array) is streamed value by value with a bounded buffer.
"""

from __future__ import annotations

import codecs
import json
from collections.abc import Iterator
from typing import IO, Any

import orjson

from vedette.events import Event, SourceRef
from vedette.sources.inputs import Source, read_head
from vedette.sources.json_layouts import LayoutPicker
from vedette.sources.lines import Line, TextDecoder, head_lines, iter_raw_lines, looks_binary
from vedette.sources.registry import Reader, ReadOptions, register
from vedette.sources.report import ReadReport

MAX_DOCUMENT_CHARS = 64 * 1024 * 1024
"""A single JSON value larger than this is skipped (``value-too-large``) rather than buffered."""
_CHUNK = 1024 * 1024
_LONGEST_TOKEN = 12
"""Characters a token cut by a read may have lost (``\\uD83D\\uDE00``, ``false``): an error
this close to the end of what is buffered may only mean the value goes on."""
_SEPARATORS = " \t\r\n,[]"
"""Skipped between top-level values: whitespace, and the punctuation of a top-level array."""


def _is_ndjson(head: bytes) -> bool:
    """True when the first lines of ``head`` are each a complete JSON object."""
    lines = head_lines(head)[:5]
    if not lines:
        return False
    good = 0
    for line in lines:
        try:
            if isinstance(orjson.loads(line), dict):
                good += 1
        except orjson.JSONDecodeError:
            pass
    return good * 2 > len(lines)


def _incomplete(exc: json.JSONDecodeError, text: str) -> bool:
    """True when a parse error may only mean the text stops before the value ends (a ``null``
    or ``\\u00e9`` cut by the end of a read fails with "Expecting value" or "Invalid
    \\uXXXX escape" a few characters before the end)."""
    return exc.pos >= len(text) - _LONGEST_TOKEN or exc.msg.startswith("Unterminated")


def _records(value: Any) -> Iterator[Any]:
    """The records inside one JSON value: itself, an array's items, CloudTrail's ``Records``."""
    if isinstance(value, dict):
        records = value.get("Records")
        if isinstance(records, list) and len(value) <= 2:
            yield from records
        else:
            yield value
    elif isinstance(value, list):
        yield from value
    else:
        yield value


class JsonReader(Reader):
    """JSON and NDJSON in the layouts of Windows, Zeek, Suricata, CloudTrail and others."""

    name = "json"
    splittable = True

    def sniff(self, head: bytes, name: str) -> int:
        text = head.lstrip()
        if text[:1] not in (b"{", b"["):
            return 0
        if _is_ndjson(head):
            return 80
        # A document: the first value must parse, or fail only because the head ends early.
        decoded = text.decode("utf-8", "replace")
        try:
            json.JSONDecoder().raw_decode(decoded)
        except json.JSONDecodeError as exc:
            if not _incomplete(exc, decoded):
                return 0
        return 60

    def can_split(self, head: bytes) -> bool:
        return _is_ndjson(head)

    def read(self, source: Source, report: ReadReport, options: ReadOptions) -> Iterator[Event]:
        ndjson = _is_ndjson(read_head(source)) if source.is_whole else True
        with source.open() as stream:
            if ndjson:
                yield from self._read_lines(stream, source, report)
            else:
                yield from self._read_documents(stream, source, report)

    def _read_lines(self, stream: IO[bytes], source: Source, report: ReadReport) -> Iterator[Event]:
        picker = LayoutPicker()
        decoder = TextDecoder(source)
        display, hint = source.display, source.name
        for line in iter_raw_lines(stream, source, report):
            try:
                value = orjson.loads(line.data)
            except orjson.JSONDecodeError as exc:
                value = self._retry_latin1(line.data, decoder, line)
                if value is None:
                    reason = "binary" if looks_binary(line.data) else "json-parse"
                    report.warn(display, reason, str(exc), offset=line.offset, line=line.number)
                    continue
            for record in _records(value):
                ref = SourceRef(display, "json", line=line.number, offset=line.offset)
                event = self._event(record, picker, hint, ref, report)
                if event is not None:
                    yield event
        decoder.close(report)

    @staticmethod
    def _retry_latin1(data: bytes, decoder: TextDecoder, line: Line) -> Any:
        """Parse a line that is not UTF-8 as Latin-1; None when it is bad JSON anyway."""
        try:
            data.decode("utf-8")
            return None  # valid UTF-8: the JSON itself is bad
        except UnicodeDecodeError:
            pass
        try:
            value = orjson.loads(data.decode("latin-1"))
        except orjson.JSONDecodeError:
            return None
        decoder.count_fallback(line)
        return value

    @staticmethod
    def _event(
        record: Any, picker: LayoutPicker, hint: str, ref: SourceRef, report: ReadReport
    ) -> Event | None:
        if not isinstance(record, dict):
            report.warn(
                ref.path,
                "json-not-object",
                f"{type(record).__name__} value",
                offset=ref.offset,
                line=ref.line,
            )
            return None
        try:
            return picker.event(record, hint, ref)
        except RecursionError:  # flattening is recursive: this record only, not the file
            report.warn(ref.path, "json-too-deep", _TOO_DEEP, offset=ref.offset, line=ref.line)
            return None

    def _read_documents(
        self, stream: IO[bytes], source: Source, report: ReadReport
    ) -> Iterator[Event]:
        picker = LayoutPicker()
        display, hint = source.display, source.name
        for offset, line, value in _DocumentStream(stream, source, report):
            for record in _records(value):
                ref = SourceRef(display, "json", line=line, offset=offset)
                event = self._event(record, picker, hint, ref, report)
                if event is not None:
                    yield event


_TOO_DEEP = "record nested too deeply to read: skipped"


class _DocumentStream:
    """Top-level JSON values of a stream, one after another, with a bounded buffer.

    Offsets are character offsets of the decoded text (equal to byte offsets for ASCII).
    """

    def __init__(self, stream: IO[bytes], source: Source, report: ReadReport) -> None:
        self._stream = stream
        self._source = source
        self._report = report
        self._utf8 = codecs.getincrementaldecoder("utf-8")("strict")
        self._latin1 = False
        self._eof = False
        self._buf = ""
        self._base = 0  # stream offset of _buf[0]
        self._lines = 1  # line number at _buf[_counted]
        self._counted = 0  # position in _buf up to which newlines are counted

    def _fill(self, size: int = _CHUNK) -> bool:
        """Append ``size`` bytes to the buffer; False at end of stream."""
        if self._eof:
            return False
        data = self._stream.read(size)
        if not data:
            self._eof = True
            if not self._latin1:
                try:
                    self._buf += self._utf8.decode(b"", final=True)
                except UnicodeDecodeError:
                    self._report.warn(
                        self._source.display, "encoding", "stream ends inside a UTF-8 character"
                    )
            return False
        if self._latin1:
            self._buf += data.decode("latin-1")
            return True
        try:
            self._buf += self._utf8.decode(data)
        except UnicodeDecodeError:
            self._latin1 = True
            self._report.warn(
                self._source.display,
                "encoding",
                "not UTF-8 from here on, read as Latin-1",
                offset=self._base + len(self._buf),
            )
            self._buf += data.decode("latin-1")
        return True

    def _line_at(self, pos: int) -> int:
        """Line number at ``pos`` of the buffer, counting newlines only once (positions only
        move forward between compactions)."""
        if pos > self._counted:
            self._lines += self._buf.count("\n", self._counted, pos)
            self._counted = pos
        return self._lines

    def _compact(self, pos: int) -> int:
        if pos > _CHUNK:
            self._line_at(pos)
            self._counted = 0
            self._base += pos
            self._buf = self._buf[pos:]
            return 0
        return pos

    def __iter__(self) -> Iterator[tuple[int, int | None, Any]]:
        decoder = json.JSONDecoder()
        pos = 0
        whole = self._source.is_whole
        while True:
            buf = self._buf
            while pos < len(buf) and buf[pos] in _SEPARATORS:
                pos += 1
            if pos >= len(buf):
                pos = self._compact(pos)
                if not self._fill():
                    return
                continue
            try:
                value, end = decoder.raw_decode(buf, pos)
            except json.JSONDecodeError as exc:
                pending = len(buf) - pos
                # read as much again as is pending: a big value is parsed O(log n) times, not
                # once per megabyte (quadratic)
                more = min(max(_CHUNK, pending), MAX_DOCUMENT_CHARS - pending + 1)
                if _incomplete(exc, buf) and pending < MAX_DOCUMENT_CHARS and self._fill(more):
                    continue
                if _incomplete(exc, buf) and not self._eof:
                    reason, why = "value-too-large", _too_large(pending)
                else:
                    reason, why = "", exc.msg
                pos = self._recover(pos, why, reason)
                if pos < 0:
                    return
                continue
            except RecursionError:
                pos = self._recover(pos, _TOO_DEEP, "json-too-deep")
                if pos < 0:
                    return
                continue
            line = self._line_at(pos) if whole else None
            yield self._base + pos, line, value
            pos = self._compact(end)

    def _recover(self, pos: int, why: str, reason: str = "") -> int:
        """Warn about the bad value at ``pos`` (``reason``, or parse error or binary when
        empty) and return where the next value may start (-1: none)."""
        line = self._line_at(pos) if self._source.is_whole else None
        if not reason:
            sample = self._buf[pos : pos + 64]
            reason = "binary" if looks_binary(sample.encode("utf-8", "replace")) else "json-parse"
        self._report.warn(self._source.display, reason, why, offset=self._base + pos, line=line)
        while True:
            found = min(
                (
                    i
                    for i in (self._buf.find("\n{", pos + 1), self._buf.find("\n[", pos + 1))
                    if i >= 0
                ),
                default=-1,
            )
            if found >= 0:
                return found + 1
            # search on from the end of what was searched (less one character: a "\n" may
            # end this read); starting over at 0 found earlier values again
            pos = self._compact(max(pos, len(self._buf) - 2))
            if not self._fill():
                return -1


def _too_large(size: int) -> str:
    return (
        f"JSON value over {MAX_DOCUMENT_CHARS >> 20} MiB ({size:,} characters read and not"
        " ended): skipped"
    )


register(JsonReader())
