"""The terminal timeline: one row per detection, level in colour, key fields beside it.

Rows are printed in blocks of :data:`BLOCK` so a scan with a million detections streams
instead of building one giant table; fixed column ratios keep the blocks aligned.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any, TextIO

from rich.console import Console
from rich.table import Table
from rich.text import Text

from vedette.events import Detection
from vedette.output.keyfields import key_fields_text

BLOCK = 200
VALUE_WIDTH = 160
"""Characters of one key-field value in the table (CSV and JSON keep everything)."""

LEVEL_STYLES: dict[str, str] = {
    "critical": "bold white on red",
    "high": "bold red",
    "medium": "yellow",
    "low": "cyan",
    "informational": "dim",
}

LEVEL_LABELS: dict[str, str] = {"informational": "info", "critical": "crit"}


def make_console(stream: TextIO, *, color: bool | None = None, width: int | None = None) -> Console:
    """A rich console on ``stream``; colour follows the terminal unless forced."""
    return Console(
        file=stream,
        force_terminal=color,
        no_color=color is False,
        width=width,
        highlight=False,
        soft_wrap=False,
    )


def level_text(level: str) -> Text:
    """A level name in its colour."""
    return Text(LEVEL_LABELS.get(level, level), style=LEVEL_STYLES.get(level, ""))


class TableWriter:
    """Streams detections as a rich table, :data:`BLOCK` rows at a time."""

    def __init__(
        self, stream: TextIO, *, color: bool | None = None, width: int | None = None, **_: Any
    ) -> None:
        self.console = make_console(stream, color=color, width=width)
        self.rows: list[Detection] = []
        self.count = 0
        self.empty_message: str | None = "No detections."
        """Printed when nothing fired; None when nothing could be read either."""

    def write(self, detection: Detection) -> None:
        """Queue a row; print when a block is full."""
        self.rows.append(detection)
        if len(self.rows) >= BLOCK:
            self._flush()

    def close(self) -> None:
        """Print the last block (or say that nothing fired)."""
        self._flush()
        if self.count == 0 and self.empty_message:
            self.console.print(self.empty_message, style="green")

    def _flush(self) -> None:
        if not self.rows:
            return
        table = self._table(header=self.count == 0)
        for detection in self.rows:
            table.add_row(*self._cells(detection))
        self.console.print(table)
        self.count += len(self.rows)
        self.rows = []

    def _table(self, *, header: bool) -> Table:
        table = Table(
            show_header=header,
            header_style="bold",
            box=None,
            expand=True,
            pad_edge=False,
            padding=(0, 1),
        )
        table.add_column("Time (UTC)", no_wrap=True, width=19)
        table.add_column("Host", no_wrap=True, ratio=2, overflow="ellipsis")
        table.add_column("Level", no_wrap=True, width=6)
        table.add_column("Rule", ratio=5, overflow="fold")
        table.add_column("ATT&CK", no_wrap=True, width=10, overflow="ellipsis")
        table.add_column("Details", ratio=8, overflow="fold")
        return table

    def _cells(self, detection: Detection) -> tuple[Text, ...]:
        # Every cell is a Text: host names, titles and values come from logs and rules, and a
        # plain str would be read as Rich markup ('[/x]' as a host name raised MarkupError).
        event = detection.event
        when = utc_text(event.timestamp)
        host = (event.host or "-").split(".", 1)[0] if event.host else "-"
        title = detection.rule_title
        if detection.kind != "sigma":
            title = f"[{detection.kind}] {title}"
        attack = detection.attack[0].technique_id if detection.attack else ""
        if len(detection.attack) > 1:
            attack += "+"  # the first technique; the rest are in the JSON outputs
        return (
            Text(when),
            Text(host),
            level_text(detection.level),
            Text(title),
            Text(attack or "-"),
            Text(key_fields_text(detection, width=VALUE_WIDTH)),
        )


def utc_text(when: datetime | None) -> str:
    """A time as ``YYYY-MM-DD HH:MM:SS`` in UTC (naive times are UTC), or ``-``."""
    if when is None:
        return "-"
    if when.tzinfo is not None:
        when = when.astimezone(UTC)
    return when.strftime("%Y-%m-%d %H:%M:%S")
