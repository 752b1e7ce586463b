"""What the forwarder has done so far, as one line for its standard error."""

from __future__ import annotations

from dataclasses import dataclass

from vedette.forward.state import Backlog


def _plural(count: int, word: str, many: str | None = None) -> str:
    return f"{count:,} {word if count == 1 else (many or word + 's')}"


@dataclass(slots=True)
class Progress:
    """Counters since this process started."""

    records_read: int = 0
    records_sent: int = 0
    records_duplicate: int = 0
    batches_rejected: int = 0
    generations: int = 0
    lost_files: int = 0
    centre: str = "not contacted yet"

    def line(self, files: int, backlog: Backlog, rejected_total: int) -> str:
        """``vedette forward: 3 files, 4,000 records read, ... backlog ..., centre ok``."""
        parts = [
            _plural(files, "file"),
            f"{self.records_read:,} records read",
            f"{self.records_sent:,} sent",
            f"{self.records_duplicate:,} already at the centre",
            f"backlog {_plural(backlog.batches, 'batch', 'batches')} / "
            f"{_plural(backlog.records, 'record')} ({backlog.bytes / 1024:,.0f} KiB gzip)",
        ]
        if self.generations:
            parts.append(f"{self.generations:,} truncated or replaced files read again")
        if rejected_total:
            parts.append(
                f"{_plural(rejected_total, 'batch', 'batches')} refused by the centre (kept aside)"
            )
        if self.lost_files:
            parts.append(f"{_plural(self.lost_files, 'file')} gone before read to the end")
        return f"vedette forward: {', '.join(parts)}; centre {self.centre}"
