"""The terminal timeline: one row per event, the rules it matched, its evidence; repeats folded.

Columns: time, host, level, the event (channel or source and event id), rule, ATT&CK, key
fields, and the evidence (file and record id, or line) that lets a responder open the record.
Rows come from :class:`~vedette.output.timeline.RowBuilder` (one per event, repeats folded) and
are written as plain padded text with ANSI colour for the level: no layout engine per row, so
the table costs about what the JSONL writer costs. Every text from a log or a file name goes
through :func:`~vedette.output.safetext.printable` first.
"""

from __future__ import annotations

import os
import textwrap
from datetime import UTC, datetime
from typing import Any, TextIO

from rich.console import Console

from vedette.events import Detection
from vedette.output.safetext import printable
from vedette.output.timeline import DEFAULT_FOLD_SECONDS, Row, RowBuilder

VALUE_WIDTH = 160
"""Characters of one key-field value in the table (CSV and JSON keep everything)."""

LEVEL_STYLES: dict[str, str] = {
    "critical": "bold white on red",
    "high": "bold red",
    "medium": "yellow",
    "low": "cyan",
    "informational": "dim",
}

_ANSI: dict[str, str] = {
    "critical": "\x1b[1;37;41m",
    "high": "\x1b[1;31m",
    "medium": "\x1b[33m",
    "low": "\x1b[36m",
    "informational": "\x1b[2m",
}
_BOLD, _DIM, _RESET = "\x1b[1m", "\x1b[2m", "\x1b[0m"

LEVEL_LABELS: dict[str, str] = {
    "informational": "info",
    "critical": "crit",
    "medium": "med",
    "high": "high",
    "low": "low",
}

CHANNEL_LABELS: dict[str, str] = {
    "Security": "Sec",
    "System": "Sys",
    "Application": "App",
    "Microsoft-Windows-Sysmon/Operational": "Sysmon",
    "Microsoft-Windows-PowerShell/Operational": "PwSh",
    "PowerShellCore/Operational": "PwSh",
    "Windows PowerShell": "PwShClassic",
    "Microsoft-Windows-Windows Defender/Operational": "Defender",
    "Microsoft-Windows-TaskScheduler/Operational": "TaskSched",
    "Microsoft-Windows-WMI-Activity/Operational": "WMI",
    "Microsoft-Windows-Bits-Client/Operational": "BITS",
    "Microsoft-Windows-TerminalServices-LocalSessionManager/Operational": "RDP-LSM",
    "Microsoft-Windows-TerminalServices-RemoteConnectionManager/Operational": "RDP-RCM",
}
"""Short channel names, as Hayabusa abbreviates them; others keep their provider part."""

HOST_WIDTH = 15
"""A NetBIOS name is at most 15 characters: every short Windows host name fits unbroken."""

FIXED = {"time": 19, "host": HOST_WIDTH, "level": 4, "event": 14, "attack": 10}
GAP = "  "
ATTACK_MIN_WIDTH = 150
"""Narrower than this, the ATT&CK column is left out (the JSON outputs keep every id)."""
EVIDENCE_COLUMN_WIDTH = 160
"""Narrower than this, the event and evidence go on a line of their own under each row, so
rule titles and key fields keep room to be read."""


def make_console(stream: TextIO, *, color: bool | None = None, width: int | None = None) -> Console:
    """A rich console on ``stream`` (the summary's); colour follows the terminal unless forced."""
    return Console(
        file=stream,
        force_terminal=color,
        no_color=color is False,
        width=width,
        highlight=False,
        soft_wrap=False,
    )


def utc_text(when: datetime | None) -> str:
    """A time as ``YYYY-MM-DD HH:MM:SS`` in UTC (naive times are UTC), or ``-``."""
    if when is None:
        return "-"
    if when.tzinfo is not None:
        when = when.astimezone(UTC)
    return when.strftime("%Y-%m-%d %H:%M:%S")


def event_label(detection: Detection) -> str:
    """The event as a responder names it: ``Sec 4688``, ``Sysmon 1``, or the source format."""
    fields = detection.event.fields
    channel = fields.get("Channel")
    event_id = fields.get("EventID")
    if detection.kind == "correlation":
        return "correlation"
    if isinstance(channel, str) and channel:
        label = CHANNEL_LABELS.get(channel)
        if label is None:
            label = channel.split("/", 1)[0].removeprefix("Microsoft-Windows-")
        return f"{label} {event_id}" if event_id is not None else label
    source = detection.event.source
    name = source.format if source is not None else "-"
    return f"{name} {event_id}" if event_id is not None else name


