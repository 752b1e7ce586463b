"""QA: `vedette intel sweep` as a responder uses it: piped tables, time order, unreadable input."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from vedette.cli.main import main


def _dns_event(when: str, query: str) -> str:
    return json.dumps({
        "Event": {
            "System": {
                "Provider": {"#attributes": {"Name": "Microsoft-Windows-Sysmon"}},
                "EventID": 22,
                "Channel": "Microsoft-Windows-Sysmon/Operational",
                "Computer": "WS1.corp.example",
                "TimeCreated": {"#attributes": {"SystemTime": when}},
            },
            "EventData": {"QueryName": query, "Image": "C:\\Users\\Public\\[x].exe"},
        }
    })  # fmt: skip


def test_sweep_table_is_a_readable_timeline_when_piped(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("COLUMNS", raising=False)  # pytest-xdist workers set COLUMNS=80
    # Two files whose events are in reverse order: the table must still be in time order.
    (tmp_path / "a-late.jsonl").write_text(_dns_event("2025-01-02T10:00:00Z", "b.evil.example"))
    (tmp_path / "b-early.jsonl").write_text(_dns_event("2025-01-01T09:00:00Z", "a.evil.example"))
    feed = tmp_path / "feed.txt"
    feed.write_text("evil.example\n")
    assert main(["intel", "sweep", "--intel", str(feed), str(tmp_path / "a-late.jsonl"),
                 str(tmp_path / "b-early.jsonl"), "--no-cache"]) == 0  # fmt: skip
    captured = capsys.readouterr()
    # Full UTC times (same "Z" form as the scan's JSONL), not squeezed into 80 columns.
    early = captured.out.index("2025-01-01T09:00:00Z")
    late = captured.out.index("2025-01-02T10:00:00Z")
    assert early < late
    assert "QueryName=a.evil.example" in captured.out
    assert "2 events read" in captured.err


def test_sweep_jsonl_times_are_utc_with_z(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    logs = tmp_path / "dns.jsonl"
    logs.write_text(_dns_event("2025-01-01T09:00:00.5Z", "x.evil.example"))
    feed = tmp_path / "feed.txt"
    feed.write_text("evil.example\n")
    assert main(["intel", "sweep", "--intel", str(feed), str(logs), "--jsonl", "--no-cache"]) == 0
    line = json.loads(capsys.readouterr().out.splitlines()[0])
    assert line["timestamp"] == "2025-01-01T09:00:00.500000Z"


def test_sweep_of_nothing_readable_is_not_an_all_clear(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    logs = tmp_path / "triage"
    logs.mkdir()
    (logs / "empty.log").write_bytes(b"")
    (logs / "blob.bin").write_bytes(bytes(range(256)) * 8)
    feed = tmp_path / "feed.txt"
    feed.write_text("evil.example\n")
    assert main(["intel", "sweep", "--intel", str(feed), str(logs), "--no-cache"]) == 2
    err = capsys.readouterr().err
    assert "0 events read" in err and "empty 1" in err and "not-a-log 1" in err
    assert "no events could be read" in err


def test_sweep_table_shows_host_and_values_literally(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("COLUMNS", raising=False)
    # Host names come from the logs (an attacker can choose them): never Rich markup.
    logs = tmp_path / "dns.jsonl"
    logs.write_text(
        _dns_event("2025-01-01T09:00:00Z", "x.evil.example").replace("WS1.corp.example", "[/x]")
    )
    feed = tmp_path / "feed.txt"
    feed.write_text("evil.example\n")
    assert main(["intel", "sweep", "--intel", str(feed), str(logs), "--no-cache"]) == 0
    assert "[/x]" in capsys.readouterr().out
