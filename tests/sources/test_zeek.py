"""Zeek TSV reader: every log of the Zeek sample set, types, escapes, split reads."""

from __future__ import annotations

import gzip
from pathlib import Path
from typing import Any

from datasets import dataset
from vedette.sources import ReadReport, plan_read_tasks, read_task

ZEEK = ("misc-logs", "zeek", "zed-sample-data")


def _data_lines(path: Path) -> int:
    with gzip.open(path) as handle:
        return sum(1 for line in handle if line.strip() and not line.startswith(b"#"))


def test_every_tsv_log_reads_like_its_json_twin(read_all: Any) -> None:
    root = dataset(*ZEEK)
    logs = sorted((root / "zeek-default").glob("*.log.gz"))
    assert len(logs) >= 30
    for tsv in logs:
        if tsv.name.startswith(("dns", "ssl", "weird", "analyzer")):
            continue  # the four biggest: covered by dns below, keeps the suite quick
        events, report = read_all(tsv)
        assert report.skipped == {}, tsv
        assert len(events) == _data_lines(tsv), tsv
        twin = root / "zeek-json" / tsv.name.replace(".log.gz", ".json.gz")
        json_events, _ = read_all(twin)
        assert len(json_events) == len(events), tsv
        kind = tsv.name.split(".")[0]
        assert events[0].logsource.services == json_events[0].logsource.services == {kind}
        assert events[0].fields.get("uid") == json_events[0].fields.get("uid")


def test_dns_log_values(read_all: Any) -> None:
    path = dataset(*ZEEK, "zeek-default", "dns.log.gz")
    events, report = read_all(path)
    assert len(events) == _data_lines(path)
    assert report.skipped == {}
    first = events[0]
    assert first.fields["ts"] == 1521911720.865716
    assert first.fields["id.orig_h"] == "10.47.1.100"
    assert first.fields["id.resp_p"] == 53
    assert first.fields["query"] == "ise.wrccdc.org"
    assert first.fields["answers"] == ["ise.wrccdc.cpp.edu", "134.71.3.16"]
    assert first.fields["TTLs"] == [2230.0, 41830.0]
    assert first.fields["RD"] is True and first.fields["AA"] is False
    assert first.logsource.product == "zeek"
    assert first.logsource.categories == frozenset({"dns"})
    assert first.fields["record_type"] == "A"
    assert first.source is not None and first.source.line == 9


def test_escapes_unset_and_empty(tmp_path: Path, read_all: Any) -> None:
    path = tmp_path / "smb_files.log"
    path.write_text(
        "#separator \\x09\n#set_separator\t,\n#empty_field\t(empty)\n#unset_field\t-\n"
        "#path\tsmb_files\n#fields\tts\tpath\tname\ttags\tsize\n"
        "#types\ttime\tstring\tstring\tset[string]\tcount\n"
        "1521911720.5\t\\\\\\\\10.0.0.1\\\\IPC$\tspool\\x09ss\t(empty)\t-\n"
    )
    events, report = read_all(path)
    assert report.skipped == {}
    (event,) = events
    assert event.fields["path"] == "\\\\10.0.0.1\\IPC$"
    assert event.fields["name"] == "spool\tss"
    assert event.fields["tags"] == []
    assert event.fields["size"] is None
    assert event.logsource.services == frozenset({"smb_files"})


def test_bad_rows_are_counted(tmp_path: Path, read_all: Any) -> None:
    path = tmp_path / "conn.log"
    path.write_bytes(
        b"#separator \\x09\n#path\tconn\n#fields\tts\tuid\n#types\ttime\tstring\n"
        b"1.0\tC1\n"
        b"only-one-column\n"
        b"\x00\x01\x02\x03\x04\n"
        b"2.0\tC2\n"
    )
    events, report = read_all(path)
    assert [e.fields["uid"] for e in events] == ["C1", "C2"]
    assert report.skipped == {"zeek-columns": 1, "binary": 1}
    assert sorted(w.line for w in report.warnings) == [6, 7]
    assert "firewall" in events[0].logsource.categories


def test_split_read_uses_the_file_header(tmp_path: Path) -> None:
    path = tmp_path / "conn.log"
    rows = "".join(f"{1000 + i}.5\tC{i}\t10.0.0.{i % 250}\n" for i in range(2000))
    path.write_text(
        "#separator \\x09\n#path\tconn\n#fields\tts\tuid\tid.orig_h\n#types\ttime\tstring\taddr\n"
        + rows
    )
    tasks = plan_read_tasks(path, target_bytes=4096)
    assert len(tasks) > 5 and {t.format for t in tasks} == {"zeek"}
    report = ReadReport()
    uids = [e.fields["uid"] for t in tasks for b in read_task(t, report=report) for e in b]
    assert uids == [f"C{i}" for i in range(2000)]
    assert report.skipped == {}
