"""Text from logs and rules is shown literally, never as Rich markup (QA R1); summary times (R7)."""

from __future__ import annotations

import io
from datetime import UTC, datetime

from scanfakes import make_event

from vedette.errors import ReadWarning
from vedette.events import Detection
from vedette.output.table import TableWriter, make_console
from vedette.scan.stats import ScanStats
from vedette.scan.summary import render_summary


def hostile() -> list[Detection]:
    return [
        Detection("r1", "[bold]x", "high", make_event("a", 1, host="[/x]")),
        Detection("c1", "SSH after guessing", "high", make_event("a", 2), kind="correlation"),
        Detection("i1", "Bad IP [red]", "medium", make_event("a", 3, host="[b]h"), kind="intel"),
    ]


def test_table_shows_hosts_titles_and_kind_labels_literally() -> None:
    out = io.StringIO()
    writer = TableWriter(out, color=False, width=200)
    for detection in hostile():
        writer.write(detection)
    writer.close()
    text = out.getvalue()
    assert "[/x]" in text and "[bold]x" in text
    assert "[correlation] SSH after guessing" in text
    assert "[intel] Bad IP [red]" in text and "[b]h" in text


def test_summary_shows_hosts_titles_and_reasons_literally() -> None:
    stats = ScanStats(rules_loaded=1, jobs=1, inputs=["case"])
    stats.events_read = 3
    stats.add_skips({"json-parse": 1}, [ReadWarning(path="[/p].json", reason="json-parse", line=1)])
    for detection in hostile():
        stats.observe(detection)
    out = io.StringIO()
    render_summary(stats, make_console(out, color=False, width=200))
    text = out.getvalue()
    assert "[/x]" in text and "[bold]x" in text and "[b]h" in text
    assert "[correlation] SSH after guessing" in text
    assert "[/p].json" in text


def test_summary_time_range_has_the_table_precision() -> None:
    stats = ScanStats(rules_loaded=1, jobs=1, inputs=["case"])
    stats.events_read = 2
    stats.first_event = datetime(2026, 11, 20, 2, 10, 1, tzinfo=UTC)
    stats.last_event = datetime(2026, 11, 20, 3, 30, 0, 912000, tzinfo=UTC)
    out = io.StringIO()
    render_summary(stats, make_console(out, color=False, width=200))
    assert "events from 2026-11-20 02:10:01 to 2026-11-20 03:30:00 UTC" in out.getvalue()
