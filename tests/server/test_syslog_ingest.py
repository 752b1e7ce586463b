"""Syslog into ``vedette serve`` over real loopback sockets: UDP, TCP (newline and octet-counted
framing), TLS with a test certificate, and source-network routes.

The lines are loghub's OpenSSH sample (a real sshd log with a password-guessing run); each
listener feeds its own unit, and what the centre stores and alerts is checked against the file
itself and against ``vedette scan`` of the same file with the same rules.
"""

from __future__ import annotations

import json
import socket
import ssl
import subprocess
import time
from collections import Counter
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import trustme
from serverkit import VEDETTE, Centre, add_token, free_port, make_centre

from datasets import dataset

pytestmark = pytest.mark.contract

STARTER = Path(__file__).resolve().parents[2] / "src" / "vedette" / "rulepacks" / "starter"
UNITS = [
    ("hq", None),
    ("udp-unit", "hq"),
    ("tcp-unit", "hq"),
    ("octet-unit", "hq"),
    ("tls-unit", "hq"),
]
UDP_LINES = 300
QUIET = ["--no-summary"]


def openssh_log() -> Path:
    return dataset("misc-logs", "syslog", "loghub", "OpenSSH", "OpenSSH_2k.log")


def openssh_lines() -> list[bytes]:
    return [line for line in openssh_log().read_bytes().splitlines() if line.strip()]


def scan_detections(path: Path) -> Counter[str]:
    """Detections per rule id from ``vedette scan`` of ``path`` with the starter rules."""
    done = subprocess.run(
        [
            *VEDETTE,
            "scan",
            "--rules",
            str(STARTER),
            "-f",
            "jsonl",
            "--no-progress",
            *QUIET,
            str(path),
        ],
        capture_output=True,
        timeout=120,
    )
    assert done.returncode == 0, done.stderr
    return Counter(json.loads(line)["rule_id"] for line in done.stdout.splitlines() if line)


def hunt(centre: Centre, token: str, sql: str, units: list[str]) -> list[list[Any]]:
    with centre.client(token) as http:
        answer = http.post("/api/v1/hunt", json={"sql": sql, "units": units, "limit": 10_000})
    assert answer.status_code == 200, answer.text
    return list(answer.json()["rows"])


def alert_counts(centre: Centre, token: str, unit: str) -> Counter[str]:
    """Detections per rule id in ``unit``'s alerts."""
    counts: Counter[str] = Counter()
    with centre.client(token) as http:
        page = http.get("/api/v1/alerts", params={"unit": unit, "limit": 1000}).json()
    assert page["next"] is None
    for alert in page["items"]:
        assert alert["unit"] == unit
        counts[alert["rule_id"]] += alert["count"]
    return counts


def wait_alerts(
    centre: Centre, token: str, unit: str, expected: Counter[str], timeout: float = 30
) -> Counter[str]:
    """The unit's alert counts once they reach ``expected`` (or at the timeout)."""
    deadline = time.monotonic() + timeout
    counts = alert_counts(centre, token, unit)
    while counts != expected and time.monotonic() < deadline:
        time.sleep(0.3)
        counts = alert_counts(centre, token, unit)
    return counts


def octet_counted(lines: list[bytes]) -> bytes:
    """RFC 6587 section 3.4.1 framing: ``LEN SP MSG`` per message."""
    return b"".join(b"%d %s" % (len(line), line) for line in lines)


def send_udp(port: int, lines: list[bytes], source: str = "127.0.0.1") -> None:
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
        sock.bind((source, 0))
        for number, line in enumerate(lines):
            sock.sendto(line, ("127.0.0.1", port))
            if number % 10 == 9:
                time.sleep(0.01)  # paced: the kernel's receive buffer is not the test's subject


def send_tcp(port: int, payload: bytes, source: str = "127.0.0.1") -> None:
    with socket.create_connection(("127.0.0.1", port), timeout=30, source_address=(source, 0)) as s:
        s.sendall(payload)
        s.shutdown(socket.SHUT_WR)
        s.recv(1)  # the server closes once it has read everything


@pytest.fixture
def tls_files(tmp_path: Path) -> Iterator[tuple[Path, Path, trustme.CA]]:
    ca = trustme.CA()
    cert = ca.issue_cert("127.0.0.1", "localhost")
    cert_path, key_path = tmp_path / "server.pem", tmp_path / "server.key"
    cert.cert_chain_pems[0].write_to_path(str(cert_path))
    for extra in cert.cert_chain_pems[1:]:
        with cert_path.open("ab") as f:
            f.write(extra.bytes())
    cert.private_key_pem.write_to_path(str(key_path))
    yield cert_path, key_path, ca


