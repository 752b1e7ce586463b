"""Web access log reader (Common/Combined)."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from vedette.sources.weblog import parse_access_line


def test_combined_line() -> None:
    fields = parse_access_line(
        '203.0.113.9 - frank [10/Oct/2000:13:55:36 -0700] "GET /cgi-bin/.%2e/.%2e/etc/passwd?x=1 '
        'HTTP/1.1" 404 209 "-" "curl/7.68.0"'
    )
    assert fields is not None
    assert fields["timestamp"] == datetime(2000, 10, 10, 20, 55, 36, tzinfo=UTC)
    assert fields["c-ip"] == "203.0.113.9" and fields["cs-username"] == "frank"
    assert fields["cs-method"] == "GET" and fields["cs-version"] == "HTTP/1.1"
    assert fields["cs-uri-stem"] == "/cgi-bin/.%2e/.%2e/etc/passwd"
    assert fields["cs-uri-query"] == "/cgi-bin/.%2e/.%2e/etc/passwd?x=1"
    assert fields["c-uri-query"] == "x=1"
    assert fields["sc-status"] == 404 and fields["sc-bytes"] == 209
    assert fields["cs-user-agent"] == "curl/7.68.0" and "cs-referer" not in fields


def test_common_format_and_garbage() -> None:
    fields = parse_access_line('10.0.0.1 - - [01/Jan/2024:00:00:00 +0000] "\\x16\\x03\\x01" 400 -')
    assert fields is not None
    assert fields["cs-uri-query"] == "\\x16\\x03\\x01" and "cs-method" not in fields
    assert "sc-bytes" not in fields
    assert parse_access_line('10.0.0.1 - - [bad date] "GET / HTTP/1.1" 200 1') is None


def test_access_log_file(tmp_path: Path, read_all: Any) -> None:
    path = tmp_path / "access.log"
    path.write_text(
        '10.0.0.1 - - [01/Jan/2024:00:00:00 +0000] "GET /index.html HTTP/1.1" 200 512 "-" "x"\n'
        '10.0.0.2 - - [01/Jan/2024:00:00:01 +0000] "POST /wp-login.php HTTP/1.1" 302 0 "-" "y"\n'
        "garbage\n"
    )
    events, report = read_all(path)
    assert report.files == {"weblog": 1}
    assert report.skipped == {"weblog-parse": 1}
    assert [e.fields["cs-method"] for e in events] == ["GET", "POST"]
    assert events[0].logsource.categories == frozenset({"webserver"})
    assert events[1].source is not None and events[1].source.line == 2
