"""EVTX files dropped into a watched folder: their events as JSON records the centre reads.

Events are read with :func:`vedette.sources.read_events` and sent as their flat fields: a
record with top-level ``EventID`` and ``Channel`` is the centre's ``windows_flat`` layout,
which keeps the fields as they are, so the centre sees the same fields, log source, time and
host as ``vedette scan`` reading the file (tests/forward/test_evtx_roundtrip.py).
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

from vedette.events import Event
from vedette.sources import ReadReport, read_events


def event_record(event: Event) -> dict[str, Any]:
    """One EVTX event as a JSON object in the ``windows_flat`` layout."""
    return dict(event.fields)


def evtx_records(path: Path, skip: int, report: ReadReport) -> Iterator[tuple[int, dict[str, Any]]]:
    """``(index, record)`` of every event of the file from index ``skip`` on, in file order."""
    index = 0
    for batch in read_events(path, format="evtx", report=report, threads=1):
        for event in batch:
            if index >= skip:
                yield index, event_record(event)
            index += 1