def host_text(host: str | None) -> str:
    """The host's short name (``PC01`` for ``PC01.example.corp``); an IP address whole."""
    if not host:
        return "-"
    if host.replace(".", "").isdigit() or ":" in host:
        return host
    return host.split(".", 1)[0]


def evidence_text(detection: Detection) -> str:
    """File name and record id (``file.evtx #1234``) or line (``auth.log :17``)."""
    source = detection.event.source
    if source is None:
        return "-"
    name = os.path.basename(source.path.split("!", 1)[-1]) or source.path
    if source.record_id is not None:
        return f"{name} #{source.record_id}"
    if source.line is not None:
        return f"{name} :{source.line}"
    if source.offset is not None:
        return f"{name} @{source.offset}"
    return name


class TableWriter:
    """Writes the timeline as padded text rows; ``close`` prints the last rows and a footer."""

    def __init__(
        self,
        stream: TextIO,
        *,
        color: bool | None = None,
        width: int | None = None,
        group: bool = True,
        fold_seconds: float = DEFAULT_FOLD_SECONDS,
        **_: Any,
    ) -> None:
        self.stream = stream
        self.color = _isatty(stream) if color is None else color
        self.width = width or _terminal_width(stream)
        self.columns = _layout(self.width)
        self.evidence_line = not any(name == "evidence" for name, _ in self.columns)
        self._indent = sum(w for n, w in self.columns[:3]) + 3 * len(GAP)
        self.rows = RowBuilder(
            self._print_row, group=group, fold_seconds=fold_seconds, details_width=VALUE_WIDTH
        )
        self.count = 0
        self.printed = 0
        self.empty_message: str | None = "No detections."
        """Printed when nothing fired; None when nothing could be read either."""
        self._wrapped: dict[tuple[str, int], list[str]] = {}

    def write(self, detection: Detection) -> None:
        """Take one detection (in time order); its row is printed once it is complete."""
        self.count += 1
        self.rows.add(detection)

    def close(self) -> None:
        """Print the rows still held, then say how rows relate to detections."""
        self.rows.close()
        if self.count == 0:
            if self.empty_message:
                self.stream.write(self._paint(self.empty_message, "\x1b[32m") + "\n")
        elif self.printed != self.count:
            self.stream.write(
                self._paint(
                    f"{self.count:,} detections in {self.printed:,} rows: one row per event"
                    f" lists every rule it matched; {self.rows.folded:,} repeats folded"
                    " (--no-fold shows each, --format jsonl gives one detection per line)",
                    _DIM,
                )
                + "\n"
            )
        self.stream.flush()

    # -- rendering -----------------------------------------------------------------------

    def _print_row(self, row: Row) -> None:
        if self.printed == 0:
            self._print_header()
        cells = self._cells(row)
        height = max(len(lines) for lines, _ in cells)
        out = []
        for index in range(height):
            parts = []
            for (lines, styles), (_, width) in zip(cells, self.columns, strict=True):
                text = lines[index] if index < len(lines) else ""
                pad = " " * (width - len(text)) if len(text) < width else ""
                style = styles[index] if styles and index < len(styles) else ""
                parts.append(self._paint(text, style) + pad if style else text + pad)
            out.append(GAP.join(parts).rstrip())
        if self.evidence_line:
            text = printable(f"{event_label(row.head)}  " + "  ".join(self._evidence(row)))
            for line in _wrap_parts(text, max(self.width - self._indent, 20)):
                out.append(" " * self._indent + self._paint(line, _DIM))
        self.stream.write("\n".join(out) + "\n")
        self.printed += 1

    def _print_header(self) -> None:
        names = {
            "time": "Time (UTC)",
            "host": "Host",
            "level": "Lvl",
            "event": "Event",
            "rule": "Rule",
            "attack": "ATT&CK",
            "details": "Details",
            "evidence": "Evidence",
        }
        line = GAP.join(names[name].ljust(width) for name, width in self.columns).rstrip()
        self.stream.write(self._paint(line, _BOLD) + "\n")

    def _cells(self, row: Row) -> list[tuple[list[str], list[str] | None]]:
        head = row.head
        event = head.event
        widths = {**FIXED, "evidence": 16, **dict(self.columns)}
        time_lines = [utc_text(row.first)]
        if row.count > 1:
            last = utc_text(row.last)
            same_day = last[:10] == time_lines[0][:10]
            time_lines.append(f"x{row.count:,} to {last[11:] if same_day else last}")
        levels: list[str] = []
        level_styles: list[str] = []
        titles: list[str] = []
        attacks: list[str] = []
        for detection in row.detections:
            title = detection.rule_title
            if detection.kind != "sigma":
                title = f"[{detection.kind}] {title}"
            wrapped = self._wrap(printable(title), widths["rule"])
            titles.extend(wrapped)
            pad = [""] * (len(wrapped) - 1)
            levels.extend([LEVEL_LABELS.get(detection.level, detection.level[:4]), *pad])
            level_styles.extend([_ANSI.get(detection.level, ""), *pad])
            attack = detection.attack[0].technique_id if detection.attack else "-"
            if len(detection.attack) > 1:
                attack += "+"  # the first technique; the rest are in the JSON outputs
            attacks.extend([attack, *pad])
        evidence = self._evidence(row)
        cells: dict[str, tuple[list[str], list[str] | None]] = {
            "time": (time_lines, None),
            "host": (_fold(printable(host_text(event.host)), widths["host"]), None),
            "level": (levels, level_styles),
            "event": (_fold(printable(event_label(head)), widths["event"]), None),
            "rule": (titles, None),
            "attack": (attacks, None),
            "details": (_wrap_parts(printable(row.details) or "-", widths["details"]), None),
            "evidence": (
                [line for e in evidence for line in _wrap_parts(printable(e), widths["evidence"])],
                None,
            ),
        }
        return [cells[name] for name, _ in self.columns]

    def _evidence(self, row: Row) -> list[str]:
        evidence = [evidence_text(row.head)]
        if row.count > 1 and row.last_detection is not None:
            last_evidence = evidence_text(row.last_detection)
            name, _, where = last_evidence.rpartition(" ")
            if evidence[0].startswith(name + " ") and where:  # the same file: its record
                last_evidence = where
            if last_evidence != evidence[0]:
                evidence.append("to " + last_evidence)
        return evidence

    def _wrap(self, text: str, width: int) -> list[str]:
        key = (text, width)
        wrapped = self._wrapped.get(key)
        if wrapped is None:
            wrapped = textwrap.wrap(text, width, break_on_hyphens=False) or [""]
            if len(self._wrapped) < 10_000:  # rule titles repeat: wrap each once
                self._wrapped[key] = wrapped
        return wrapped

    def _paint(self, text: str, style: str) -> str:
        return f"{style}{text}{_RESET}" if self.color and style else text


