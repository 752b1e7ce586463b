"""Hostile input (issue 15): each case once lost data, hung, or cost more than linear time."""

from __future__ import annotations

import bz2
import gzip
import json
import zipfile
from pathlib import Path
from typing import Any

import pytest

from datasets import dataset
from vedette.sources import ReadReport, iter_input_files, jsonl, read_events

LINE = b"Mar  1 10:00:00 host sshd[1]: Accepted password for root from 10.0.0.1 port 22 ssh2\n"


def test_zip_members_share_one_opened_archive(
    tmp_path: Path, read_all: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The archive's directory is read once, not once per member (quadratic before)."""
    archive = tmp_path / "many.zip"
    with zipfile.ZipFile(archive, "w", zipfile.ZIP_DEFLATED) as handle:
        for i in range(300):
            handle.writestr(f"logs/{i:04}.log", LINE)
    opened: list[str] = []
    real_init = zipfile.ZipFile.__init__

    def counting_init(self: zipfile.ZipFile, file: Any, *args: Any, **kwargs: Any) -> None:
        opened.append(str(file))
        real_init(self, file, *args, **kwargs)

    monkeypatch.setattr(zipfile.ZipFile, "__init__", counting_init)
    events, report = read_all(archive)
    assert len(events) == 300 and report.skipped == {}
    assert len(opened) <= 3


def _pretty_records(count: int, pad: int) -> list[dict[str, Any]]:
    return [
        {"n": i, "pad": "p" * pad, "a": None, "b": True, "c": False, "d": "caf\u00e9"}
        for i in range(count)
    ]


@pytest.mark.parametrize("token", ["null", "true", "false", "\\u00e9"])
@pytest.mark.parametrize("cut", [1, 2, 3])
def test_literal_split_by_a_read_boundary_is_not_corruption(
    tmp_path: Path, read_all: Any, token: str, cut: int
) -> None:
    """A ``null``, ``true``, ``false`` or ``\\uXXXX`` cut by the 1 MiB read is read whole."""
    records = _pretty_records(1500, 900)
    text = json.dumps(records, indent=2)  # ensure_ascii: the é is written \u00e9
    boundary = jsonl._CHUNK
    # the first occurrence of the token after the boundary, moved so that it straddles it
    at = text.index(token, boundary)
    shift = at - (boundary - cut)
    text = text[:shift] + text[shift:].replace(" ", "", 0)  # keep the text valid
    # remove ``shift`` characters of padding from the first record's pad string
    first_pad = text.index("p" * 900)
    text = text[:first_pad] + text[first_pad + shift :]
    assert text[boundary - cut : boundary - cut + len(token)] == token
    path = tmp_path / "array.json"
    path.write_text(text)
    events, report = read_all(path)
    assert report.skipped == {}
    assert [e.fields["n"] for e in events] == list(range(1500))
    assert events[-1].fields["d"] == "caf\u00e9"


def test_recovery_after_a_bad_value_does_not_repeat_records(tmp_path: Path, read_all: Any) -> None:
    good = [json.dumps({"n": i, "pad": "p" * 500}, indent=1) for i in range(1800)]
    # a bad value whose next value starts only after the first 1 MiB read
    bad = '{"bad": @@@, "filler": "' + "f" * 300_000 + '"}'
    text = "\n".join([*good[:1500], bad, *good[1500:]]) + "\n"
    assert text.index(bad) < jsonl._CHUNK < text.index(bad) + len(bad)
    path = tmp_path / "stream.json"
    path.write_text(text)
    events, report = read_all(path)
    assert [e.fields["n"] for e in events] == list(range(1800))
    assert report.skipped == {"json-parse": 1}


def _deep(depth: int) -> str:
    return '{"a":' * depth + "1" + "}" * depth


def test_one_deeply_nested_ndjson_line_skips_only_that_record(
    tmp_path: Path, read_all: Any
) -> None:
    lines = [json.dumps({"n": i}) for i in range(39)]
    lines[3] = _deep(985)
    path = tmp_path / "deep.jsonl"
    path.write_text("\n".join(lines) + "\n")
    events, report = read_all(path)
    assert [e.fields["n"] for e in events] == [i for i in range(39) if i != 3]
    assert report.skipped == {"json-too-deep": 1}
    (warning,) = report.warnings
    assert warning.line == 4


def test_one_deeply_nested_document_skips_only_that_value(tmp_path: Path, read_all: Any) -> None:
    values = [json.dumps({"n": i}, indent=2) for i in range(10)]
    values[4] = _deep(30_000)
    path = tmp_path / "deep.json"
    path.write_text("\n".join(values) + "\n")
    events, report = read_all(path)
    assert [e.fields["n"] for e in events] == [i for i in range(10) if i != 4]
    assert report.skipped == {"json-too-deep": 1}


def test_a_value_over_the_cap_is_reported_as_too_large(tmp_path: Path, read_all: Any) -> None:
    path = tmp_path / "huge.json"
    with path.open("w") as out:
        out.write(json.dumps({"n": 0}, indent=1) + "\n")
        out.write('{"blob": "' + "x" * (jsonl.MAX_DOCUMENT_CHARS + 10) + '"}\n')
        out.write(json.dumps({"n": 2}, indent=1) + "\n")
    events, report = read_all(path)
    assert [e.fields["n"] for e in events] == [0, 2]
    assert report.skipped == {"value-too-large": 1}
    assert "64 MiB" in report.warnings[0].detail
    assert "Unterminated" not in report.warnings[0].detail


def _evtx_sample() -> Path:
    files = [p for p in iter_input_files([dataset("evtx-attack-samples")]) if p.suffix == ".evtx"]
    return max(files, key=lambda p: p.stat().st_size)


@pytest.mark.parametrize("field", [24, 32])
def test_fuzzed_chunk_header_counts_what_was_really_skipped(
    tmp_path: Path, read_all: Any, field: int
) -> None:
    """A damaged chunk whose header claims record ids 45..97e12 lost 43 records, not 9.7e13."""
    source = _evtx_sample()
    clean, _ = read_all(source)
    data = bytearray(source.read_bytes())
    second_chunk = 4096 + 65536
    for i in range(second_chunk + 600, second_chunk + 5000, 7):
        data[i] ^= 0x5A
    data[second_chunk + field : second_chunk + field + 8] = (97 * 10**12).to_bytes(8, "little")
    broken = tmp_path / "fuzzed.evtx"
    broken.write_bytes(bytes(data))
    events, report = read_all(broken)
    assert 0 < len(events) < len(clean)
    assert report.skipped == {"evtx-chunk": len(clean) - len(events)}
    # the same inside an archive, where the chunk is looked for in memory
    archive = tmp_path / "fuzzed.zip"
    with zipfile.ZipFile(archive, "w", zipfile.ZIP_DEFLATED) as handle:
        handle.writestr("fuzzed.evtx", bytes(data))
    events, report = read_all(archive)
    assert report.skipped == {"evtx-chunk": len(clean) - len(events)}


@pytest.mark.parametrize("kind", ["gz", "bz2", "zip"])
def test_decompression_bomb_is_skipped_with_a_reason(
    tmp_path: Path, read_all: Any, kind: str
) -> None:
    # A syslog line, then 640 MiB of one byte from well under a megabyte.
    block = b"x" * (16 << 20)
    path = tmp_path / f"bomb.{kind}"
    if kind == "zip":
        with (
            zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED) as handle,
            handle.open("bomb.log", "w") as out,
        ):
            out.write(LINE)
            for _ in range(40):
                out.write(block)
    else:  # concatenated members are one stream to gzip and bzip2 readers
        compress = gzip.compress if kind == "gz" else bz2.compress
        path.write_bytes(compress(LINE) + compress(block) * 40)
    assert path.stat().st_size * 500 < 40 * len(block)
    events, report = read_all(path)
    assert len(events) == 1
    assert report.skipped == {"decompression-limit": 1}
    assert "ratio over" in report.warnings[0].detail


