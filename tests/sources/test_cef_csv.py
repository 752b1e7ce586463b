"""CEF and CSV readers."""

from __future__ import annotations

import zipfile
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from datasets import dataset
from vedette.sources.cef import parse_cef


def test_cef_header_extension_and_escapes() -> None:
    fields = parse_cef(
        "CEF:0|Security|threatmanager|1.0|100|detected a \\| in message|10|"
        "src=10.0.0.1 act=blocked a \\= dst=1.1.1.1 msg=hello world cs1Label=Rule cs1=R 1"
    )
    assert fields is not None
    assert fields["device_vendor"] == "Security"
    assert fields["name"] == "detected a | in message"
    assert fields["act"] == "blocked a ="
    assert fields["msg"] == "hello world"
    assert fields["Rule"] == "R 1"
    assert parse_cef("CEF:0|too|few") is None


def test_cef_file_behind_syslog_header(tmp_path: Path, read_all: Any) -> None:
    path = tmp_path / "cef.log"
    path.write_text(
        "Sep 19 08:26:10 fw01 CEF:0|Fortinet|Fortigate|7.0|13|traffic|3|src=10.1.1.1 "
        "dst=8.8.8.8 spt=5353 dpt=53 act=accept\n"
        "CEF:0|Acme|Sensor|1|1|x|1|rt=2024-05-01T10:00:00Z src=10.0.0.9\n"
        "this is not cef\n"
    )
    events, report = read_all(path)
    assert report.skipped == {"cef-parse": 1}
    fw, acme = events
    assert fw.logsource.product == "fortigate"
    assert fw.logsource.categories == frozenset({"firewall"})
    assert fw.fields["dst_port"] == "53" and fw.fields["action"] == "accept"
    assert fw.host == "fw01"
    assert acme.timestamp == datetime(2024, 5, 1, 10, 0, tzinfo=UTC)
    assert acme.logsource.product is None
    assert acme.fields["src_ip"] == "10.0.0.9"


def test_otrf_csv_in_zip(read_all: Any) -> None:
    root = dataset("otrf-security-datasets", "datasets", "atomic", "aws", "discovery")
    path = root / "aws_s3_honeybucketlogs.zip"
    events, report = read_all(path)
    assert report.skipped == {}
    assert report.events == {"csv": len(events)}
    with zipfile.ZipFile(path) as archive:
        text = archive.read(archive.namelist()[0]).decode()
    assert len(events) == len(text.strip().splitlines()) - 1  # no quoted newlines in it
    first = events[0]
    assert first.fields["Event Name"] == "ListObjects"
    assert first.fields["Source IP"] == "177.131.167.145"
    assert first.timestamp == datetime(2022, 2, 18, 17, 34, 57, tzinfo=UTC)


def test_csv_quoted_newlines_and_bad_rows(tmp_path: Path, read_all: Any) -> None:
    path = tmp_path / "export.csv"
    path.write_text(
        "EventID,Channel,Computer,CommandLine\n"
        '4688,Security,WS1,"cmd.exe /c ""echo"""\n'
        '4688,Security,WS1,"multi\nline"\n'
        "1,2\n"
        "4624,Security,WS2,\n"
    )
    events, report = read_all(path, format="csv")
    assert [e.fields["EventID"] for e in events] == [4688, 4688, 4624]
    assert events[0].fields["CommandLine"] == 'cmd.exe /c "echo"'
    assert events[1].fields["CommandLine"] == "multi\nline"
    assert events[0].logsource.product == "windows"
    assert events[2].source is not None and events[2].source.line == 6
    assert report.skipped == {"csv-columns": 1}


def test_csv_split_read_uses_the_file_header(tmp_path: Path) -> None:
    from vedette.sources import ReadReport, plan_read_tasks, read_task

    path = tmp_path / "big.csv"
    rows = "".join(f"2024-01-01T00:00:{i % 60:02d}Z,host{i},action{i}\n" for i in range(3000))
    path.write_text("time,host,action\n" + rows)
    tasks = plan_read_tasks(path, target_bytes=5000)
    assert len(tasks) > 10 and {t.format for t in tasks} == {"csv"}
    report = ReadReport()
    hosts = [e.fields["host"] for t in tasks for b in read_task(t, report=report) for e in b]
    assert hosts == [f"host{i}" for i in range(3000)]
    assert report.skipped == {} and report.files == {"csv": 1}
