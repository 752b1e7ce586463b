"""EVTX header problems are reported in words a responder can act on (QA R8, R13)."""

from __future__ import annotations

from pathlib import Path

from datasets import dataset
from vedette.sources import ReadReport, read_events


def header_warning(path: Path, *, format: str | None = "evtx") -> str:
    report = ReadReport()
    events = [e for batch in read_events(path, format=format, report=report) for e in batch]
    assert events == []
    (warning,) = [w for w in report.warnings if w.reason == "evtx-header"]
    return warning.detail


def test_a_file_shorter_than_the_header_says_truncated(tmp_path: Path) -> None:
    path = tmp_path / "h.evtx"
    path.write_bytes(b"ElfFile\x00")
    detail = header_warning(path)
    assert detail == "file is 8 bytes, shorter than an EVTX header (4,096 bytes): truncated copy?"


def test_a_truncated_real_file_says_its_size(tmp_path: Path) -> None:
    sample = dataset(
        "evtx-attack-samples", "Credential Access", "sysmon_10_1_memdump_comsvcs_minidump.evtx"
    )
    path = tmp_path / "cut.evtx"
    path.write_bytes(sample.read_bytes()[:1000])
    assert header_warning(path).startswith("file is 1,000 bytes, shorter than an EVTX header")


def test_a_forced_format_on_json_says_what_the_file_starts_with(tmp_path: Path) -> None:
    path = tmp_path / "sysmon.jsonl"
    path.write_text('{"Event": {"System": {}}}\n')
    detail = header_warning(path)
    assert detail == "not an EVTX file (starts with '{\"Event\"'); wrong --input-format?"