def test_a_zip_inside_a_zip_is_named_in_the_skip_reason(tmp_path: Path, read_all: Any) -> None:
    inner = tmp_path / "inner.zip"
    with zipfile.ZipFile(inner, "w") as handle:
        handle.writestr("auth.log", LINE)
    outer = tmp_path / "outer.zip"
    with zipfile.ZipFile(outer, "w") as handle:
        handle.write(inner, "evidence/inner.zip")
        handle.writestr("auth.log", LINE)
    events, report = read_all(outer)
    assert len(events) == 1
    assert report.skipped == {"nested-archive": 1}
    (warning,) = report.warnings
    assert warning.path == f"{outer}!evidence/inner.zip"
    assert "zip inside a zip" in warning.detail


def test_folder_symlinks_are_followed_once(tmp_path: Path) -> None:
    real = tmp_path / "real"
    (real / "sub").mkdir(parents=True)
    (real / "sub" / "a.log").write_bytes(LINE)
    case = tmp_path / "case"
    case.mkdir()
    (case / "linked").symlink_to(real, target_is_directory=True)
    (case / "loop").symlink_to(case, target_is_directory=True)
    (case / "b.log").write_bytes(LINE)
    found = [p.relative_to(case).as_posix() for p in iter_input_files([case])]
    assert found == ["b.log", "linked/sub/a.log"]


def test_long_lines_cost_linear_memory_not_the_line(tmp_path: Path) -> None:
    """An overlong line is skipped by the line readers without being held (8 MiB cap)."""
    path = tmp_path / "long.log"
    with path.open("wb") as out:
        out.write(LINE)
        out.write(b"x" * (20 * 1024 * 1024) + b"\n")
        out.write(LINE)
    report = ReadReport()
    events = [e for batch in read_events(path, report=report) for e in batch]
    assert len(events) == 2 and report.skipped == {"line-too-long": 1}


@pytest.mark.parametrize("kind", ["zeek", "w3c"])
def test_split_read_of_a_header_does_not_hold_a_huge_first_line(tmp_path: Path, kind: str) -> None:
    """Every worker of a split read looks at the file's header; a 40 MiB first data line was
    read whole by each of them (800 MB line: 1.65 GB per worker)."""
    import tracemalloc

    from vedette.sources import ReadReport, plan_read_tasks, read_task

    if kind == "zeek":
        header = b"#separator \\x09\n#path\tdns\n#fields\tts\tquery\n#types\ttime\tstring\n"
        row = b"1.5\ta.example\n"
    else:
        header = b"#Software: IIS\n#Fields: date time cs-uri-stem\n"
        row = b"2024-01-01 00:00:00 /index.html\n"
    path = tmp_path / f"big.{kind}.log"
    with path.open("wb") as out:
        out.write(header + b"x" * (40 << 20) + b"\n" + row * 20_000)
    tasks = plan_read_tasks(path, target_bytes=8 << 20)
    later = [t for t in tasks if t.start >= (40 << 20)]
    assert later and later[0].format == kind
    tracemalloc.start()
    try:
        report = ReadReport()
        events = sum(len(batch) for batch in read_task(later[0], report=report))
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert events > 0 and report.skipped == {}
    assert peak < 24 << 20
