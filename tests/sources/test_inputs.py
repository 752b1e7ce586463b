"""Containers and bad files: gzip, bzip2, zip members, empty, unreadable, no log at all."""

from __future__ import annotations

import bz2
import gzip
import os
import pickle
import zipfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from datasets import dataset
from vedette.errors import ConfigError
from vedette.events import Event, SourceRef
from vedette.sources import (
    ReadReport,
    ReadTask,
    iter_input_files,
    plan_read_tasks,
    read_events,
    read_task,
)
from vedette.sources.inputs import HEAD_BYTES, FileProbe, Source, probe_file, read_head
from vedette.sources.registry import READERS, Reader, ReadOptions

LINE = b"Jun 14 15:16:01 combo sshd[19939]: Failed password for root from 10.0.0.1\n"


def test_gzip_and_bzip2_are_transparent(tmp_path: Path, read_all: Any) -> None:
    (tmp_path / "a.log.gz").write_bytes(gzip.compress(LINE * 3))
    (tmp_path / "b.log.bz2").write_bytes(bz2.compress(LINE * 2))
    (tmp_path / "renamed.txt").write_bytes(gzip.compress(LINE))  # magic bytes, not names
    for name, count in (("a.log.gz", 3), ("b.log.bz2", 2), ("renamed.txt", 1)):
        events, report = read_all(tmp_path / name)
        assert len(events) == count and report.skipped == {}
        assert events[0].fields["program"] == "sshd"


def test_zip_members_are_addressed_with_a_bang(tmp_path: Path, read_all: Any) -> None:
    archive = tmp_path / "case.zip"
    with zipfile.ZipFile(archive, "w") as handle:
        handle.writestr("logs/auth.log", LINE * 2)
        handle.writestr("logs/readme.txt", "hello, this is not a log\n")
        handle.writestr("logs/zeek/dns.log.gz", gzip.compress(
            b"#separator \\x09\n#path\tdns\n#fields\tts\tquery\n#types\ttime\tstring\n1.5\ta.b\n"
        ))  # fmt: skip
    events, report = read_all(archive)
    assert len(events) == 3
    assert report.skipped == {"not-a-log": 1}
    assert report.files == {"syslog": 1, "zeek": 1}
    paths = {e.source.path for e in events if e.source is not None}
    assert paths == {f"{archive}!logs/auth.log", f"{archive}!logs/zeek/dns.log.gz"}
    one, report = read_all(f"{archive}!logs/zeek/dns.log.gz")
    assert [e.fields["query"] for e in one] == ["a.b"]
    tasks = plan_read_tasks(archive)
    assert [t.member for t in tasks] == ["logs/auth.log", "logs/readme.txt", "logs/zeek/dns.log.gz"]


def test_real_otrf_zip_of_zeek_logs(read_all: Any) -> None:
    root = dataset("otrf-security-datasets", "datasets", "compound", "LSASS_campaign_01")
    path = root / "metasploit_logonpasswords_lsass_memory_dump_zeek_logs.zip"
    events, report = read_all(path)
    assert report.skipped == {}
    assert set(report.files) == {"zeek"}
    with zipfile.ZipFile(path) as archive:
        expected = sum(
            1
            for name in archive.namelist()
            for line in archive.read(name).splitlines()
            if line.strip() and not line.startswith(b"#")
        )
    assert len(events) == expected
    services = {s for e in events for s in e.logsource.services}
    assert {"conn", "dns", "http", "kerberos"} <= services


def test_bad_files_are_warnings_not_errors(tmp_path: Path, read_all: Any) -> None:
    (tmp_path / "empty.log").write_bytes(b"")
    (tmp_path / "random.bin").write_bytes(os.urandom(4096))
    (tmp_path / "notes.md").write_text("# Case notes\n\nNothing to see.\n")
    (tmp_path / "broken.zip").write_bytes(b"PK\x03\x04" + os.urandom(100))
    varied = b"".join(LINE[:-1] + os.urandom(8).hex().encode() + b"\n" for _ in range(500))
    (tmp_path / "cut.gz").write_bytes(gzip.compress(varied)[:3000])
    reasons = {}
    for name in ("empty.log", "random.bin", "notes.md", "broken.zip", "missing.log"):
        events, report = read_all(tmp_path / name)
        assert events == []
        (warning,) = report.warnings
        assert warning.path.startswith(str(tmp_path))
        reasons[name] = warning.reason
    assert reasons == {
        "empty.log": "empty",
        "random.bin": "not-a-log",
        "notes.md": "not-a-log",
        "broken.zip": "archive",
        "missing.log": "unreadable",
    }
    events, report = read_all(tmp_path / "cut.gz")
    assert 0 < len(events) < 500 and report.skipped == {"truncated": 1}


def test_unknown_format_is_a_usage_error(tmp_path: Path) -> None:
    with pytest.raises(ConfigError):
        next(read_events(tmp_path / "x", format="nope", report=ReadReport()))


def test_format_override_skips_sniffing(tmp_path: Path, read_all: Any) -> None:
    path = tmp_path / "x.log"
    path.write_bytes(LINE)
    events, report = read_all(path, format="cef")
    assert events == [] and report.skipped == {"cef-parse": 1}


def test_iter_input_files_walks_directories(tmp_path: Path) -> None:
    (tmp_path / "b").mkdir()
    (tmp_path / "b" / "2.log").write_bytes(LINE)
    (tmp_path / "a.log").write_bytes(LINE)
    (tmp_path / ".bash_history").write_text("curl http://x | sh\n")
    (tmp_path / ".git").mkdir()
    (tmp_path / ".git" / "config").write_text("x")
    found = list(iter_input_files([tmp_path, tmp_path / "nonexistent.log"]))
    assert found == [
        tmp_path / ".bash_history",
        tmp_path / "a.log",
        tmp_path / "b" / "2.log",
        tmp_path / "nonexistent.log",
    ]


