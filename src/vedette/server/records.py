"""Spool batches back into Events, with the readers' own record parsers.

A JSON record in no layout the readers know still becomes an event (the generic layout keeps
its fields); a syslog line that does not parse is kept whole under ``raw``. Either way it is
stored and counted as unclassified, never lost. A record that is no longer valid JSON (it was
valid at ingest, so only a damaged spool could do this) is kept as raw text too.
"""

from __future__ import annotations

from collections import Counter
from datetime import UTC, datetime

import orjson

from vedette.events import Event
from vedette.sources.records import RecordParser
from vedette.store.spool import SpoolBatch


class BatchDecoder:
    """Turns spool batches into Events, one :class:`RecordParser` per (unit, kind)."""

    def __init__(self) -> None:
        self._parsers: dict[tuple[str, str], RecordParser] = {}
        self.unclassified: Counter[str] = Counter()
        """Events per unit that no layout or parser recognised (stored raw or generic)."""

    def events(self, batch: SpoolBatch) -> list[Event]:
        """The events of one batch, each carrying the batch's unit."""
        key = (batch.unit, batch.kind)
        parser = self._parsers.get(key)
        if parser is None:
            parser = self._parsers[key] = RecordParser(origin=f"{batch.unit}/{batch.kind}")
        received = datetime.fromtimestamp(batch.received_at, tz=UTC)
        out: list[Event] = []
        unknown = 0
        for number, record in enumerate(batch.records, start=1):
            event = self._event(parser, batch.kind, record, received, number)
            if event.logsource.product is None:
                unknown += 1
            event.unit = batch.unit
            out.append(event)
        if unknown:
            self.unclassified[batch.unit] += unknown
        return out

    @staticmethod
    def _event(
        parser: RecordParser, kind: str, record: bytes, received: datetime, number: int
    ) -> Event:
        if kind == "json":
            try:
                value = orjson.loads(record)
            except orjson.JSONDecodeError:
                value = None
            if isinstance(value, dict):
                return parser.json_record(value, line=number)
        text = record.decode("utf-8", errors="replace")
        if kind == "syslog":
            event = parser.syslog_line(text, received, line=number)
            if event is not None:
                return event
        return parser.raw_record(text, format=kind, line=number)