def test_every_listener_stores_the_real_sshd_log_in_its_unit_and_alerts_like_scan(
    tmp_path: Path, tls_files: tuple[Path, Path, trustme.CA]
) -> None:
    cert_path, key_path, ca = tls_files
    ports = {
        "udp": free_port(socket.SOCK_DGRAM),
        "tcp": free_port(),
        "octet": free_port(),
        "tls": free_port(),
    }
    centre = make_centre(
        tmp_path / "home",
        units=UNITS,
        args=[
            "--rules",
            str(STARTER),
            "--syslog-udp",
            f"127.0.0.1:{ports['udp']}=udp-unit",
            "--syslog-tcp",
            f"127.0.0.1:{ports['tcp']}=tcp-unit",
            "--syslog-tcp",
            f"127.0.0.1:{ports['octet']}=octet-unit",
            "--syslog-tls",
            f"127.0.0.1:{ports['tls']}=tls-unit",
            "--tls-cert",
            str(cert_path),
            "--tls-key",
            str(key_path),
        ],
    )
    analyst = add_token(centre.home, "hq", "analyst")
    lines = openssh_lines()
    assert len(lines) == 2000
    # What a relay adds in front of a file's line: a PRI (auth.info).
    with_pri = [b"<38>" + line for line in lines]
    centre.start()
    try:
        send_tcp(ports["tcp"], b"".join(line + b"\n" for line in lines))
        send_tcp(ports["octet"], octet_counted(with_pri))
        context = ssl.create_default_context()
        ca.configure_trust(context)
        with (
            socket.create_connection(("127.0.0.1", ports["tls"]), timeout=30) as raw,
            context.wrap_socket(raw, server_hostname="127.0.0.1") as tls,
        ):
            tls.sendall(octet_counted(with_pri[:1000]))
            tls.sendall(b"".join(line + b"\n" for line in with_pri[1000:]))
            # Read what the server sent (TLS 1.3 session tickets) and close cleanly: closing
            # with unread data would send a RST, and the peer's kernel drops what it holds.
            tls.unwrap().recv(1)
        send_udp(ports["udp"], with_pri[:UDP_LINES])
        expected = {"tcp-unit": 2000, "octet-unit": 2000, "tls-unit": 2000, "udp-unit": UDP_LINES}
        for unit, count in expected.items():
            record = centre.wait_stored(analyst, unit, count, timeout=60)
            assert record["events_stored"] == count, record
            assert record["events_received"] == count, record
        for unit, count in expected.items():
            rows = hunt(
                centre,
                analyst,
                "SELECT unit, product, list_contains(services, 'sshd'), host, count(*) "
                "FROM events GROUP BY ALL",
                [unit],
            )
            assert rows == [[unit, "linux", True, "LabSZ", count]], (unit, rows)
            # Every line stored whole and once: the distinct texts are the file's.
            distinct = hunt(
                centre,
                analyst,
                "SELECT count(DISTINCT fields->>'message') FROM events",
                [unit],
            )[0][0]
            assert distinct == len({_message(line) for line in lines[:count]}), (unit, distinct)
        # Detections: the same as `vedette scan` of the same file, per unit, for every unit
        # that received the whole log in order.
        expected_alerts = scan_detections(openssh_log())
        assert sum(expected_alerts.values()) >= 3, expected_alerts
        for unit in ("tcp-unit", "octet-unit", "tls-unit"):
            assert wait_alerts(centre, analyst, unit, expected_alerts) == expected_alerts, unit
        metrics = centre_metrics(centre)
        for name in ("udp", "tcp", "octet", "tls"):
            listener = {"udp": "udp", "tls": "tls"}.get(name, "tcp")
            label = f'listener="{listener}:{ports[name]}",outcome="submitted"'
            sent = UDP_LINES if name == "udp" else 2000
            assert f"vedette_syslog_messages_total{{{label}}} {float(sent)}" in metrics, name
    finally:
        assert centre.stop() == 0


def test_source_network_routes_pick_the_unit_on_every_listener(tmp_path: Path) -> None:
    udp_port, tcp_port = free_port(socket.SOCK_DGRAM), free_port()
    centre = make_centre(
        tmp_path / "home",
        units=[("hq", None), ("loopback-1", "hq"), ("loopback-2", "hq"), ("default", "hq")],
        args=[
            "--rules",
            str(STARTER),
            "--syslog-udp",
            f"127.0.0.1:{udp_port}=default",
            "--syslog-tcp",
            f"127.0.0.1:{tcp_port}=default",
            # The first route holding the peer wins.
            "--syslog-route",
            "127.0.0.2/32=loopback-2",
            "--syslog-route",
            "127.0.0.0/8=loopback-1",
        ],
    )
    analyst = add_token(centre.home, "hq", "analyst")
    lines = [b"<38>" + line for line in openssh_lines()[:100]]
    centre.start()
    try:
        send_tcp(tcp_port, b"".join(line + b"\n" for line in lines[:60]), source="127.0.0.2")
        send_tcp(tcp_port, b"".join(line + b"\n" for line in lines[60:]), source="127.0.0.1")
        send_udp(udp_port, lines[:30], source="127.0.0.2")
        send_udp(udp_port, lines[:20], source="127.0.0.1")
        centre.wait_stored(analyst, "loopback-2", 90)
        centre.wait_stored(analyst, "loopback-1", 60)
        time.sleep(1.0)  # anything misrouted would be stored by now too
        with centre.client(analyst) as http:
            units = {u["name"]: u for u in http.get("/api/v1/units").json()["items"]}
        assert units["loopback-2"]["events_stored"] == 90
        assert units["loopback-1"]["events_stored"] == 60
        assert units["default"]["events_received"] == 0
        rows = hunt(
            centre, analyst, "SELECT unit, count(*) FROM events GROUP BY ALL ORDER BY 1", []
        )
        assert rows == [], rows  # an empty unit list reads nothing
        rows = hunt(
            centre,
            analyst,
            "SELECT unit, count(*) FROM events GROUP BY ALL ORDER BY 1",
            ["loopback-1", "loopback-2", "default"],
        )
        assert rows == [["loopback-1", 60], ["loopback-2", 90]], rows
    finally:
        assert centre.stop() == 0


def centre_metrics(centre: Centre) -> str:
    import httpx

    return httpx.get(centre.url + "/metrics", timeout=10).text


def _message(line: bytes) -> str:
    """The message part of an RFC 3164 line after ``TAG[PID]: ``."""
    text = line.decode()
    return text.split(": ", 1)[1] if ": " in text else text
