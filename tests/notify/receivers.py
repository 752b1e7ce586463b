"""Local receivers for the notification tests: a webhook endpoint that checks the signature
itself (its own HMAC, not Vedette's helper), an SMTP server with STARTTLS (aiosmtpd), and a
syslog TCP listener reading octet-counted frames. All on 127.0.0.1, on ports given to them, so
a test can keep a receiver down and bring it up later on the same port."""

from __future__ import annotations

import hashlib
import hmac
import json
import socket
import ssl
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import trustme
from aiosmtpd.controller import Controller


@dataclass
class Received:
    """One webhook request as the receiver saw it."""

    delivery: int
    body: dict[str, Any]
    signature_ok: bool


@dataclass
class WebhookReceiver:
    """POST endpoint that records every request and answers 204 when the signature is right,
    401 when not. ``hold`` (if set) is called with each request before answering (a test uses
    it to keep a request open while it kills the centre)."""

    port: int
    secret: str
    received: list[Received] = field(default_factory=list)
    hold: Callable[[Received], None] | None = None
    server: ThreadingHTTPServer | None = None
    lock: threading.Lock = field(default_factory=threading.Lock)

    def start(self) -> WebhookReceiver:
        outer = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                raw = self.rfile.read(int(self.headers.get("Content-Length", "0")))
                stamp = self.headers.get("X-Vedette-Timestamp", "")
                expected = (
                    "sha256="
                    + hmac.new(
                        outer.secret.encode(), stamp.encode() + b"." + raw, hashlib.sha256
                    ).hexdigest()
                )
                fresh = stamp.isdigit() and abs(time.time() - int(stamp)) < 300
                ok = fresh and hmac.compare_digest(
                    expected, self.headers.get("X-Vedette-Signature", "")
                )
                item = Received(
                    int(self.headers.get("X-Vedette-Delivery", "0")), json.loads(raw), ok
                )
                with outer.lock:
                    outer.received.append(item)
                if outer.hold is not None:
                    outer.hold(item)
                self.send_response(204 if ok else 401)
                self.end_headers()

            def log_message(self, *args: Any) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", self.port), Handler)
        self.server.daemon_threads = True
        threading.Thread(target=self.server.serve_forever, daemon=True).start()
        return self

    def stop(self) -> None:
        if self.server is not None:
            self.server.shutdown()
            self.server.server_close()
            self.server = None

    def items(self) -> list[Received]:
        with self.lock:
            return list(self.received)


class _MailHandler:
    def __init__(self, sink: SmtpReceiver) -> None:
        self.sink = sink

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:
        with self.sink.lock:
            self.sink.messages.append((envelope.content, session.ssl is not None))
        return "250 OK"


@dataclass
class SmtpReceiver:
    """An SMTP server that requires STARTTLS, with a certificate from a throwaway CA; the CA's
    file is what the channel's ``ca_file`` points at."""

    port: int
    folder: Path
    messages: list[tuple[bytes, bool]] = field(default_factory=list)
    lock: threading.Lock = field(default_factory=threading.Lock)
    controller: Controller | None = None

    def __post_init__(self) -> None:
        self.ca = trustme.CA()
        self.ca_file = self.folder / "smtp-ca.pem"
        self.ca.cert_pem.write_to_path(str(self.ca_file))

    def start(self) -> SmtpReceiver:
        context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
        self.ca.issue_cert("127.0.0.1").configure_cert(context)
        self.controller = Controller(
            _MailHandler(self),
            hostname="127.0.0.1",
            port=self.port,
            tls_context=context,
            require_starttls=True,
        )
        self.controller.start()
        return self

    def stop(self) -> None:
        if self.controller is not None:
            self.controller.stop()
            self.controller = None

    def items(self) -> list[tuple[bytes, bool]]:
        with self.lock:
            return list(self.messages)


@dataclass
class SyslogTcpReceiver:
    """Reads RFC 6587 octet-counted frames from any connection; keeps each message's text."""

    port: int
    messages: list[str] = field(default_factory=list)
    lock: threading.Lock = field(default_factory=threading.Lock)
    sock: socket.socket | None = None

    def start(self) -> SyslogTcpReceiver:
        self.sock = socket.create_server(("127.0.0.1", self.port))
        threading.Thread(target=self._accept, daemon=True).start()
        return self

    def _accept(self) -> None:
        assert self.sock is not None
        while True:
            try:
                conn, _ = self.sock.accept()
            except OSError:
                return
            threading.Thread(target=self._read, args=(conn,), daemon=True).start()

    def _read(self, conn: socket.socket) -> None:
        data = b""
        with conn:
            while chunk := conn.recv(65536):
                data += chunk
        while data:
            length, _, rest = data.partition(b" ")
            size = int(length)
            with self.lock:
                self.messages.append(rest[:size].decode())
            data = rest[size:]

    def stop(self) -> None:
        if self.sock is not None:
            self.sock.close()
            self.sock = None

    def items(self) -> list[str]:
        with self.lock:
            return list(self.messages)


def wait_for(check: Callable[[], bool], what: str, timeout: float = 90.0) -> None:
    """Poll ``check`` until true; fail naming ``what`` after ``timeout``."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if check():
            return
        time.sleep(0.2)
    raise AssertionError(f"timed out waiting for {what}")
