"""The reader registry: every log format registers one :class:`Reader` under its name.

Sniffing asks each registered reader how sure it is that a stream's first bytes are its format
(a score from 0, "not mine", to 100, "certainly mine", e.g. the EVTX magic) and picks the most
confident; a tie goes to the reader registered first. Registering a name twice is an error, so a
copy-pasted reader cannot silently replace another.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Iterator
from dataclasses import dataclass
from typing import ClassVar

from vedette.events import Event
from vedette.sources.inputs import Source
from vedette.sources.report import ReadReport

READERS: dict[str, Reader] = {}
"""Registered readers by format name (``"evtx"``, ``"json"``, ``"syslog"``, ...)."""

MIN_SNIFF_SCORE = 10
"""A best sniff score under this means the stream is no log Vedette knows."""


@dataclass(slots=True, frozen=True)
class ReadOptions:
    """Tuning shared by all readers."""

    threads: int = 0
    """Worker threads for readers that have them (EVTX); 0 lets the library use every core.
    Set 1 when many processes read in parallel."""


class Reader(ABC):
    """Reads one log format into normalised events.

    ``read`` must never raise for bad input: it reports what it skips on ``report`` and goes on.
    ``splittable`` readers are line oriented and accept ``Source`` byte ranges (``start``/``end``)
    so that one large file can be read by several workers.
    """

    name: ClassVar[str]
    splittable: ClassVar[bool] = False
    magic: ClassVar[bytes | None] = None
    """Bytes every stream of this format starts with; a match decides sniffing at once."""

    @abstractmethod
    def sniff(self, head: bytes, name: str) -> int:
        """Confidence (0-100) that a stream starting with ``head`` (file ``name``) is mine."""

    def can_split(self, head: bytes) -> bool:
        """True when a stream starting with ``head`` may be read in byte ranges."""
        return self.splittable

    @abstractmethod
    def read(self, source: Source, report: ReadReport, options: ReadOptions) -> Iterator[Event]:
        """Yield the events of ``source``; report skipped records on ``report``."""


def register(reader: Reader) -> Reader:
    """Add ``reader`` to :data:`READERS`; a duplicate name is a programming error."""
    if reader.name in READERS:
        raise ValueError(f"reader {reader.name!r} is already registered")
    READERS[reader.name] = reader
    return reader


def sniff_format(head: bytes, name: str) -> str | None:
    """Name of the reader most confident about ``head``, or None when no reader wants it."""
    for reader in READERS.values():
        if reader.magic is not None and head.startswith(reader.magic):
            return reader.name
    best_name: str | None = None
    best_score = MIN_SNIFF_SCORE - 1
    for reader in READERS.values():
        try:
            score = reader.sniff(head, name)
        except Exception:  # a sniffer bug must not stop a scan: that reader just declines
            score = 0
        if score > best_score:
            best_name, best_score = reader.name, score
    return best_name
