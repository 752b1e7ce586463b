"""QA: plain-list and CSV feeds in the encodings analysts really receive, and binary files."""

from __future__ import annotations

import gzip
import random
from pathlib import Path

import pytest

from vedette.errors import FeedError
from vedette.intel.feeds import FeedSpec, load_feed

IOC_LINES = "203.0.113.7\r\nevil.example.com\r\n"


def test_utf16_list_from_notepad_loads(tmp_path: Path) -> None:
    path = tmp_path / "iocs.txt"
    path.write_bytes(IOC_LINES.encode("utf-16"))  # BOM + UTF-16LE, as Notepad saves "Unicode"
    indicators, report = load_feed(FeedSpec(path))
    assert sorted((i.type, i.value) for i in indicators) == [
        ("domain", "evil.example.com"),
        ("ip", "203.0.113.7"),
    ]
    assert report.unsupported == []


def test_utf16_csv_loads(tmp_path: Path) -> None:
    path = tmp_path / "iocs.csv"
    path.write_bytes("value,type\r\n203.0.113.7,ip-dst\r\n".encode("utf-16"))
    indicators, _ = load_feed(FeedSpec(path))
    assert [(i.type, i.value) for i in indicators] == [("ip", "203.0.113.7")]


def test_gzip_list_still_loads(tmp_path: Path) -> None:
    path = tmp_path / "iocs.txt.gz"
    path.write_bytes(gzip.compress(IOC_LINES.encode()))
    indicators, _ = load_feed(FeedSpec(path))
    assert len(indicators) == 2


def test_binary_file_is_refused_not_mined_for_indicators(tmp_path: Path) -> None:
    path = tmp_path / "sample.bin"
    rng = random.Random(7)
    path.write_bytes(b"MZ\x90\x00" + bytes(rng.randrange(256) for _ in range(5000)))
    with pytest.raises(FeedError, match="binary"):
        load_feed(FeedSpec(path))


def test_line_with_undecodable_bytes_is_not_an_indicator(tmp_path: Path) -> None:
    path = tmp_path / "iocs.txt"
    path.write_bytes(b"203.0.113.7\n\xff\xfe/\xc3(x.y\n")
    indicators, report = load_feed(FeedSpec(path))
    assert [i.value for i in indicators] == ["203.0.113.7"]
    assert [w.reason for w in report.unsupported] == ["list-value"]
    assert "not text" in report.unsupported[0].detail


def test_folder_without_feed_files_is_an_error(tmp_path: Path) -> None:
    from vedette.intel.feeds import expand_feed_paths

    (tmp_path / "README.md").write_text("not a feed\n")
    with pytest.raises(FeedError, match="no feed files"):
        expand_feed_paths([tmp_path])
