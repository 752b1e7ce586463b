"""Rows of the terminal timeline: one per event (every rule it matched), repeats folded.

Detections arrive in time order. :class:`RowBuilder` first gathers the detections of one event
(several rules on one event make one row listing them all, as Chainsaw and Hayabusa do), then
folds repeated rows: the same rules on the same host with the same key fields, each within
``window`` of the previous one, become one row with a count, a first and a last time. Memory
holds only the rows still open, those whose window has not passed.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta

from vedette.events import Detection
from vedette.output.keyfields import key_fields_text

DEFAULT_FOLD_SECONDS = 60.0
"""A repeat at most this long after the previous one joins its row."""


@dataclass(slots=True)
class Row:
    """One line of the timeline: an event, the rules it matched, and its folded repeats."""

    detections: list[Detection]
    details: str
    first: datetime | None
    last: datetime | None
    count: int = 1
    last_detection: Detection | None = None
    key: tuple[object, ...] = field(default=())

    @property
    def head(self) -> Detection:
        """The first detection (its event is the row's evidence)."""
        return self.detections[0]


def event_key(detection: Detection) -> tuple[object, ...]:
    """Which event a detection is about: its source, record, line and offset."""
    source = detection.event.source
    if source is None:
        return ("object", id(detection.event))
    return (source.path, source.record_id, source.line, source.offset, detection.event.host)


class RowBuilder:
    """Turns ordered detections into rows handed to ``emit``; call :meth:`close` at the end."""

    def __init__(
        self,
        emit: Callable[[Row], None],
        *,
        group: bool = True,
        fold_seconds: float = DEFAULT_FOLD_SECONDS,
        details_width: int = 400,
    ) -> None:
        self.emit = emit
        self.group = group
        self.window = timedelta(seconds=fold_seconds) if fold_seconds > 0 else None
        self.details_width = details_width
        self._moment: datetime | None = None
        self._same_moment: dict[tuple[object, ...], list[Detection]] = {}
        self._open: dict[tuple[object, ...], Row] = {}
        self._queue: deque[Row] = deque()
        self.rows = 0
        self.folded = 0

    def add(self, detection: Detection) -> None:
        """Take the next detection (in time order)."""
        if not self.group:
            self._row([detection])
            return
        when = detection.event.timestamp
        if self._same_moment and (when is None or when != self._moment):
            self._flush_moment()
        self._moment = when
        key = event_key(detection)
        found = self._same_moment.get(key)
        if found is None:
            self._same_moment[key] = [detection]
        elif all(d.rule_id != detection.rule_id or d.kind != detection.kind for d in found):
            found.append(detection)
        else:  # the same rule twice on one event (two correlation windows): its own row
            self._same_moment[(*key, len(self._same_moment))] = [detection]

    def close(self) -> None:
        """Emit every row still held."""
        self._flush_moment()
        while self._queue:
            self._pop()

    def _flush_moment(self) -> None:
        moment, self._same_moment = self._same_moment, {}
        for detections in moment.values():
            self._row(detections)

    def _row(self, detections: list[Detection]) -> None:
        head = detections[0]
        when = head.event.timestamp
        if when is not None and when.tzinfo is None:  # naive times are UTC (events.iso_utc)
            when = when.replace(tzinfo=UTC)
        details = key_fields_text(head, width=self.details_width)
        key = (
            tuple((d.kind, d.rule_id) for d in detections),
            head.event.host,
            details,
        )
        if self.window is not None and when is not None:
            row = self._open.get(key)
            if row is not None and row.last is not None and when - row.last <= self.window:
                row.count += 1
                row.last = when
                row.last_detection = head
                self.folded += 1
                return
            # Rows whose window has passed can no longer grow: print them, in order.
            while self._queue and self._closed(self._queue[0], when):
                self._pop()
        row = Row(detections, details, when, when, key=key)
        self._queue.append(row)
        if self.window is not None and when is not None:
            self._open[key] = row
        else:
            while self._queue:
                self._pop()

    def _closed(self, row: Row, now: datetime) -> bool:
        assert self.window is not None
        return row.last is None or now - row.last > self.window

    def _pop(self) -> None:
        row = self._queue.popleft()
        if self._open.get(row.key) is row:
            del self._open[row.key]
        self.rows += 1
        self.emit(row)
