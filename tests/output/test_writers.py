"""Each output format, written and read back."""

from __future__ import annotations

import csv
import io
import json

from scanfakes import make_event

from vedette.events import AttackRef, Detection
from vedette.output.writers import CSV_COLUMNS, WRITERS, open_writer


def detections() -> list[Detection]:
    first = make_event(
        "a.evtx", 1, Image="C:\\w\\powershell.exe", CommandLine="powershell -nop -w hidden"
    )
    second = make_event(
        "b.evtx",
        2,
        seconds=60,
        host="dc1.corp",
        Image="C:\\w\\procdump.exe",
        CommandLine="procdump -ma lsass.exe",
    )
    return [
        Detection(
            "r1",
            "Hidden PowerShell",
            "medium",
            first,
            status="test",
            attack=(AttackRef("T1059.001", "PowerShell", ("execution",)),),
            matched=("sel",),
        ),
        Detection(
            "r2",
            "LSASS dump, with comma",
            "critical",
            second,
            status="stable",
            tags=("attack.t1003.001",),
            matched=("sel", "filter"),
        ),
    ]


def write(name: str, items: list[Detection], **options: object) -> str:
    stream = io.StringIO()
    writer = open_writer(name, stream, **options)
    for item in items:
        writer.write(item)
    writer.close()
    return stream.getvalue()


def test_registry_names_every_format() -> None:
    assert set(WRITERS) == {"table", "csv", "json", "jsonl"}


def test_jsonl_is_one_object_per_line() -> None:
    text = write("jsonl", detections())
    rows = [json.loads(line) for line in text.splitlines()]
    assert [r["rule_id"] for r in rows] == ["r1", "r2"]
    assert rows[1]["host"] == "dc1.corp"
    assert write("jsonl", []) == ""


def test_json_is_an_array_even_when_empty() -> None:
    assert [r["rule_title"] for r in json.loads(write("json", detections()))] == [
        "Hidden PowerShell",
        "LSASS dump, with comma",
    ]
    assert json.loads(write("json", [])) == []


def test_csv_round_trips_with_header_and_event_json() -> None:
    rows = list(csv.DictReader(io.StringIO(write("csv", detections()))))
    assert list(rows[0]) == list(CSV_COLUMNS)
    assert rows[1]["rule_title"] == "LSASS dump, with comma"
    assert rows[0]["attack_ids"] == "T1059.001" and rows[0]["attack_tactics"] == "execution"
    assert rows[1]["matched"] == "sel;filter"
    assert "cmd=procdump -ma lsass.exe" in rows[1]["key_fields"]
    assert json.loads(rows[0]["event"])["CommandLine"] == "powershell -nop -w hidden"
    assert rows[0]["timestamp"] == "2024-03-01T12:00:00Z"


def test_table_shows_time_host_level_title_technique_and_key_fields() -> None:
    text = write("table", detections(), color=False, width=200)
    assert "Time (UTC)" in text
    first = next(line for line in text.splitlines() if "Hidden PowerShell" in line)
    assert "2024-03-01 12:00:00" in first and "ws1" in first and "T1059.001" in first
    assert "cmd=powershell -nop -w hidden" in first
    assert "crit" in text and "dc1" in text


def test_table_streams_in_blocks_with_one_header() -> None:
    many = detections() * 250
    text = write("table", many, color=False, width=200, group=False, fold_seconds=0)
    assert text.count("Time (UTC)") == 1
    assert text.count("Hidden PowerShell") == 250


def test_table_says_so_when_nothing_fired() -> None:
    assert "No detections" in write("table", [], color=False, width=100)
