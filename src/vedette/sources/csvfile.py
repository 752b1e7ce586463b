"""CSV files with a header row: each row an event, columns as fields.

Sample (OTRF's AWS S3 honey-bucket export, first two lines)::

    Event Type,Event Name,Request ID,User ID,Request Parameters,Alert,Event ID,Event DateTime,...
    AwsApiCall,ListObjects,E2E91AQVN6DJHZ91,"{'type': 'AWSAccount', ...}",...

Spec: https://www.rfc-editor.org/rfc/rfc4180 (comma or semicolon delimited; quoted values may
span lines).

Rows go through the same layouts as JSON records (:mod:`vedette.sources.json_layouts`), so a CSV
export of Windows events (columns ``EventID``, ``Channel``, ...) is normalised like the flat JSON
layout. A split read takes the header from the start of the file.
"""

from __future__ import annotations

import csv
import re
from collections.abc import Iterator

from vedette.events import Event, SourceRef
from vedette.sources.inputs import Source
from vedette.sources.json_layouts import LayoutPicker
from vedette.sources.lines import Line, TextDecoder, head_lines, iter_raw_lines
from vedette.sources.registry import Reader, ReadOptions, register
from vedette.sources.report import ReadReport

_DELIMITERS = (",", ";")
_HEADER_NAME = re.compile(r"[A-Za-z_@\"][\w@ .:/#()\"-]{0,63}")
csv.field_size_limit(16 * 1024 * 1024)


def _split(text: str, delimiter: str) -> list[str]:
    try:
        return next(csv.reader([text], delimiter=delimiter), [])
    except csv.Error:
        return []


def _dialect(head: bytes, *, strict: bool = True) -> tuple[str, list[str]] | None:
    """Delimiter and header of a CSV head, or None when it does not look like CSV.

    ``strict`` (sniffing) wants every sampled row as wide as the header; reading a file the user
    named as CSV only wants a majority, since bad rows are reported one by one."""
    lines = [line.decode("utf-8", "replace") for line in head_lines(head)[:6]]
    if len(lines) < 2:
        return None
    header_line = lines[0].lstrip("\ufeff")
    for delimiter in _DELIMITERS:
        header = _split(header_line, delimiter)
        if len(header) < 2 or any(not name.strip() for name in header):
            continue
        if any(name.strip().replace(".", "").isdigit() for name in header):
            continue  # a header names columns; numbers mean this is data
        if not all(_HEADER_NAME.fullmatch(name.strip()) for name in header):
            continue  # prose with a comma ("Copyright (c) [2016], OASIS") is no header
        widths = [len(_split(line, delimiter)) for line in lines[1:]]
        matching = sum(1 for w in widths if w == len(header))
        if matching == len(widths) or (not strict and matching * 2 >= len(widths)):
            return delimiter, [name.strip() for name in header]
    return None


class CsvReader(Reader):
    """CSV with a header row."""

    name = "csv"
    splittable = True

    def sniff(self, head: bytes, name: str) -> int:
        if head.lstrip()[:1] in (b"{", b"[", b"#", b"<"):
            return 0
        return 25 if _dialect(head) is not None else 0

    def read(self, source: Source, report: ReadReport, options: ReadOptions) -> Iterator[Event]:
        with Source(source.path, source.member).open() as stream:
            dialect = _dialect(stream.read(64 * 1024), strict=False)
        if dialect is None:
            report.warn(source.display, "csv-header", "no CSV header found", offset=0)
            return
        delimiter, header = dialect
        decoder = TextDecoder(source)
        picker = LayoutPicker()
        display, hint = source.display, source.name
        with source.open() as stream:
            lines = iter_raw_lines(stream, source, report)
            if source.start == 0:
                next(lines, None)  # the header row
            current: list[Line] = []

            def texts() -> Iterator[str]:
                for line in lines:
                    current.append(line)
                    yield decoder.decode(line) + "\n"

            rows = csv.reader(texts(), delimiter=delimiter)
            while True:
                current.clear()
                try:
                    row = next(rows)
                except StopIteration:
                    break
                except csv.Error as exc:
                    first = current[0] if current else None
                    report.warn(display, "csv-parse", str(exc),
                                offset=first.offset if first else None,
                                line=first.number if first else None)  # fmt: skip
                    continue
                first = current[0] if current else None
                if len(row) != len(header):
                    report.warn(display, "csv-columns",
                                f"{len(row)} columns, header has {len(header)}",
                                offset=first.offset if first else None,
                                line=first.number if first else None)  # fmt: skip
                    continue
                ref = SourceRef(display, "csv", line=first.number if first else None,
                                offset=first.offset if first else None)  # fmt: skip
                yield picker.event(dict(zip(header, row, strict=True)), hint, ref)
        decoder.close(report)


register(CsvReader())
