"""JSON reader: every layout on real files, document streams, and bad input."""

from __future__ import annotations

import gzip
import json
import zipfile
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import evtx

from datasets import dataset
from vedette.sources import READERS, ReadReport, plan_read_tasks, read_task

OTRF = ("otrf-security-datasets", "datasets")


def _zip_lines(path: Path) -> int:
    with zipfile.ZipFile(path) as archive:
        (member,) = archive.namelist()
        return sum(1 for line in archive.open(member) if line.strip())


def _trimmed(fields: dict[str, Any]) -> dict[str, Any]:
    return {k: v.rstrip() if isinstance(v, str) else v for k, v in fields.items()}


def test_sigma_regression_json_matches_the_evtx_twin(read_all: Any) -> None:
    """The regression .json (concatenated pretty-printed objects) holds the same events as its
    .evtx twin, and both read into the same fields."""
    root = dataset("sigma", "regression_data")
    json_files = sorted(root.rglob("*.json"))
    assert json_files
    compared = 0
    for json_path in json_files[:25]:
        twin = json_path.with_suffix(".evtx")
        if not twin.exists():
            continue
        from_json, report = read_all(json_path)
        from_evtx, _ = read_all(twin)
        assert report.skipped == {}, json_path
        assert len(from_json) == sum(1 for _ in evtx.PyEvtxParser(str(twin)).records())
        # the regression .json was written by a tool that trims trailing blanks off strings
        assert [e.fields for e in from_json] == [_trimmed(e.fields) for e in from_evtx]
        assert [e.logsource for e in from_json] == [e.logsource for e in from_evtx]
        assert [e.timestamp for e in from_json] == [e.timestamp for e in from_evtx]
        compared += 1
    assert compared >= 10


def test_first_regression_object_fields(read_all: Any) -> None:
    root = dataset("sigma", "regression_data")
    path = next(root.rglob("f2e4b7d9-5c3a-4f8b-9e1d-7a6c2b3f4e5d.json"))
    events, report = read_all(path)
    assert report.skipped == {}
    first = events[0]
    assert first.fields["EventID"] == 11
    assert first.fields["Image"] == "C:\\Users\\xodih\\Downloads\\RedSun.exe"
    assert first.fields["Channel"] == "Microsoft-Windows-Sysmon/Operational"
    assert first.logsource.product == "windows"
    assert first.source is not None and first.source.line == 1
    assert first.source.record_id == 83239


def test_otrf_flat_windows_layout_in_zip(read_all: Any) -> None:
    path = dataset(*OTRF, "atomic", "windows", "credential_access", "host")
    path = path / "cmd_lsass_memory_dumpert_syscalls.zip"
    events, report = read_all(path)
    assert len(events) == _zip_lines(path)
    assert report.skipped == {}
    assert report.files == {"json": 1}
    sysmon = next(e for e in events if e.fields["EventID"] == 10)
    assert sysmon.fields["Channel"] == "Microsoft-Windows-Sysmon/Operational"
    assert sysmon.fields["Provider_Name"] == "Microsoft-Windows-Sysmon"
    assert sysmon.host == "WORKSTATION5"
    assert "process_access" in sysmon.logsource.categories
    assert sysmon.source is not None
    assert sysmon.source.path.endswith(
        ".zip!cmd_lsass_memory_dumpert_syscalls_2020-10-1822561997.json"
    )


def test_otrf_cloudtrail(read_all: Any) -> None:
    path = dataset(*OTRF, "atomic", "aws", "collection", "ec2_proxy_s3_exfiltration.zip")
    events, report = read_all(path)
    assert len(events) == _zip_lines(path)
    assert report.skipped == {}
    first = events[0]
    assert first.logsource.product == "aws"
    assert first.logsource.services == frozenset({"cloudtrail"})
    assert first.fields["userIdentity.userName"] == "pedro"
    assert first.fields["eventSource"] == "ec2.amazonaws.com"
    assert first.timestamp is not None and first.timestamp.tzinfo is UTC


def test_suricata_eve(read_all: Any) -> None:
    path = dataset("misc-logs", "suricata", "elastic-integrations", "test-eve-small.log")
    events, report = read_all(path)
    assert len(events) == sum(1 for line in path.read_bytes().splitlines() if line.strip())
    assert report.skipped == {}
    alert = events[1]
    assert alert.logsource.product == "suricata"
    assert alert.logsource.services == frozenset({"alert"})
    assert alert.fields["src_ip"] == "192.168.86.85"
    assert alert.fields["alert.action"] == "allowed"
    assert alert.timestamp == datetime(2018, 7, 5, 19, 7, 20, 910626, tzinfo=UTC)


