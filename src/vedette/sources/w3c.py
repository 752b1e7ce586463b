"""W3C Extended Log Format: Microsoft IIS web logs (and other servers writing ``#Fields:``).

Sample (the header IIS writes, then one line)::

    #Software: Microsoft Internet Information Services 10.0
    #Fields: date time s-ip cs-method cs-uri-stem cs-uri-query s-port cs-username c-ip ...
    2019-09-03 10:13:36 10.0.2.15 GET /erp/conn.aspx proxy&port=3389&ip=127.0.0.1 80 - 10.0.2.17 ...

Spec: https://www.w3.org/TR/WD-logfile.html and
https://learn.microsoft.com/en-us/windows/win32/http/w3c-logging

Events are category ``webserver`` with the W3C field names the SigmaHQ web rules use. Two
additions keep those rules working: ``cs(User-Agent)``/``cs(Referer)`` are also
``cs-user-agent``/``cs-referer``; and since SigmaHQ rules test ``cs-uri-query`` with path
fragments, ``cs-uri-query`` holds the whole request target (stem and query, as the access log
reader does) while IIS's own query field is kept as ``c-uri-query``. ``-`` is an empty field; IIS
writes ``+`` for spaces in the user agent. ``date``/``time`` are UTC (IIS's default). A split read
takes the ``#Fields`` header from the start of the file.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from datetime import UTC, datetime
from typing import Any

from vedette.events import Event, SourceRef
from vedette.normalize.tables import source_table
from vedette.sources.inputs import Source
from vedette.sources.lines import TextDecoder, header_lines, iter_raw_lines, looks_binary
from vedette.sources.registry import Reader, ReadOptions, register
from vedette.sources.report import ReadReport

_RENAMES = {
    "cs(User-Agent)": "cs-user-agent",
    "cs(Referer)": "cs-referer",
    "cs(Cookie)": "cs-cookie",
}
_NUMBERS = frozenset(("sc-status", "sc-substatus", "sc-win32-status", "time-taken", "s-port",
                      "sc-bytes", "cs-bytes"))  # fmt: skip


def read_fields_header(source: Source) -> list[str]:
    """The last ``#Fields:`` line of the header at the start of ``source``'s file."""
    fields: list[str] = []
    with Source(source.path, source.member).open() as stream:
        for raw in header_lines(stream):
            if raw.startswith(b"#Fields:"):
                fields = raw[8:].decode("utf-8", "replace").split()
    return fields


def w3c_event_fields(names: list[str], values: list[str]) -> dict[str, Any]:
    """Fields of one W3C line (``timestamp`` aware UTC when ``date``/``time`` are present)."""
    fields: dict[str, Any] = {}
    for name, value in zip(names, values, strict=True):
        if value == "-":
            continue
        if name in ("cs(User-Agent)", "cs(Referer)", "cs(Cookie)"):
            value = value.replace("+", " ")
        if name in _NUMBERS and value.isdigit():
            fields[name] = int(value)
        else:
            fields[name] = value
        renamed = _RENAMES.get(name)
        if renamed is not None:
            fields.setdefault(renamed, fields[name])
    stem = fields.get("cs-uri-stem")
    query = fields.get("cs-uri-query")
    if query is not None:
        fields["c-uri-query"] = query
    if stem is not None:
        target = f"{stem}?{query}" if query is not None else stem
        fields["cs-uri-query"] = target
        fields["c-uri"] = target
    date, time = fields.get("date"), fields.get("time")
    if date and time:
        with contextlib.suppress(ValueError):
            fields["timestamp"] = datetime.fromisoformat(f"{date}T{time}").replace(tzinfo=UTC)
    return fields


class W3cReader(Reader):
    """W3C Extended Log Format (IIS)."""

    name = "w3c"
    splittable = True

    def sniff(self, head: bytes, name: str) -> int:
        if not head.startswith(b"#"):
            return 0
        return 95 if b"\n#Fields:" in head or head.startswith(b"#Fields:") else 0

    def read(self, source: Source, report: ReadReport, options: ReadOptions) -> Iterator[Event]:
        names = [] if source.start == 0 else read_fields_header(source)
        decoder = TextDecoder(source)
        classify = source_table("weblog").classify()
        display = source.display
        with source.open() as stream:
            for line in iter_raw_lines(stream, source, report):
                text = decoder.decode(line)
                if text.startswith("#"):
                    if text.startswith("#Fields:"):
                        names = text[8:].split()
                    continue
                values = text.split()
                if not names or len(values) != len(names):
                    decoder.retract()
                    reason = "binary" if looks_binary(line.data) else "w3c-columns"
                    report.warn(display, reason, f"{len(values)} fields, header has {len(names)}",
                                offset=line.offset, line=line.number)  # fmt: skip
                    continue
                fields = w3c_event_fields(names, values)
                timestamp = fields.pop("timestamp", None)
                yield Event(
                    fields=fields,
                    logsource=classify.apply(fields),
                    timestamp=timestamp,
                    host=fields.get("s-computername") or fields.get("s-sitename"),
                    source=SourceRef(display, self.name, line=line.number, offset=line.offset),
                )
        decoder.close(report)


register(W3cReader())
