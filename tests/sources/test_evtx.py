"""EVTX reader: real attack samples, flattening, corrupt and truncated files."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import evtx
import orjson

from datasets import dataset
from vedette.sources import ReadReport, iter_input_files, read_events

SAMPLES = ("evtx-attack-samples",)


def _raw_count(path: Path) -> int:
    return sum(1 for _ in evtx.PyEvtxParser(str(path)).records_json())


def test_security_event_is_flattened_into_sigma_fields(read_all: Any) -> None:
    path = dataset(*SAMPLES, "Defense Evasion", "Win_4985_T1186_Process_Doppelganging.evtx")
    events, report = read_all(path)
    assert len(events) == _raw_count(path)
    assert report.skipped == {}
    first = events[0]
    assert first.fields["EventID"] == 4985
    assert first.fields["Channel"] == "Security"
    assert first.fields["Provider_Name"] == "Microsoft-Windows-Security-Auditing"
    assert first.fields["Computer"] == "MSEDGEWIN10"
    assert first.fields["SubjectUserName"] == "IEUser"
    assert first.fields["ProcessName"] == "C:\\ProgramData\\proc_doppel64.exe"
    assert first.fields["EventRecordID"] == 12294
    assert first.timestamp == datetime(2019, 8, 14, 14, 6, 44, 495674, tzinfo=UTC)
    assert first.host == "MSEDGEWIN10"
    assert first.logsource.product == "windows"
    assert "security" in first.logsource.services
    assert first.source is not None
    assert first.source.format == "evtx" and first.source.record_id == 12294


def test_sysmon_event_keeps_process_id_beside_the_prefixed_system_execution(
    read_all: Any,
) -> None:
    path = dataset(*SAMPLES, "UACME_59_Sysmon.evtx")
    events, report = read_all(path)
    assert report.skipped == {}
    raw = [orjson.loads(r["data"])["Event"] for r in evtx.PyEvtxParser(str(path)).records_json()]
    creations = [(e, r) for e, r in zip(events, raw, strict=True) if e.fields["EventID"] == 1]
    assert creations
    for event, record in creations:
        execution = record["System"]["Execution"]["#attributes"]
        assert event.fields["ProcessId"] == record["EventData"]["ProcessId"]
        assert event.fields["Execution_ProcessID"] == execution["ProcessID"]
        assert event.fields["Execution_ThreadID"] == execution["ThreadID"]
        assert event.fields["ProcessId"] != event.fields["Execution_ProcessID"]
        assert not {"ProcessID", "ThreadID"} & event.fields.keys()
        # Security stays UserID, with logsource.json's Security_UserID alias beside it
        user = record["System"]["Security"]["#attributes"]["UserID"]
        assert event.fields["UserID"] == event.fields["Security_UserID"] == user


def test_event_id_with_qualifiers_and_unnamed_data(read_all: Any) -> None:
    path = dataset(*SAMPLES, "Defense Evasion", "DE_xp_cmdshell_enabled_MSSQL_EID_15457.evtx")
    events, report = read_all(path)
    assert report.skipped == {}
    first = events[0]
    assert first.fields["EventID"] == 15457
    assert first.fields["Data"] == ["show advanced options", "0", "1"]
    assert first.fields["Provider_Name"] == "MSSQLSERVER"


def test_user_data_is_flattened_and_system_channel_wins(read_all: Any) -> None:
    path = dataset(*SAMPLES, "Defense Evasion", "DE_104_system_log_cleared.evtx")
    events, _ = read_all(path)
    first = events[0]
    assert first.fields["EventID"] == 104
    assert first.fields["SubjectUserName"] == "user01"
    assert first.fields["SubjectDomainName"] == "EXAMPLE"
    assert first.fields["Channel"] == "System"
    assert "LogFileCleared" not in first.fields


def test_whole_attack_corpus_reads_without_warnings(read_all: Any) -> None:
    root = dataset(*SAMPLES)
    report = ReadReport()
    count = 0
    for path in iter_input_files([root]):
        if path.suffix == ".evtx":
            for batch in read_events(path, report=report, batch_size=500):
                assert len(batch) <= 500
                count += len(batch)
    assert count == 8255  # the corpus' record count, as its README states
    assert report.events == {"evtx": 8255}
    assert report.skipped == {}


def _largest_sample() -> Path:
    files = [p for p in iter_input_files([dataset(*SAMPLES)]) if p.suffix == ".evtx"]
    return max(files, key=lambda p: p.stat().st_size)


def test_corrupt_chunk_is_counted_and_the_rest_is_read(tmp_path: Path, read_all: Any) -> None:
    source = _largest_sample()
    total = _raw_count(source)
    data = bytearray(source.read_bytes())
    second_chunk = 4096 + 65536
    for i in range(second_chunk + 600, second_chunk + 5000, 7):
        data[i] ^= 0x5A
    broken = tmp_path / "broken.evtx"
    broken.write_bytes(bytes(data))
    events, report = read_all(broken)
    assert 0 < len(events) < total
    assert report.skipped.get("evtx-chunk", 0) >= 1
    warning = next(w for w in report.warnings if w.reason == "evtx-chunk")
    assert warning.path == str(broken)
    assert warning.offset == second_chunk
    # nothing silently lost: what was not read is counted
    assert len(events) + report.total_skipped == total


def test_truncated_file_keeps_the_complete_chunks(tmp_path: Path, read_all: Any) -> None:
    source = _largest_sample()
    data = source.read_bytes()
    cut = tmp_path / "cut.evtx"
    cut.write_bytes(data[: 4096 + 65536 + 3000])
    events, report = read_all(cut)
    assert len(events) > 0
    assert report.total_skipped >= 1


def test_header_only_and_garbage_files_warn(tmp_path: Path, read_all: Any) -> None:
    source = _largest_sample()
    header_only = tmp_path / "header.evtx"
    header_only.write_bytes(source.read_bytes()[:4096])
    events, report = read_all(header_only)
    assert events == []
    garbage = tmp_path / "garbage.evtx"
    garbage.write_bytes(b"ElfFile\x00" + bytes(range(256)) * 50)
    events, report = read_all(garbage)
    assert events == []
    assert report.total_skipped >= 1


def test_evtx_in_zip_and_gzip_in_memory_or_streamed(
    tmp_path: Path, read_all: Any, monkeypatch: Any
) -> None:
    import gzip
    import zipfile

    from vedette.sources import evtx as evtx_reader

    source = _largest_sample()
    total = _raw_count(source)
    archive = tmp_path / "case.zip"
    with zipfile.ZipFile(archive, "w", compression=zipfile.ZIP_DEFLATED) as handle:
        handle.write(source, "logs/Security.evtx")
    packed = tmp_path / "Security.evtx.gz"
    packed.write_bytes(gzip.compress(source.read_bytes()))
    for limit in (evtx_reader.IN_MEMORY_LIMIT, 4096):  # in memory, then streamed
        monkeypatch.setattr(evtx_reader, "IN_MEMORY_LIMIT", limit)
        for path in (archive, packed):
            events, report = read_all(path)
            assert len(events) == total and report.skipped == {}, (limit, path)
    assert events[0].source is not None
