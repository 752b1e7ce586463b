"""What the scan reads: input planning and reading behind one small interface.

:class:`SourcesInput` is the real one, over ``vedette.sources`` (format sniffing, compressed
files, byte-range tasks for large line-oriented files). Tests use an in-memory input with the
same interface. Everything a worker receives (a :class:`ReadJob`) is picklable.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

from vedette.errors import ReadWarning
from vedette.events import Event

SPLIT_TARGET_BYTES = 32 * 1024 * 1024
"""Byte-range size for splitting large line-oriented files. Fixed, not derived from --jobs,
so that the task set (and so every line and offset reported) is the same for any --jobs."""


@dataclass(slots=True, frozen=True)
class ReadJob:
    """One unit of work for a worker: a file, or a byte range of a large file."""

    path: str
    size: int
    task: Any = None
    """The reader's own task object (``vedette.sources.ReadTask``), or None for the whole file."""
    stride: tuple[int, int] | None = None
    """``(k, n)``: read everything, match only batches k, k+n, k+2n, ... (see the runner)."""


@dataclass(slots=True)
class ReadSummary:
    """What a read report says, in the shape the scan summary needs."""

    events_by_format: dict[str, int] = field(default_factory=dict)
    files_by_format: dict[str, int] = field(default_factory=dict)
    warnings: list[ReadWarning] = field(default_factory=list)
    skipped_by_reason: dict[str, int] = field(default_factory=dict)

    @property
    def records_skipped(self) -> int:
        """Total records (or file parts) skipped."""
        return sum(self.skipped_by_reason.values())


class InputSource(Protocol):
    """Plans read jobs for input paths and reads them into event batches."""

    def plan(self, paths: Sequence[Path]) -> tuple[list[ReadJob], list[ReadWarning]]:
        """Jobs for every input file under ``paths``, and warnings for paths not readable."""
        ...

    def read(self, job: ReadJob, report: Any) -> Iterator[list[Event]]:
        """Event batches of one job; problems go into ``report``."""
        ...

    def new_report(self) -> Any:
        """An empty read report (picklable, mergeable)."""
        ...

    def merge(self, into: Any, other: Any) -> None:
        """Merge the report ``other`` into ``into``."""
        ...

    def summarize(self, report: Any) -> ReadSummary:
        """The scan-summary view of a report."""
        ...


def summarize_warnings(warnings: Sequence[ReadWarning]) -> dict[str, int]:
    """Records skipped per reason."""
    counts: dict[str, int] = {}
    for warning in warnings:
        counts[warning.reason] = counts.get(warning.reason, 0) + max(1, warning.records)
    return counts
