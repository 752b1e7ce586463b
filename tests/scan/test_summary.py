"""The summary: the JSON keys scripts rely on, and the human rendering."""

from __future__ import annotations

import io
import json
from pathlib import Path

from scanfakes import make_event

from vedette.errors import ReadWarning, RuleLoadError
from vedette.events import AttackRef, Detection
from vedette.output.table import make_console
from vedette.scan.stats import ScanStats
from vedette.scan.summary import render_summary, write_summary_json

REQUIRED = {
    "events_read",
    "events_by_format",
    "records_skipped",
    "skipped_by_reason",
    "rules_loaded",
    "rules_not_loaded",
    "detections",
    "detections_by_level",
    "detections_by_rule",
    "elapsed_seconds",
}


def filled() -> ScanStats:
    stats = ScanStats(rules_loaded=120, jobs=2, inputs=["case"])
    stats.files_by_format = {"evtx": 3, "jsonl": 1}
    stats.events_by_format = {"evtx": 900, "jsonl": 100}
    stats.events_read = 1000
    stats.elapsed_seconds = 2.0
    stats.rule_errors = [RuleLoadError(path="bad.yml", reason="unknown modifier 'foo'", line=12)]
    stats.add_warnings([ReadWarning(path="x.evtx", reason="evtx-chunk", offset=4096, records=3)])
    stats.add_skips({"json-parse": 2}, [ReadWarning(path="y.json", reason="json-parse", line=7)])
    attack = (AttackRef("T1003.001", "LSASS Memory", ("credential-access",)),)
    for i in range(3):
        stats.observe(
            Detection("dump", "LSASS dump", "high", make_event("a", i, seconds=i), attack=attack)
        )
    stats.observe(Detection("who", "Whoami", "low", make_event("b", 9, host="dc1", seconds=30)))
    return stats


def test_summary_json_has_the_documented_keys(tmp_path: Path) -> None:
    path = tmp_path / "s.json"
    write_summary_json(filled(), path)
    data = json.loads(path.read_text())
    assert set(data) >= REQUIRED
    assert data["events_read"] == 1000 and data["events_by_format"] == {"evtx": 900, "jsonl": 100}
    assert data["records_skipped"] == 5 and data["skipped_by_reason"] == {
        "evtx-chunk": 3,
        "json-parse": 2,
    }
    assert data["rules_not_loaded"] == 1 and data["rule_errors"][0]["line"] == 12
    assert data["detections"] == 4
    assert data["detections_by_level"] == {"low": 1, "high": 3}
    assert data["detections_by_rule"] == {"dump": 3, "who": 1}
    assert data["attack_tactics"] == {"credential-access": 3}
    assert data["time_range"] == {"first": None, "last": None}
    assert data["detection_time_range"]["last"] == "2024-03-01T12:00:30Z"
    assert data["events_per_second"] == 500.0


def test_rendered_summary_names_every_section() -> None:
    out = io.StringIO()
    render_summary(filled(), make_console(out, color=False, width=120))
    text = out.getvalue()
    for needle in (
        "1,000 events from 4 files",
        "500 events/s",
        "evtx",
        "jsonl",
        "evtx-chunk",
        "x.evtx@4096",
        "unknown modifier",
        "vedette rules check",
        "Detections by level",
        "LSASS dump",
        "Top hosts",
        "dc1",
        "credential-access",
    ):
        assert needle in text, needle
