"""What a read did: events and files per format, and every record it had to skip.

A :class:`ReadReport` travels with a read. Workers in other processes each fill their own and the
parent merges them (the report is a plain picklable dataclass). Warnings are counted without
limit, but only the first ``max_kept`` are kept with their detail, so a file of garbage cannot
exhaust memory through its warnings.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from vedette.errors import ReadWarning


@dataclass(slots=True)
class ReadReport:
    """Counts of events and files per format, and warnings (counted by reason)."""

    max_kept: int = 1000
    events: dict[str, int] = field(default_factory=dict)
    files: dict[str, int] = field(default_factory=dict)
    warnings: list[ReadWarning] = field(default_factory=list)
    skipped: dict[str, int] = field(default_factory=dict)
    """reason -> number of records (or files) skipped or degraded for that reason."""
    dropped_warnings: int = 0
    """Warnings counted in ``skipped`` but not kept in ``warnings`` (over ``max_kept``)."""

    def add_events(self, fmt: str, count: int) -> None:
        """Count ``count`` events read in format ``fmt``."""
        if count:
            self.events[fmt] = self.events.get(fmt, 0) + count

    def add_file(self, fmt: str) -> None:
        """Count one file (or archive member, or byte range start) read as ``fmt``."""
        self.files[fmt] = self.files.get(fmt, 0) + 1

    def add(self, warning: ReadWarning) -> None:
        """Record one warning."""
        self.skipped[warning.reason] = self.skipped.get(warning.reason, 0) + warning.records
        if len(self.warnings) < self.max_kept:
            self.warnings.append(warning)
        else:
            self.dropped_warnings += 1

    def warn(
        self,
        path: str,
        reason: str,
        detail: str = "",
        *,
        offset: int | None = None,
        line: int | None = None,
        records: int = 1,
    ) -> None:
        """Record a warning built from its parts."""
        self.add(
            ReadWarning(
                path=path, reason=reason, detail=detail, offset=offset, line=line, records=records
            )
        )

    def merge(self, other: ReadReport) -> None:
        """Add everything ``other`` counted (e.g. a worker's report) to this report."""
        for fmt, count in other.events.items():
            self.events[fmt] = self.events.get(fmt, 0) + count
        for fmt, count in other.files.items():
            self.files[fmt] = self.files.get(fmt, 0) + count
        for reason, count in other.skipped.items():
            self.skipped[reason] = self.skipped.get(reason, 0) + count
        room = max(0, self.max_kept - len(self.warnings))
        self.warnings.extend(other.warnings[:room])
        self.dropped_warnings += other.dropped_warnings + max(0, len(other.warnings) - room)

    @property
    def total_events(self) -> int:
        """Events read, all formats together."""
        return sum(self.events.values())

    @property
    def total_skipped(self) -> int:
        """Records or files skipped or degraded, all reasons together."""
        return sum(self.skipped.values())

    def summary(self) -> str:
        """One human line: events per format and skips per reason."""
        read = ", ".join(f"{n} {fmt}" for fmt, n in sorted(self.events.items())) or "none"
        text = f"{self.total_events} events read ({read})"
        if self.skipped:
            why = ", ".join(f"{n} {reason}" for reason, n in sorted(self.skipped.items()))
            text += f"; skipped or degraded: {why}"
        return text
