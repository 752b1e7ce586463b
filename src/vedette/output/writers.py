"""Detection writers by format name: ``jsonl``, ``json``, ``csv`` and ``table``.

Every writer takes detections one at a time, already in time order, and keeps nothing but a
small buffer, so output of any size streams with flat memory.
"""

from __future__ import annotations

import csv
from collections.abc import Callable
from typing import Any, Protocol, TextIO

from vedette.events import Detection, iso_utc
from vedette.output.keyfields import key_fields_text
from vedette.output.records import detection_json, dumps
from vedette.output.safetext import csv_cell


class DetectionWriter(Protocol):
    """Writes detections to a stream in one format."""

    def write(self, detection: Detection) -> None:
        """Write one detection."""
        ...

    def close(self) -> None:
        """Finish the document (the stream itself stays open)."""
        ...


class JsonlWriter:
    """One JSON object per line: the JSONL contract."""

    def __init__(self, stream: TextIO, **_: Any) -> None:
        self.stream = stream

    def write(self, detection: Detection) -> None:
        """Write one line."""
        self.stream.write(detection_json(detection).decode("utf-8"))
        self.stream.write("\n")

    def close(self) -> None:
        """Nothing to finish."""
        self.stream.flush()


class JsonWriter:
    """A JSON array of contract objects, streamed element by element."""

    def __init__(self, stream: TextIO, **_: Any) -> None:
        self.stream = stream
        self.count = 0

    def write(self, detection: Detection) -> None:
        """Write one array element."""
        self.stream.write("[\n" if self.count == 0 else ",\n")
        self.stream.write(detection_json(detection).decode("utf-8"))
        self.count += 1

    def close(self) -> None:
        """Close the array (an empty scan is ``[]``)."""
        self.stream.write("[]\n" if self.count == 0 else "\n]\n")
        self.stream.flush()


CSV_COLUMNS = (
    "timestamp",
    "level",
    "rule_title",
    "rule_id",
    "kind",
    "status",
    "host",
    "attack_ids",
    "attack_tactics",
    "key_fields",
    "source_path",
    "source_format",
    "record_id",
    "line",
    "matched",
    "tags",
    "event",
)


class CsvWriter:
    """CSV with a header; the whole event as one JSON column, key fields as text.

    A text cell a spreadsheet would run as a formula (``=``, ``+``, ``-``, ``@`` first) is
    written after a ``'`` unless ``raw``: event text is attacker-controlled.
    """

    def __init__(self, stream: TextIO, *, raw: bool = False, **_: Any) -> None:
        self.stream = stream
        self.writer = csv.writer(stream, lineterminator="\n")
        self.writer.writerow(CSV_COLUMNS)
        self.raw = raw

    def write(self, detection: Detection) -> None:
        """Write one row."""
        event = detection.event
        source = event.source
        tactics = sorted({t for ref in detection.attack for t in ref.tactics})
        row = (
            iso_utc(event.timestamp) or "",
            detection.level,
            detection.rule_title,
            detection.rule_id,
            detection.kind,
            detection.status or "",
            event.host or "",
            ";".join(ref.technique_id for ref in detection.attack),
            ";".join(tactics),
            key_fields_text(detection),
            source.path if source else "",
            source.format if source else "",
            _text(source.record_id if source else None),
            _text(source.line if source else None),
            ";".join(detection.matched),
            ";".join(detection.tags),
            dumps(event.fields).decode("utf-8"),
        )
        self.writer.writerow(row if self.raw else [csv_cell(cell) for cell in row])

    def close(self) -> None:
        """Nothing to finish."""
        self.stream.flush()


def _text(value: int | None) -> str:
    return "" if value is None else str(value)


WriterFactory = Callable[..., DetectionWriter]


def _table_writer(stream: TextIO, **options: Any) -> DetectionWriter:
    from vedette.output.table import TableWriter  # rich is only imported when a table is wanted

    return TableWriter(stream, **options)


WRITERS: dict[str, WriterFactory] = {
    "table": _table_writer,
    "csv": CsvWriter,
    "json": JsonWriter,
    "jsonl": JsonlWriter,
}
"""Output formats by name; ``--format`` chooses one."""


def open_writer(name: str, stream: TextIO, **options: Any) -> DetectionWriter:
    """A writer for format ``name`` (one of :data:`WRITERS`)."""
    return WRITERS[name](stream, **options)
