"""A record sent alone normalises to the same Event as the same record read from a file."""

from __future__ import annotations

import io
import zipfile
from datetime import UTC, datetime
from pathlib import Path

import orjson

from datasets import dataset
from vedette.events import Event
from vedette.sources import ReadReport, read_events
from vedette.sources.records import RecordParser


def _key(event: Event) -> tuple[object, ...]:
    return (event.fields, event.logsource, event.timestamp, event.host)


def test_json_records_of_a_real_otrf_file_normalise_as_the_file_reader_does(
    tmp_path: Path,
) -> None:
    archive = dataset(
        "otrf-security-datasets",
        "datasets",
        "atomic",
        "windows",
        "privilege_escalation",
        "host",
        "cmd_service_mod_fax.zip",
    )
    with zipfile.ZipFile(archive) as zipped:
        name = next(n for n in zipped.namelist() if n.endswith(".json"))
        data = zipped.read(name)
    path = tmp_path / Path(name).name
    path.write_bytes(data)
    from_file = [e for batch in read_events(path, report=ReadReport()) for e in batch]
    parser = RecordParser(origin="unit-a/http")
    lines = [line for line in io.BytesIO(data).read().splitlines() if line.strip()]
    from_records = [parser.json_record(orjson.loads(line)) for line in lines]
    assert len(from_file) == len(from_records) > 100
    assert [_key(e) for e in from_records] == [_key(e) for e in from_file]
    assert {e.logsource.product for e in from_records} == {"windows"}
    assert from_records[0].source is not None and from_records[0].source.path == "unit-a/http"


def test_syslog_lines_of_a_real_log_normalise_as_the_file_reader_does(tmp_path: Path) -> None:
    source = dataset("misc-logs", "syslog", "loghub", "OpenSSH", "OpenSSH_2k.log")
    text = source.read_text("utf-8", errors="replace").splitlines()[:200]
    path = tmp_path / "auth.log"
    path.write_text("\n".join(text) + "\n")
    from_file = [e for batch in read_events(path, report=ReadReport()) for e in batch]
    # The file reader dates year-less RFC 3164 stamps by the file's modification time.
    reference = datetime.fromtimestamp(path.stat().st_mtime, tz=UTC)
    parser = RecordParser(origin="unit-a/syslog-udp")
    from_records = [parser.syslog_line(line, reference) for line in text]
    assert all(e is not None for e in from_records)
    assert [_key(e) for e in from_records if e] == [_key(e) for e in from_file]
    assert any(e.logsource.services for e in from_records if e)


def test_a_line_that_is_no_syslog_is_none_and_raw_records_keep_their_text() -> None:
    parser = RecordParser(origin="x")
    assert parser.syslog_line("\x00\x01 not syslog at all", datetime.now(UTC)) is None
    event = parser.raw_record("\x00\x01 not syslog at all", format="syslog")
    assert event.fields == {"raw": "\x00\x01 not syslog at all"}
    assert event.source is not None and event.source.format == "syslog"
