"""Lines of a text source, for every line-oriented reader (NDJSON, syslog, Zeek, CSV, auditd, CEF).

Handles what all of them share: byte ranges (a split read starts at the first line that *begins*
inside its range and reads the line that straddles its end), line numbers (known only when reading
from the first byte), overlong lines (skipped with a warning instead of eating memory), binary
garbage, and text that is not UTF-8 (decoded as Latin-1 and counted once per source).
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass
from functools import lru_cache
from typing import IO, TypeVar

from vedette.sources.inputs import Source
from vedette.sources.report import ReadReport

_T = TypeVar("_T")

MAX_LINE_BYTES = 8 * 1024 * 1024
_CONTROL_BYTES = bytes([*range(0, 9), *range(14, 32), 127])
"""A longer line is not a log record: it is skipped and reported."""


@dataclass(slots=True)
class Line:
    """One line: its number (1-based; None in a split read), byte offset and bytes without EOL."""

    number: int | None
    offset: int
    data: bytes


def looks_binary(data: bytes) -> bool:
    """True for bytes no text log contains: NUL, or mostly control characters."""
    if b"\x00" in data:
        return True
    if not data:
        return False
    sample = data[:512]
    controls = len(sample) - len(sample.translate(None, _CONTROL_BYTES))
    return controls * 10 > len(sample)


def _align(stream: IO[bytes], start: int) -> int:
    """Move to the first line that begins at or after ``start``; return that offset."""
    if start <= 0:
        return 0
    stream.seek(start - 1)
    if stream.read(1) == b"\n":
        return start
    skipped = stream.readline()
    return start + len(skipped)


def iter_raw_lines(stream: IO[bytes], source: Source, report: ReadReport) -> Iterator[Line]:
    """Lines of an open ``stream`` within ``source``'s byte range, EOL stripped, empty skipped."""
    offset = _align(stream, source.start)
    end = source.end
    number: int | None = 0 if source.start == 0 else None
    while end is None or offset < end:
        raw = stream.readline(MAX_LINE_BYTES)
        if not raw:
            return
        line_offset = offset
        offset += len(raw)
        if number is not None:
            number += 1
        if not raw.endswith(b"\n") and len(raw) >= MAX_LINE_BYTES:
            rest = 0
            while True:  # skip to the end of the overlong line without holding it
                more = stream.readline(MAX_LINE_BYTES)
                rest += len(more)
                if not more or more.endswith(b"\n"):
                    break
            offset += rest
            report.warn(
                source.display,
                "line-too-long",
                f"{len(raw) + rest} bytes",
                offset=line_offset,
                line=number,
            )
            continue
        data = raw.rstrip(b"\r\n")
        if data.strip():
            yield Line(number, line_offset, data)


def header_lines(stream: IO[bytes]) -> Iterator[bytes]:
    """The ``#`` lines at the start of ``stream`` (Zeek and W3C headers), each read at most
    :data:`MAX_LINE_BYTES` at a time: the first data line may be any size, and every worker of a
    split read looks at the header (reading it whole cost 1.65 GB per worker on an 800 MB line)."""
    while True:
        raw = stream.readline(MAX_LINE_BYTES)
        if not raw.startswith(b"#") or (len(raw) >= MAX_LINE_BYTES and not raw.endswith(b"\n")):
            return
        yield raw


class TextDecoder:
    """UTF-8 decoding with a Latin-1 fallback, reported once per source with the count."""

    __slots__ = ("_fallbacks", "_first", "_last_fell_back", "_source")

    def __init__(self, source: Source) -> None:
        self._source = source
        self._fallbacks = 0
        self._first: Line | None = None
        self._last_fell_back = False

    def decode(self, line: Line) -> str:
        """The text of ``line``."""
        try:
            text = line.data.decode("utf-8")
            self._last_fell_back = False
            return text
        except UnicodeDecodeError:
            self.count_fallback(line)
            self._last_fell_back = True
            return line.data.decode("latin-1")

    def retract(self) -> None:
        """Un-count the last decoded line: it was skipped and is reported for another reason."""
        if self._last_fell_back:
            self._fallbacks -= 1
            self._last_fell_back = False

    def count_fallback(self, line: Line) -> None:
        """Count ``line`` as read through the Latin-1 fallback."""
        self._fallbacks += 1
        if self._first is None:
            self._first = line

    def close(self, report: ReadReport) -> None:
        """Report the lines that were not UTF-8, if any."""
        if self._fallbacks and self._first is not None:
            report.warn(
                self._source.display,
                "encoding",
                f"{self._fallbacks} line(s) not UTF-8, read as Latin-1",
                offset=self._first.offset,
                line=self._first.number,
                records=self._fallbacks,
            )


def iter_parsed_lines(
    source: Source,
    report: ReadReport,
    parse: Callable[[str], _T | None],
    reason: str,
    what: str,
) -> Iterator[tuple[Line, _T]]:
    """Each line of ``source`` with what ``parse`` made of its text; a line it rejects (None) is
    a ``reason`` warning (``binary`` for garbage) saying it is ``what``, and reading goes on."""
    decoder = TextDecoder(source)
    display = source.display
    with source.open() as stream:
        for line in iter_raw_lines(stream, source, report):
            parsed = parse(decoder.decode(line))
            if parsed is None:
                decoder.retract()
                kind = "binary" if looks_binary(line.data) else reason
                report.warn(display, kind, what, offset=line.offset, line=line.number)
                continue
            yield line, parsed
    decoder.close(report)


@lru_cache(maxsize=16)  # every sniffer asks for the lines of the same head
def head_lines(head: bytes, limit: int = 10) -> tuple[bytes, ...]:
    """The first complete non-empty lines of a sniffing head (the last, maybe cut, is dropped
    unless the head holds a single line)."""
    head = head[:16384]  # sniffers need a few lines, not the whole head
    parts = head.split(b"\n")
    if len(parts) > 1:
        parts = parts[:-1]
    return tuple([p.rstrip(b"\r") for p in parts if p.strip()][:limit])