def test_suricata_pretty_printed_and_dns_aliases(read_all: Any) -> None:
    root = dataset("misc-logs", "suricata", "telegraf-testdata", "plugins", "inputs", "suricata")
    events, report = read_all(root / "testdata" / "v2" / "dns.json")
    assert report.skipped == {}
    assert len(events) >= 1
    dns = events[0]
    assert dns.logsource.categories == frozenset({"dns"})
    assert dns.fields["query"] == dns.fields["dns.rrname"]


def test_zeek_ndjson_gzip(read_all: Any) -> None:
    path = dataset("misc-logs", "zeek", "zed-sample-data", "zeek-json", "dns.json.gz")
    events, report = read_all(path)
    with gzip.open(path) as handle:
        assert len(events) == sum(1 for line in handle if line.strip())
    assert report.skipped == {}
    first = events[0]
    assert first.logsource.product == "zeek"
    assert first.logsource.services == frozenset({"dns"})
    assert first.fields["query"] == "ise.wrccdc.org"
    assert first.fields["id.orig_h"] == "10.47.1.100"
    assert first.fields["record_type"] == "A"
    assert first.timestamp == datetime(2018, 3, 24, 17, 15, 20, 865716, tzinfo=UTC)


def test_winlogbeat_ecs_layout(tmp_path: Path, read_all: Any) -> None:
    record = {
        "@timestamp": "2024-01-02T03:04:05.678Z",
        "event": {"code": "4688", "provider": "Microsoft-Windows-Security-Auditing"},
        "host": {"name": "ws01.corp"},
        "message": "A new process has been created.",
        "winlog": {
            "channel": "Security",
            "computer_name": "WS01.corp",
            "event_id": 4688,
            "provider_name": "Microsoft-Windows-Security-Auditing",
            "record_id": 77,
            "event_data": {"NewProcessName": "C:\\Windows\\System32\\cmd.exe", "ProcessId": "0x4"},
            "process": {"pid": 4, "thread": {"id": 8}},
        },
    }
    path = tmp_path / "winlogbeat.ndjson"
    path.write_text(json.dumps(record) + "\n")
    events, report = read_all(path)
    assert report.skipped == {}
    (event,) = events
    assert event.fields["EventID"] == 4688
    assert event.fields["Channel"] == "Security"
    assert event.fields["NewProcessName"] == "C:\\Windows\\System32\\cmd.exe"
    assert event.host == "WS01.corp"
    # winlog.process is System/Execution: prefixed, beside EventData's ProcessId
    assert event.fields["ProcessId"] == "0x4"
    assert event.fields["Execution_ProcessID"] == 4 and event.fields["Execution_ThreadID"] == 8
    assert "ProcessID" not in event.fields and "ThreadID" not in event.fields
    assert event.source is not None and event.source.record_id == 77
    assert event.logsource.product == "windows"


def test_bad_lines_are_counted_and_the_rest_read(tmp_path: Path, read_all: Any) -> None:
    path = tmp_path / "mixed.json"
    good = json.dumps({"ts": 1700000000.5, "uid": "C1", "id.orig_h": "10.0.0.1"})
    path.write_bytes(
        (good + "\n").encode() * 3
        + b'{"ts": 17, "broken\n'
        + b"\x00\x01\x02\xff\xfe garbage\n"
        + b"42\n"
        + (good + "\n").encode() * 2
        + '{"ts": 1700000001, "uid": "C2", "note": "caf\xe9"}\n'.encode("latin-1")
    )
    events, report = read_all(path)
    assert len(events) == 6
    assert report.skipped.get("json-parse", 0) + report.skipped.get("binary", 0) == 2
    assert report.skipped["json-not-object"] == 1
    assert report.skipped["encoding"] == 1
    assert events[-1].fields["note"] == "café"
    lines = sorted(w.line for w in report.warnings if w.line is not None)
    assert lines[:3] == [4, 5, 6]


