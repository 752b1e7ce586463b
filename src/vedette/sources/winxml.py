"""Windows events exported as XML (``wevtutil qe ... /f:xml``, Event Viewer "Save as XML").

Sample (one event of a ``<Events>`` export, shortened)::

    <Event xmlns="http://schemas.microsoft.com/win/2004/08/events/event"><System><Provider
    Name="Microsoft-Windows-Security-Auditing"/><EventID>4688</EventID>...<Channel>Security</Channel>
    <Computer>WS01</Computer></System><EventData><Data Name="NewProcessName">C:\\x.exe</Data>...

Schema: https://learn.microsoft.com/en-us/windows/win32/wes/eventschema-schema

The file is parsed incrementally (one ``<Event>`` at a time, then freed) and every event is
flattened like an EVTX record. A wevtutil export without a root element (events one after
another) is wrapped so it parses. Malformed XML ends the file with a warning at its line; the
events before it are kept.
"""

from __future__ import annotations

import io
from collections.abc import Iterator
from typing import IO
from xml.etree import ElementTree

from vedette.events import Event, SourceRef
from vedette.normalize.timeparse import parse_timestamp
from vedette.normalize.winevent import (
    classify_windows_event,
    event_element_record,
    flatten_windows_event,
)
from vedette.sources.inputs import Source, read_head
from vedette.sources.registry import Reader, ReadOptions, register
from vedette.sources.report import ReadReport

_NAMESPACE = b"http://schemas.microsoft.com/win/2004/08/events/event"


class _Wrapped(io.RawIOBase):
    """``<Events>`` + stream + ``</Events>``: wevtutil writes events without a root element."""

    def __init__(self, stream: IO[bytes]) -> None:
        self._parts: list[bytes] = [b"<Events>"]
        self._stream: IO[bytes] | None = stream

    def readable(self) -> bool:
        return True

    def readinto(self, buffer: memoryview) -> int:  # type: ignore[override]
        while True:
            if self._parts:
                part = self._parts.pop(0)
            elif self._stream is not None:
                part = self._stream.read(len(buffer))
                if not part:
                    self._stream = None
                    part = b"</Events>"
            else:
                return 0
            if part:
                size = min(len(buffer), len(part))
                buffer[:size] = part[:size]
                if size < len(part):
                    self._parts.insert(0, part[size:])
                return size


class WindowsXmlReader(Reader):
    """Windows Event XML exports."""

    name = "winxml"

    def sniff(self, head: bytes, name: str) -> int:
        text = head.lstrip()
        if text[:1] != b"<" or b"<Event" not in head:
            return 0
        return 90 if _NAMESPACE in head or b"<System>" in head else 0

    def read(self, source: Source, report: ReadReport, options: ReadOptions) -> Iterator[Event]:
        head = read_head(source, 4096).lstrip()
        rooted = head.startswith(b"<?xml") or head.startswith(b"<Events")
        display = source.display
        count = 0
        with source.open() as stream:
            feed: IO[bytes] = stream if rooted else io.BufferedReader(_Wrapped(stream))
            try:
                root: ElementTree.Element | None = None
                for kind, element in ElementTree.iterparse(feed, events=("start", "end")):
                    if root is None:
                        root = element
                    if kind != "end" or element.tag.rsplit("}", 1)[-1] != "Event":
                        continue
                    fields = flatten_windows_event(event_element_record(element))
                    if element is not root:
                        root.clear()  # memory stays bounded: drop the events already read
                    count += 1
                    record_id = fields.get("EventRecordID")
                    computer = fields.get("Computer")
                    yield Event(
                        fields=fields,
                        logsource=classify_windows_event(fields),
                        timestamp=parse_timestamp(fields.get("TimeCreated")),
                        host=computer if isinstance(computer, str) else None,
                        source=SourceRef(
                            display,
                            self.name,
                            record_id=record_id if isinstance(record_id, int) else None,
                        ),
                    )
            except ElementTree.ParseError as exc:
                line = exc.position[0]
                report.warn(display, "xml-parse", f"{exc} (after {count} events)",
                            line=line if rooted else None)  # fmt: skip


register(WindowsXmlReader())
