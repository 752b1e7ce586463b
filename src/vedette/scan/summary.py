"""The scan summary for a human (rich) and for a script (``--summary-json``)."""

from __future__ import annotations

from pathlib import Path

import orjson
from rich.console import Console, ConsoleOptions, RenderResult
from rich.table import Table
from rich.text import Text

from vedette.events import LEVELS
from vedette.output.safetext import printable
from vedette.output.table import LEVEL_STYLES, utc_text
from vedette.scan.stats import EXAMPLES, ScanStats

TOP = 10
NOISY_SHARE = 10
"""A rule with at least 1/NOISY_SHARE of all detections is named with the option that hides it."""


def write_summary_json(stats: ScanStats, path: Path) -> None:
    """Write the machine-readable summary to ``path``."""
    path.write_bytes(orjson.dumps(stats.to_dict(), option=orjson.OPT_INDENT_2) + b"\n")


def render_summary(stats: ScanStats, console: Console) -> None:
    """Print the human summary."""
    console.print()
    console.rule("[bold]vedette scan summary", align="left")
    for part in _sections(stats):
        console.print(part)


def _sections(stats: ScanStats) -> list[_Section | Text]:
    parts: list[_Section | Text] = [_headline(stats), _inputs(stats)]
    if stats.records_skipped or stats.warnings_total:
        parts.append(_skipped(stats))
    parts.append(_rules(stats))
    if stats.detections:
        parts.extend((_levels(stats), _top_rules(stats), _top_hosts(stats)))
        if stats.by_tactic:
            parts.append(_tactics(stats))
    parts.extend(Text(printable(note), style="yellow") for note in stats.notes)
    return parts


def _headline(stats: ScanStats) -> Text:
    text = Text()
    text.append(f"{stats.events_read:,}", style="bold")
    text.append(f" events from {_plural(stats.files_read, 'file')} in ")
    text.append(f"{stats.elapsed_seconds:.1f} s", style="bold")
    text.append(
        f" ({stats.events_per_second:,.0f} events/s, {_plural(stats.jobs, 'job')},"
        f" rules loaded in {stats.load_seconds:.1f} s); "
    )
    text.append(_plural(stats.detections, "detection"), style="bold")
    if stats.first_event is not None and stats.last_event is not None:
        # One precision, the table's: seconds, UTC (the JSON summary keeps full ISO 8601).
        first, last = utc_text(stats.first_event), utc_text(stats.last_event)
        text.append(f"\nevents from {first} to {last} UTC")
    return text


class _Section:
    """A heading, its table, and example lines under the table."""

    def __init__(self, heading: Text, table: Table) -> None:
        self.heading = heading
        self.table = table
        self.notes: list[Text] = []

    def add_row(self, *cells: str | Text) -> None:
        # Strings become Text: rule titles, host names and reasons are data, never Rich markup.
        # Control characters from logs and file names are shown as escapes, never obeyed.
        self.table.add_row(
            *(Text(printable(cell)) if isinstance(cell, str) else cell for cell in cells)
        )

    def add_note(self, text: str) -> None:
        self.notes.append(Text(f"  {printable(text)}", style="dim"))

    def __rich_console__(self, console: Console, options: ConsoleOptions) -> RenderResult:
        yield self.heading
        yield self.table
        yield from self.notes


def _plural(count: int, noun: str) -> str:
    return f"{count:,} {noun}" + ("" if count == 1 else "s")


def _table(title: str, *columns: str, header: bool = True) -> _Section:
    table = Table(box=None, padding=(0, 2), show_header=header, header_style="dim")
    for index, name in enumerate(columns):
        table.add_column(name, justify="right" if index else "left")
    return _Section(Text(title, style="bold"), table)


def _inputs(stats: ScanStats) -> _Section:
    table = _table("Input", "format", "files", "events")
    formats = sorted(set(stats.files_by_format) | set(stats.events_by_format))
    for name in formats:
        table.add_row(
            name,
            f"{stats.files_by_format.get(name, 0):,}",
            f"{stats.events_by_format.get(name, 0):,}",
        )
    if not formats:
        table.add_row("(nothing readable)", "0", "0")
    return table


def _skipped(stats: ScanStats) -> _Section:
    table = _table(f"Skipped: {stats.records_skipped:,} records or parts", "reason", "count")
    for reason, count in sorted(stats.skipped_by_reason.items(), key=lambda kv: -kv[1]):
        table.add_row(reason, f"{count:,}")
    for warning in stats.skipped_examples[:EXAMPLES]:
        table.add_note(f"e.g. {warning}")
    return table


def _rules(stats: ScanStats) -> _Section:
    table = _table("Rules", "", "", header=False)
    table.add_row("loaded", f"{stats.rules_loaded:,}")
    if stats.correlation_rules:
        table.add_row("correlation rules", f"{stats.correlation_rules:,}")
    if stats.indicators_loaded:
        table.add_row("indicators", f"{stats.indicators_loaded:,}")
    style = "yellow" if stats.rule_errors else ""
    table.add_row(Text("not loaded", style=style), Text(f"{stats.rules_not_loaded:,}", style=style))
    for error in stats.rule_errors[:EXAMPLES]:
        table.add_note(f"e.g. {error}")
    if stats.rule_errors:
        table.add_note("details of every rule not loaded: vedette rules check PATH")
    return table


def _levels(stats: ScanStats) -> _Section:
    table = _table("Detections by level", "level", "count")
    for level in reversed(LEVELS):
        if stats.by_level[level]:
            table.add_row(
                Text(level, style=LEVEL_STYLES.get(level, "")), f"{stats.by_level[level]:,}"
            )
    return table


def _top_rules(stats: ScanStats) -> _Section:
    table = _table("Noisiest rules", "rule", "level", "count", "share")
    top = stats.top_rules(TOP)
    for fired in top:
        label = fired.title if fired.kind == "sigma" else f"[{fired.kind}] {fired.title}"
        table.add_row(
            label,
            Text(fired.level, style=LEVEL_STYLES.get(fired.level, "")),
            f"{fired.count:,}",
            f"{100 * fired.count / max(stats.detections, 1):.0f}%",
        )
    noisy = [f for f in top if f.kind == "sigma" and f.count * NOISY_SHARE >= stats.detections]
    if noisy:
        hide = " ".join(f"--exclude-rule {f.rule_id}" for f in noisy)
        table.add_note(f"hide the noisiest (each {100 // NOISY_SHARE}% or more of all): {hide}")
    return table


def _top_hosts(stats: ScanStats) -> _Section:
    table = _table("Top hosts", "host", "detections")
    for host, count in stats.by_host.most_common(TOP):
        table.add_row(host, f"{count:,}")
    return table


def _tactics(stats: ScanStats) -> _Section:
    table = _table("ATT&CK tactics seen", "tactic", "detections")
    for tactic, count in stats.by_tactic.most_common():
        table.add_row(tactic, f"{count:,}")
    return table
