"""Web server logs on real files: an Apache access log and an IIS W3C log of real attacks."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from datasets import dataset

C2 = ("evtx-attack-samples", "Command and Control")


def test_apache_access_log_with_attack_payloads(read_all: Any) -> None:
    path = dataset(*C2, "web_attack_and_isp_webshell_localhost_access_log.txt")
    events, report = read_all(path)
    lines = [line for line in path.read_bytes().splitlines() if line.strip()]
    assert len(events) == len(lines)
    assert report.skipped == {"encoding": 1}  # one line in Latin-1: read, and counted
    xss = next(e for e in events if "IISWebAgentIF.dll?postdata=" in e.fields["cs-uri-query"])
    assert xss.fields["cs-uri-stem"] == "/WebID/IISWebAgentIF.dll"
    assert xss.fields["c-uri-query"] == 'postdata="><script>foo</script>'
    assert xss.fields["sc-status"] == 404
    first = events[0]
    assert first.fields["c-ip"] == "192.168.105.83"
    assert first.timestamp == datetime(2018, 7, 11, 5, 41, 28, tzinfo=UTC)
    assert first.logsource.categories == frozenset({"webserver"})


def test_iis_w3c_log(read_all: Any) -> None:
    path = dataset(*C2, "Tunna_rdp_tunnel_IIS.log")
    events, report = read_all(path)
    data = [line for line in path.read_bytes().splitlines() if line.strip() and line[:1] != b"#"]
    assert len(events) == len(data)
    assert report.skipped == {}
    assert report.files == {"w3c": 1}
    first = events[0]
    assert first.fields["cs-method"] == "GET"
    assert first.fields["cs-uri-stem"] == "/erp/conn.aspx"
    assert first.fields["c-uri-query"] == "proxy&port=3389&ip=127.0.0.1"
    assert first.fields["cs-uri-query"] == "/erp/conn.aspx?proxy&port=3389&ip=127.0.0.1"
    assert first.fields["sc-status"] == 200 and first.fields["s-port"] == 80
    assert "cs-username" not in first.fields  # "-" is an empty field
    assert first.timestamp == datetime(2019, 9, 3, 10, 13, 36, tzinfo=UTC)
    assert first.logsource.categories == frozenset({"webserver"})


def test_w3c_user_agent_and_bad_lines(tmp_path: Path, read_all: Any) -> None:
    path = tmp_path / "u_ex240101.log"
    path.write_text(
        "#Software: Microsoft Internet Information Services 10.0\n"
        "#Fields: date time cs-method cs-uri-stem cs-uri-query cs(User-Agent) sc-status\n"
        "2024-01-01 00:00:01 GET /owa/auth.owa - Mozilla/5.0+(Windows+NT+10.0) 302\n"
        "2024-01-01 00:00:02 GET /short\n"
    )
    events, report = read_all(path)
    assert report.skipped == {"w3c-columns": 1}
    (event,) = events
    assert event.fields["cs-user-agent"] == "Mozilla/5.0 (Windows NT 10.0)"
    assert event.fields["cs-uri-query"] == "/owa/auth.owa"
    assert "c-uri-query" not in event.fields
