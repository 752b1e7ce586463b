"""QA: a file the reader rejects outright is a skip, not a file read (exit 2 must be reachable)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from vedette.cli.main import main
from vedette.sources import ReadReport, read_events

SYSMON = {
    "Event": {
        "System": {
            "Provider": {"#attributes": {"Name": "Microsoft-Windows-Sysmon"}},
            "EventID": 1,
            "Channel": "Microsoft-Windows-Sysmon/Operational",
            "Computer": "WS1",
            "TimeCreated": {"#attributes": {"SystemTime": "2025-01-01T00:00:00Z"}},
        },
        "EventData": {"Image": "C:\\Windows\\System32\\whoami.exe", "CommandLine": "whoami"},
    }
}


def test_json_forced_through_the_evtx_reader_is_not_a_file_read(tmp_path: Path) -> None:
    path = tmp_path / "sysmon.jsonl"
    path.write_text(json.dumps(SYSMON) + "\n")
    report = ReadReport()
    assert list(read_events(path, format="evtx", report=report)) == []
    assert report.files == {}
    assert [w.reason for w in report.warnings] == ["evtx-header"]


def test_empty_but_valid_log_and_partly_bad_log_still_count(tmp_path: Path) -> None:
    good = tmp_path / "sysmon.jsonl"
    good.write_text(json.dumps(SYSMON) + "\n{not json\n")
    report = ReadReport()
    events = [e for b in read_events(good, report=report) for e in b]
    assert len(events) == 1 and report.files == {"json": 1}
    assert report.warnings  # the bad line is reported, the file still counts as read


def test_scan_exits_2_when_forced_format_reads_nothing(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("VEDETTE_HOME", str(tmp_path / "home"))
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
    logs = tmp_path / "logs"
    logs.mkdir()
    (logs / "sysmon.jsonl").write_text(json.dumps(SYSMON) + "\n")
    argv = ["scan", str(logs), "--input-format", "evtx", "--no-progress", "--no-summary",
            "--jobs", "1", "-o", str(tmp_path / "out.txt")]  # fmt: skip
    assert main(argv) == 2
    assert "no input could be read" in capsys.readouterr().err