def test_batches_are_bounded(tmp_path: Path) -> None:
    path = tmp_path / "big.log"
    path.write_bytes(LINE * 1000)
    sizes = [len(b) for b in read_events(path, batch_size=64, report=ReadReport())]
    assert max(sizes) == 64 and sum(sizes) == 1000


def test_report_and_tasks_pickle_and_merge(tmp_path: Path) -> None:
    path = tmp_path / "big.log"
    path.write_bytes(LINE * 2000)
    tasks = plan_read_tasks(path, target_bytes=10_000)
    assert pickle.loads(pickle.dumps(tasks)) == tasks
    total = ReadReport()
    count = 0
    for task in tasks:
        worker = ReadReport()
        count += sum(len(b) for b in read_task(pickle.loads(pickle.dumps(task)), report=worker))
        total.merge(pickle.loads(pickle.dumps(worker)))
    assert count == 2000
    assert total.events == {"syslog": 2000} and total.files == {"syslog": 1}
    whole = ReadTask(str(path))
    assert sum(len(b) for b in read_task(whole, report=ReadReport())) == 2000


def test_report_keeps_a_bounded_number_of_warnings() -> None:
    report = ReadReport(max_kept=3)
    for i in range(10):
        report.warn("f", "json-parse", line=i)
    other = ReadReport(max_kept=3)
    other.warn("g", "binary")
    report.merge(other)
    assert report.skipped == {"json-parse": 10, "binary": 1}
    assert len(report.warnings) == 3 and report.dropped_warnings == 8
    assert "11" not in report.summary() and "json-parse" in report.summary()


def test_text_that_starts_like_a_magic_number_is_text(tmp_path: Path, read_all: Any) -> None:
    path = tmp_path / "odd.log"
    path.write_bytes(b"BZh Jun 14 15:16:01 combo sshd[1]: x\n" + LINE)
    events, report = read_all(path, format="syslog")
    assert len(events) == 1 and report.skipped == {"syslog-parse": 1}


def test_probe_head_is_what_read_head_gives(tmp_path: Path) -> None:
    evtx_file = dataset("evtx-attack-samples", "UACME_59_Sysmon.evtx")
    long_text = LINE * 1000  # longer than HEAD_BYTES
    files = {
        "plain.log": LINE * 3,
        "long.log": long_text,
        "tiny.log": b"\x1f\x8b",  # two bytes of gzip magic: just text
        "bzh.log": b"BZhello\n",  # "BZh" without a block-size digit: text
        "a.log.gz": gzip.compress(LINE),
        "b.log.bz2": bz2.compress(LINE),
        "bom8.log": b"\xef\xbb\xbf" + LINE,
        "bom16.log": "\ufeffx=1\n".encode("utf-16-le"),
        "empty.log": b"",
        "copy.evtx": evtx_file.read_bytes(),
    }
    for name, content in files.items():
        (tmp_path / name).write_bytes(content)
    for name, content in files.items():
        path = str(tmp_path / name)
        for size, more in ((8, None), (8, lambda head: True), (HEAD_BYTES, None)):
            probe = probe_file(path, size, more)
            assert probe.special is None and probe.size == len(content)
            assert probe.head == content[: HEAD_BYTES if more else size]
            head = probe.decoded_head
            plain = Source(path).plain_file() and not content.startswith(b"\xef\xbb\xbf")
            assert (head is not None) == plain, name
            if head is not None and more is not None:
                assert head == read_head(Source(path)), name
    assert probe_file(str(tmp_path / "missing"), 8) == FileProbe()
    assert probe_file(str(tmp_path), 8) == FileProbe()  # a folder: opening it reports why


def test_empty_and_unreadable_are_reported_with_a_forced_format(
    tmp_path: Path, read_all: Any
) -> None:
    (tmp_path / "empty.evtx").write_bytes(b"")
    (tmp_path / "dir.evtx").mkdir()
    for name, reason in (("empty.evtx", "empty"), ("dir.evtx", "unreadable"), ("no", "unreadable")):
        events, report = read_all(tmp_path / name, format="evtx")
        assert events == [] and [w.reason for w in report.warnings] == [reason]
        assert report.files == {}


class _FailingReader(Reader):
    """Yields ``count`` events of a file, then raises like a reader bug would (when ``fail``)."""

    name = "failing-test-reader"

    def __init__(self, count: int, fail: bool) -> None:
        self.count, self.fail = count, fail

    def sniff(self, head: bytes, name: str) -> int:
        return 0

    def read(self, source: Source, report: ReadReport, options: ReadOptions) -> Iterator[Event]:
        for index in range(self.count):
            yield Event({"n": index}, source=SourceRef(source.display, self.name, line=index))
        if self.fail:
            raise ValueError("bug")


@pytest.mark.parametrize(("count", "fail"), [(10, True), (8, True), (8, False), (0, False)])
def test_batches_keep_what_was_read_before_a_reader_error(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, count: int, fail: bool
) -> None:
    monkeypatch.setitem(READERS, _FailingReader.name, _FailingReader(count, fail))
    path = tmp_path / "x.log"
    path.write_bytes(LINE)
    report = ReadReport()
    batches = list(read_events(path, format=_FailingReader.name, batch_size=4, report=report))
    assert [len(b) for b in batches] == [4] * (count // 4) + ([count % 4] if count % 4 else [])
    assert [e.fields["n"] for b in batches for e in b] == list(range(count))
    assert report.events == ({_FailingReader.name: count} if count else {})
    assert [w.reason for w in report.warnings] == (["reader-error"] if fail else [])
