"""Syslog reader and the pure line parser the network listeners share."""

from __future__ import annotations

import os
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from datasets import dataset
from vedette.sources.syslog_parse import parse_syslog_line

LOGHUB = ("misc-logs", "syslog", "loghub")


def test_openssh_log(read_all: Any) -> None:
    path = dataset(*LOGHUB, "OpenSSH", "OpenSSH_2k.log")
    events, report = read_all(path)
    assert len(events) == 2000
    assert report.skipped == {}
    first = events[0]
    assert first.fields["program"] == "sshd"
    assert first.fields["pid"] == "24200"
    assert first.fields["message"].startswith("reverse mapping checking getaddrinfo")
    assert first.host == "LabSZ"
    assert first.logsource.product == "linux"
    assert first.logsource.services == frozenset({"syslog", "sshd", "auth"})
    assert first.timestamp is not None
    assert (first.timestamp.month, first.timestamp.day) == (12, 10)
    assert first.source is not None and first.source.line == 1


def test_linux_log_programs_map_to_services(read_all: Any) -> None:
    path = dataset(*LOGHUB, "Linux", "Linux_2k.log")
    events, report = read_all(path)
    assert len(events) == 2000
    assert report.skipped == {}
    su = next(e for e in events if e.fields.get("program") == "su(pam_unix)")
    assert su.logsource.services == frozenset({"syslog", "auth"})
    ftpd = next(e for e in events if e.fields.get("program") == "ftpd")
    assert ftpd.logsource.services == frozenset({"syslog"})


def test_year_comes_from_the_file_time(tmp_path: Path, read_all: Any) -> None:
    path = tmp_path / "auth.log"
    path.write_text("Dec 31 23:59:59 host cron[1]: (root) CMD (run)\nJan  1 00:00:01 host x: y\n")
    stamp = datetime(2024, 1, 1, 12, 0, tzinfo=UTC).timestamp()
    os.utime(path, (stamp, stamp))
    events, _ = read_all(path)
    assert events[0].timestamp == datetime(2023, 12, 31, 23, 59, 59, tzinfo=UTC)
    assert events[1].timestamp == datetime(2024, 1, 1, 0, 0, 1, tzinfo=UTC)
    assert "cron" in events[0].logsource.services


def test_rfc5424_with_structured_data() -> None:
    fields = parse_syslog_line(
        b"<165>1 2003-10-11T22:14:15.003Z mymachine.example.com evntslog - ID47 "
        b'[exampleSDID@32473 iut="3" eventSource="App\\"x\\""] An application event'
    )
    assert fields is not None
    assert fields["facility"] == "local4" and fields["severity"] == "notice"
    assert fields["hostname"] == "mymachine.example.com"
    assert fields["program"] == "evntslog" and fields["msgid"] == "ID47"
    assert fields["sd.exampleSDID@32473.eventSource"] == 'App"x"'
    assert fields["message"] == "An application event"
    assert fields["timestamp"] == datetime(2003, 10, 11, 22, 14, 15, 3000, tzinfo=UTC)


def test_rfc3164_with_pri_and_no_host() -> None:
    reference = datetime(2024, 6, 1, tzinfo=UTC)
    fields = parse_syslog_line("<38>Feb  5 17:32:18 sshd[77]: Accepted", reference=reference)
    assert fields is not None
    assert fields["facility"] == "auth"
    assert fields["program"] == "sshd" and fields["pid"] == "77"
    assert "hostname" not in fields
    assert fields["timestamp"] == datetime(2024, 2, 5, 17, 32, 18, tzinfo=UTC)


def test_not_syslog() -> None:
    assert parse_syslog_line("hello world") is None
    assert parse_syslog_line(b"<999>1 - - - - - -") is None
    assert parse_syslog_line(b"") is None


def test_sysmon_for_linux_in_syslog(tmp_path: Path, read_all: Any) -> None:
    xml = "".join(
        [
            '<Event><System><Provider Name="Linux-Sysmon" ',
            'Guid="{ff032593-a8d3-4f13-b0d6-01fc615a0f97}"/>',
            "<EventID>1</EventID><Version>5</Version><Level>4</Level><Task>1</Task>",
            "<Opcode>0</Opcode><Keywords>0x8000000000000000</Keywords>",
            '<TimeCreated SystemTime="2021-10-14T14:42:32.637573000Z"/>',
            "<EventRecordID>5</EventRecordID><Correlation/>",
            '<Execution ProcessID="4046" ThreadID="4046"/>',
            "<Channel>Linux-Sysmon/Operational</Channel><Computer>ubuntu</Computer>",
            '<Security UserId="0"/></System><EventData><Data Name="RuleName">-</Data>',
            '<Data Name="ProcessId">4060</Data><Data Name="Image">/usr/bin/curl</Data>',
            '<Data Name="CommandLine">curl http://x</Data><Data Name="User">root</Data>',
            "</EventData></Event>",
        ]
    )
    path = tmp_path / "syslog"
    path.write_text(f"Oct 14 14:42:32 ubuntu sysmon: {xml}\n")
    events, report = read_all(path)
    assert report.skipped == {}
    (event,) = events
    assert event.fields["EventID"] == 1
    assert event.fields["Image"] == "/usr/bin/curl"
    assert event.fields["CommandLine"] == "curl http://x"
    assert event.fields["ProcessId"] == "4060" and event.fields["Execution_ProcessID"] == "4046"
    assert event.logsource.product == "linux"
    assert event.logsource.categories == frozenset({"process_creation"})
    assert event.host == "ubuntu"
    assert event.timestamp == datetime(2021, 10, 14, 14, 42, 32, 637573, tzinfo=UTC)


def test_garbage_lines_are_counted(tmp_path: Path, read_all: Any) -> None:
    path = tmp_path / "messages"
    path.write_bytes(
        b"Jun 14 15:16:01 combo sshd[1]: one\n"
        b"\x00\x9f\x88garbage\x01\x02\n"
        b"Jun 14 15:16:02 combo sshd[1]: two \xe9t\xe9\n"
        b"not syslog at all\n"
    )
    events, report = read_all(path)
    assert [e.fields["message"] for e in events] == ["one", "two été"]
    assert report.skipped == {"binary": 1, "syslog-parse": 1, "encoding": 1}