def test_corrupt_object_in_concatenated_stream(tmp_path: Path, read_all: Any) -> None:
    obj = {"Event": {"System": {"EventID": 1, "Channel": "Security"}, "EventData": {"A": "b"}}}
    pretty = json.dumps(obj, indent=2)
    text = pretty + "\n" + pretty[: len(pretty) // 2] + "\n" + pretty + "\n" + pretty + "\n"
    path = tmp_path / "concat.json"
    path.write_text(text)
    events, report = read_all(path)
    assert len(events) == 3
    assert report.skipped == {"json-parse": 1}


def test_top_level_array_and_records_wrapper(tmp_path: Path, read_all: Any) -> None:
    items = [{"eventSource": "iam.amazonaws.com", "eventName": f"E{i}"} for i in range(5)]
    array = tmp_path / "array.json"
    array.write_text(json.dumps(items, indent=1))
    events, report = read_all(array)
    assert [e.fields["eventName"] for e in events] == [f"E{i}" for i in range(5)]
    wrapped = tmp_path / "cloudtrail.json"
    wrapped.write_text(json.dumps({"Records": items}))
    events, report = read_all(wrapped)
    assert len(events) == 5 and report.skipped == {}
    assert all(e.logsource.services == frozenset({"cloudtrail"}) for e in events)


def test_utf16_with_bom(tmp_path: Path, read_all: Any) -> None:
    path = tmp_path / "utf16.json"
    line = json.dumps({"timestamp": "2024-01-01T00:00:00Z", "event_type": "dns", "x": "é"})
    path.write_bytes(("\n".join([line] * 4) + "\n").encode("utf-16"))
    events, report = read_all(path)
    assert len(events) == 4 and report.skipped == {}
    assert events[0].fields["x"] == "é"


def test_split_ndjson_reads_every_line_once(tmp_path: Path) -> None:
    path = tmp_path / "big.json"
    lines = [
        json.dumps({"ts": 1700000000 + i, "uid": f"C{i}", "pad": "x" * (i % 50)})
        for i in range(3000)
    ]
    path.write_text("\n".join(lines) + "\n")
    tasks = plan_read_tasks(path, target_bytes=7000)
    assert len(tasks) > 10
    assert all(task.format == "json" for task in tasks)
    report = ReadReport()
    seen = [e.fields["uid"] for task in tasks for b in read_task(task, report=report) for e in b]
    assert seen == [f"C{i}" for i in range(3000)]
    assert report.files == {"json": 1}
    assert report.events == {"json": 3000}


def test_json_reader_is_registered() -> None:
    assert "json" in READERS


def test_velociraptor_and_powershell_exports(tmp_path: Path, read_all: Any) -> None:
    velociraptor = {
        "System": {
            "Provider": {"Name": "Microsoft-Windows-Security-Auditing", "Guid": "{5484}"},
            "EventID": {"Value": 4688},
            "EventRecordID": 42,
            "Channel": "Security",
            "Computer": "WS01",
            "TimeCreated": {"SystemTime": 1700000000.5},
            "Execution": {"ProcessID": 4, "ThreadID": 8},
        },
        "EventData": {"NewProcessName": "C:\\Windows\\System32\\whoami.exe"},
    }
    powershell = {
        "Id": 4104,
        "LogName": "Microsoft-Windows-PowerShell/Operational",
        "ProviderName": "Microsoft-Windows-PowerShell",
        "MachineName": "WS02",
        "RecordId": 7,
        "TimeCreated": "/Date(1700000001000)/",
        "Message": "Creating Scriptblock text (1 of 1): IEX (New-Object Net.WebClient)",
        "ProcessId": 3000,
        "ThreadId": 3004,
        "Properties": [{"Value": 1}, {"Value": 1}, {"Value": "IEX (New-Object Net.WebClient)"}],
    }
    path = tmp_path / "exports.json"
    path.write_text(json.dumps(velociraptor) + "\n" + json.dumps(powershell) + "\n")
    events, report = read_all(path)
    assert report.skipped == {}
    velo, ps = events
    assert velo.fields["EventID"] == 4688 and velo.fields["Channel"] == "Security"
    assert velo.fields["Provider_Name"] == "Microsoft-Windows-Security-Auditing"
    assert velo.fields["Execution_ProcessID"] == 4 and velo.fields["Execution_ThreadID"] == 8
    assert "ProcessID" not in velo.fields
    assert velo.timestamp == datetime(2023, 11, 14, 22, 13, 20, 500000, tzinfo=UTC)
    assert velo.logsource.product == "windows" and "security" in velo.logsource.services
    assert velo.source is not None and velo.source.record_id == 42
    assert ps.fields["EventID"] == 4104 and ps.fields["Computer"] == "WS02"
    assert ps.fields["Execution_ProcessID"] == 3000 and ps.fields["Execution_ThreadID"] == 3004
    assert "ProcessId" not in ps.fields and "ThreadID" not in ps.fields
    assert ps.fields["Data"] == [1, 1, "IEX (New-Object Net.WebClient)"]
    assert ps.timestamp == datetime(2023, 11, 14, 22, 13, 21, tzinfo=UTC)
    assert ps.logsource.product == "windows"


def test_concatenated_documents_carry_line_numbers(tmp_path: Path, read_all: Any) -> None:
    obj = {"Event": {"System": {"EventID": 1, "Channel": "Security"}, "EventData": {"A": "b"}}}
    pretty = json.dumps(obj, indent=2)
    height = pretty.count("\n") + 1
    path = tmp_path / "many.json"
    path.write_text("\n".join([pretty] * 12000) + "\n")  # several buffer refills
    events, report = read_all(path)
    assert len(events) == 12000 and report.skipped == {}
    lines = [e.source.line for e in events if e.source is not None]
    assert lines == [1 + i * height for i in range(12000)]