def _layout(width: int) -> list[tuple[str, int]]:
    """Column names and widths for a line of ``width`` characters."""
    names = ["time", "host", "level", "event", "rule", "attack", "details", "evidence"]
    if width < ATTACK_MIN_WIDTH:
        names.remove("attack")
    if width < EVIDENCE_COLUMN_WIDTH:
        names.remove("event")
        names.remove("evidence")
    fixed = sum(FIXED[n] for n in names if n in FIXED)
    free = max(width - fixed - len(GAP) * (len(names) - 1), 60)
    share = 34 if "evidence" in names else 40
    rule = max(20, free * share // 100)
    evidence = max(16, free * 26 // 100) if "evidence" in names else 0
    details = max(20, free - rule - evidence)
    sizes = {**FIXED, "rule": rule, "details": details, "evidence": evidence}
    return [(name, sizes[name]) for name in names]


def _fold(text: str, width: int) -> list[str]:
    """``text`` cut into lines of ``width`` characters (nothing is dropped)."""
    if len(text) <= width:
        return [text]
    return [text[i : i + width] for i in range(0, len(text), width)]


def _wrap_parts(text: str, width: int) -> list[str]:
    """``text`` in lines of ``width``, broken between its space-separated parts where it can
    (``label=value`` pairs, a file name and its record id); a longer part is cut."""
    if len(text) <= width:
        return [text]
    lines: list[str] = []
    line = ""
    for part in text.split(" "):
        candidate = f"{line} {part}" if line else part
        if len(candidate) <= width:
            line = candidate
            continue
        if line.strip():
            lines.append(line.rstrip())
        pieces = _fold(part, width)
        lines.extend(pieces[:-1])
        line = pieces[-1]
    if line.strip():
        lines.append(line.rstrip())
    return lines or [""]


def _isatty(stream: TextIO) -> bool:
    try:
        return stream.isatty()
    except (AttributeError, ValueError):
        return False


def _terminal_width(stream: TextIO) -> int:
    try:
        return os.get_terminal_size(stream.fileno()).columns
    except (AttributeError, ValueError, OSError):
        return 200
