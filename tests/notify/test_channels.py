"""Each channel on its own: the webhook signature (and what a receiver must refuse), CEF and
RFC 5424 framing over TCP and UDP, and mail that is never sent without STARTTLS."""

from __future__ import annotations

import socket
import threading
from datetime import UTC, datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest
from aiosmtpd.controller import Controller
from receivers import SmtpReceiver, SyslogTcpReceiver, wait_for
from serverkit import free_port

from vedette.notify.email import send_email
from vedette.notify.sender import DeliveryError
from vedette.notify.syslog_out import cef_of, rfc5424_of, send_syslog
from vedette.notify.webhook import request_for, send_webhook, sign, verify
from vedette.store.state.channel_config import (
    ChannelConfigError,
    EmailConfig,
    Retry,
    WebhookConfig,
    parse_config,
)

BODY: dict[str, Any] = {
    "delivery": 42,
    "kind": "alert",
    "object_type": "alert",
    "object_id": "7",
    "data": {
        "unit": "branch-a",
        "level": "high",
        "rule_id": "r-1",
        "rule_title": "Odd | title = with\nnewline",
        "host": "WS-1",
        "attack": [{"id": "T1003.001"}],
        "count": 3,
    },
}


def test_webhook_signature_covers_timestamp_and_body() -> None:
    config = parse_config("webhook", {"url": "http://127.0.0.1:9/h"})
    assert not isinstance(config, str)
    request = request_for(config, "key", 42, BODY)  # type: ignore[arg-type]
    headers = dict(request.header_items())
    raw = request.data
    assert isinstance(raw, bytes)
    assert headers["X-vedette-delivery"] == "42"
    now = float(headers["X-vedette-timestamp"])
    assert verify("key", headers, raw, now=now)
    assert not verify("other", headers, raw, now=now)
    assert not verify("key", headers, raw + b" ", now=now)
    assert not verify("key", headers, raw, now=now + 301)  # a replay, too late
    forged = {**headers, "X-vedette-timestamp": str(int(now) + 10)}
    assert not verify("key", forged, raw, now=now)  # the timestamp is signed too
    assert sign("key", "1", b"{}") != sign("key", "2", b"{}")


def test_cef_escapes_header_and_extension() -> None:
    cef = cef_of(BODY)
    head = cef.split("|")
    assert head[:4] == ["CEF:0", "Vedette", "Vedette", head[3]]
    assert "Odd \\| title = with newline" in cef  # header: pipe escaped, no line break
    assert "externalId=42" in cef and "cs1=branch-a" in cef and "cs3=T1003.001" in cef
    assert "\n" not in cef
    line = rfc5424_of(
        parse_config("syslog", {"host": "h"}),  # type: ignore[arg-type]
        BODY,
        now=datetime(2026, 3, 1, tzinfo=UTC),
    )
    assert line.startswith("<131>1 2026-03-01T00:00:00.000Z ")  # local0 (16) * 8 + err (3)
    assert " vedette - alert - CEF:0|" in line


def test_syslog_over_tcp_and_udp() -> None:
    receiver = SyslogTcpReceiver(free_port()).start()
    try:
        config = parse_config("syslog", {"host": "127.0.0.1", "port": receiver.port,
                                         "protocol": "tcp"})  # fmt: skip
        send_syslog(config, BODY)  # type: ignore[arg-type]
        send_syslog(config, BODY)  # type: ignore[arg-type]
        wait_for(lambda: len(receiver.items()) == 2, "two framed messages")
        assert all("externalId=42" in m for m in receiver.items())
    finally:
        receiver.stop()
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as udp:
        udp.bind(("127.0.0.1", 0))
        udp.settimeout(10)
        config = parse_config("syslog", {"host": "127.0.0.1", "port": udp.getsockname()[1]})
        send_syslog(config, BODY)  # type: ignore[arg-type]
        assert b"CEF:0|Vedette" in udp.recv(9000)
    closed = parse_config("syslog", {"host": "127.0.0.1", "port": free_port(),
                                     "protocol": "tcp", "timeout": 1})  # fmt: skip
    with pytest.raises(DeliveryError, match="syslog tcp://"):
        send_syslog(closed, BODY)  # type: ignore[arg-type]


def _mail(port: int, **extra: Any) -> EmailConfig:
    config = parse_config("email", {"host": "127.0.0.1", "port": port, "from": "v@example.org",
                                    "to": "a@example.org", **extra})  # fmt: skip
    assert isinstance(config, EmailConfig)
    return config


def test_mail_goes_over_starttls_and_never_in_clear(tmp_path: Path) -> None:
    smtp = SmtpReceiver(free_port(), tmp_path).start()
    try:
        config = _mail(smtp.port, ca_file=str(smtp.ca_file))
        send_email(config, None, BODY)
        ((raw, tls),) = smtp.items()
        assert tls and b"Message-ID: <vedette-delivery-42@example.org>" in raw
        untrusted = _mail(smtp.port)
        with pytest.raises(DeliveryError, match="certificate"):
            send_email(untrusted, None, BODY)
    finally:
        smtp.stop()

    class Sink:
        def __init__(self) -> None:
            self.got: list[bytes] = []

        async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:
            self.got.append(envelope.content)
            return "250 OK"

    sink = Sink()
    plain = Controller(sink, hostname="127.0.0.1", port=free_port())  # offers no STARTTLS
    plain.start()
    try:
        config = _mail(plain.port)
        with pytest.raises(DeliveryError, match="STARTTLS"):
            send_email(config, None, BODY)
        assert sink.got == []
    finally:
        plain.stop()


def test_config_checks_and_back_off_cap() -> None:
    with pytest.raises(ChannelConfigError, match="protocol"):
        parse_config("syslog", {"host": "h", "protocol": "tls"})
    with pytest.raises(ChannelConfigError, match="retry_cap"):
        parse_config("webhook", {"url": "http://h/", "retry_base": 10, "retry_cap": 5})
    retry = Retry(1, 30)
    assert [retry.delay(n) for n in range(1, 8)] == [1, 2, 4, 8, 16, 30, 30]
    assert retry.delay(10_000) == 30


def test_webhook_takes_only_a_2xx_and_follows_no_redirect() -> None:
    answers = iter([500, 302, 404, 202])
    seen: list[str] = []

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            self.rfile.read(int(self.headers["Content-Length"]))
            seen.append(self.path)
            status = next(answers)
            self.send_response(status)
            if status == 302:
                self.send_header("Location", "/elsewhere")
            self.end_headers()
            self.wfile.write(b"no thanks")

        def log_message(self, *args: Any) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        config = parse_config("webhook", {"url": f"http://127.0.0.1:{server.server_port}/h"})
        assert isinstance(config, WebhookConfig)
        for status in ("HTTP 500", "HTTP 302", "HTTP 404"):
            with pytest.raises(DeliveryError, match=status):
                send_webhook(config, "key", 1, BODY)
        send_webhook(config, "key", 1, BODY)
    finally:
        server.shutdown()
        server.server_close()
    assert seen == ["/h"] * 4  # the redirect was not followed
