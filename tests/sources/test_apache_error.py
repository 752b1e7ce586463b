"""Apache error log reader."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from datasets import dataset
from vedette.sources.apache_error import parse_apache_error_line


def test_loghub_apache_error_log(read_all: Any) -> None:
    path = dataset("misc-logs", "syslog", "loghub", "Apache", "Apache_2k.log")
    events, report = read_all(path)
    assert len(events) == 2000
    assert report.skipped == {}
    assert report.events == {"apache_error": 2000}
    first = events[0]
    assert first.fields == {
        "level": "notice",
        "message": "workerEnv.init() ok /etc/httpd/conf/workers2.properties",
    }
    assert first.timestamp == datetime(2005, 12, 4, 4, 47, 44, tzinfo=UTC)
    assert first.logsource.services == frozenset({"apache"})


def test_apache_24_line() -> None:
    fields = parse_apache_error_line(
        "[Fri Sep 09 10:42:29.902022 2011] [core:error] [pid 35708:tid 4328636416] "
        "[client 72.15.99.187] File does not exist: /usr/local/apache2/htdocs/favicon.ico"
    )
    assert fields is not None
    assert fields["module"] == "core" and fields["level"] == "error"
    assert fields["pid"] == "35708" and fields["tid"] == "4328636416"
    assert fields["client"] == "72.15.99.187"
    assert fields["message"].startswith("File does not exist")
    assert parse_apache_error_line("[not a date] [error] x") is None
