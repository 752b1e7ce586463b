"""The shared vocabulary of every stage: Event, LogSource, SourceRef, Detection.

Readers produce :class:`Event` batches; the engine, the correlator and the indicator index
produce :class:`Detection` objects that point back at the event that caused them.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, cast


@dataclass(slots=True, frozen=True)
class LogSource:
    """Sigma logsource of an event.

    An event has one product and may belong to several services and categories: a Sysmon
    EventID 13 is both ``registry_event`` and ``registry_set``; a Security 4688 is service
    ``security`` and category ``process_creation``. A rule meets an event when every field the
    rule's logsource names is present in the event's logsource.
    """

    product: str | None = None
    services: frozenset[str] = frozenset()
    categories: frozenset[str] = frozenset()

    def admits(self, product: str | None, service: str | None, category: str | None) -> bool:
        """True when a rule with this (product, service, category) applies to the event."""
        if product is not None and product != self.product:
            return False
        if service is not None and service not in self.services:
            return False
        return category is None or category in self.categories


@dataclass(slots=True, frozen=True, init=False)
class SourceRef:
    """Where an event came from: file, format, and its record id, line or byte offset."""

    path: str
    format: str
    record_id: int | None = None
    line: int | None = None
    offset: int | None = None

    def __init__(
        self,
        path: str,
        format: str,
        record_id: int | None = None,
        line: int | None = None,
        offset: int | None = None,
    ) -> None:
        # Readers make one per event: the slots are set through their descriptors, a quarter
        # cheaper than the frozen dataclass __init__ (object.__setattr__ per field).
        _SET_PATH(self, path)
        _SET_FORMAT(self, format)
        _SET_RECORD_ID(self, record_id)
        _SET_LINE(self, line)
        _SET_OFFSET(self, offset)


_SET_PATH, _SET_FORMAT, _SET_RECORD_ID, _SET_LINE, _SET_OFFSET = (
    cast("Callable[[SourceRef, Any], None]", SourceRef.__dict__[name].__set__)
    for name in ("path", "format", "record_id", "line", "offset")
)


@dataclass(slots=True)
class Event:
    """One normalised event.

    ``fields`` is flat and uses Sigma's field taxonomy (Windows EventData beside System fields
    such as ``EventID``, ``Channel``, ``Computer``); values are str, int, float, bool, None or
    lists of those. ``timestamp`` is timezone-aware UTC when known.
    """

    fields: dict[str, Any]
    logsource: LogSource = LogSource()
    timestamp: datetime | None = None
    host: str | None = None
    source: SourceRef | None = None
    unit: str | None = None


@dataclass(slots=True, frozen=True)
class AttackRef:
    """An ATT&CK technique: id (``T1059.001``), name and tactic short names."""

    technique_id: str
    name: str = ""
    tactics: tuple[str, ...] = ()


@dataclass(slots=True)
class Detection:
    """A rule, correlation or indicator that fired on an event.

    ``kind`` is ``"sigma"``, ``"correlation"`` or ``"intel"``. ``matched`` names the detection
    selections (or indicator fields) that matched. ``extra`` carries kind-specific facts: for a
    correlation the group-by values, window, value and contributing events; for an indicator the
    indicator, its type, source and confidence.
    """

    rule_id: str
    rule_title: str
    level: str
    event: Event
    status: str | None = None
    tags: tuple[str, ...] = ()
    attack: tuple[AttackRef, ...] = ()
    matched: tuple[str, ...] = ()
    kind: str = "sigma"
    rule_name: str | None = None
    rule_path: str | None = None
    extra: dict[str, Any] = field(default_factory=dict)

    @property
    def timestamp(self) -> datetime | None:
        """Event time of the detection."""
        return self.event.timestamp


LEVELS: tuple[str, ...] = ("informational", "low", "medium", "high", "critical")
"""Sigma levels, lowest first; the index is the severity rank."""


def level_rank(level: str | None) -> int:
    """Severity rank of a Sigma level (unknown levels rank lowest)."""
    try:
        return LEVELS.index((level or "").lower())
    except ValueError:
        return -1


def iso_utc(when: datetime | None) -> str | None:
    """ISO 8601 in UTC with a ``Z`` suffix; naive times are taken as UTC."""
    if when is None:
        return None
    if when.tzinfo is None:
        when = when.replace(tzinfo=UTC)
    text = when.astimezone(UTC).isoformat()
    return text.removesuffix("+00:00") + "Z"
