"""One record in, one Event out: the parsers of the file readers, with no file behind them.

A file reader finds records in a file (lines, JSON documents, EVTX chunks) and hands each to a
record parser; the monitoring centre's HTTP ingest and syslog listeners hand records to the
same parsers, so an event sent over the network is normalised exactly as the same event read
from a file::

    parser = RecordParser(origin="unit-a/http")
    event = parser.json_record({"Event": {...}})          # any JSON layout the readers know
    event = parser.syslog_line("<34>1 2003-10-11T22:14:15Z host su - - - failed", now)
    event = parser.raw_record("opaque text", format="unknown")

The parser keeps one piece of state, the JSON layout it used last, tried first for the next
record (records of one sender usually share a layout).
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from vedette.events import Event, LogSource, SourceRef
from vedette.sources.json_layouts import LayoutPicker
from vedette.sources.syslog import syslog_event
from vedette.sources.syslog_parse import parse_syslog_line


class RecordParser:
    """Normalises single records from one origin (a unit's HTTP ingest, a listener)."""

    __slots__ = ("_picker", "origin")

    def __init__(self, origin: str) -> None:
        self.origin = origin
        self._picker = LayoutPicker()

    def json_record(
        self, record: dict[str, Any], *, hint: str = "", line: int | None = None
    ) -> Event:
        """An Event from one JSON object in any layout the JSON reader knows.

        ``hint`` plays the part of a file name for layouts that tell themselves apart by it
        (Zeek's ``conn.log``); an object in no known layout takes the generic layout, its
        fields kept as they are, so nothing sent is lost.
        """
        ref = SourceRef(self.origin, "json", line=line)
        return self._picker.event(record, hint, ref)

    def syslog_line(
        self, text: str, reference: datetime, *, line: int | None = None
    ) -> Event | None:
        """An Event from one RFC 3164 or RFC 5424 line; None when it is not syslog.

        ``reference`` dates RFC 3164 timestamps, which carry no year (the receive time).
        """
        fields = parse_syslog_line(text, reference=reference)
        if fields is None:
            return None
        return syslog_event(fields, SourceRef(self.origin, "syslog", line=line))

    def raw_record(self, text: str, *, format: str, line: int | None = None) -> Event:
        """A record no parser understood, kept whole under ``raw`` so it can still be hunted."""
        return Event(
            fields={"raw": text},
            logsource=LogSource(),
            source=SourceRef(self.origin, format, line=line),
        )
