"""Syslog channel: RFC 5424 messages whose text is CEF, to another SIEM over UDP or TCP.

TCP uses RFC 6587 octet counting (``<length> <message>``), so multi-line values cannot split a
message. UDP has no acknowledgement: a datagram handed to the kernel counts as sent (the
channel is at-most-once on the wire; prefer TCP where loss matters).
"""

from __future__ import annotations

import socket
from datetime import UTC, datetime
from typing import Any, Final

from vedette import __version__
from vedette.notify.sender import DeliveryError
from vedette.store.state.channel_config import SyslogConfig

# Level -> (syslog severity, CEF severity 0-10).
SEVERITY: Final = {
    "critical": (2, 10),
    "high": (3, 8),
    "medium": (4, 5),
    "low": (5, 3),
    "informational": (6, 1),
}
MAX_UDP_BYTES: Final = 8192


def _header(value: Any) -> str:
    # CEF header fields: escape backslash and pipe, no line breaks.
    text = str(value if value is not None else "")
    return " ".join(text.replace("\\", "\\\\").replace("|", "\\|").split())


def _extension(value: Any) -> str:
    # CEF extension values: escape backslash and equals, line breaks as \n.
    text = str(value if value is not None else "")
    text = text.replace("\\", "\\\\").replace("=", "\\=")
    return text.replace("\r\n", "\\n").replace("\n", "\\n").replace("\r", "\\n")


def cef_of(body: dict[str, Any]) -> str:
    """``CEF:0|Vedette|Vedette|<version>|<rule id>|<title>|<severity>|<extension>``."""
    data = body.get("data") or {}
    level = str(data.get("level", "medium"))
    signature = data.get("rule_id") or body.get("kind", "notification")
    name = data.get("rule_title") or data.get("title") or body.get("kind", "")
    ext: list[tuple[str, Any]] = [
        ("externalId", body.get("delivery")),
        ("cat", body.get("kind")),
        ("cs1Label", "unit"),
        ("cs1", data.get("unit")),
        ("cs2Label", "object"),
        ("cs2", f"{body.get('object_type')}/{body.get('object_id')}"),
    ]
    if data.get("host"):
        ext.append(("dhost", data["host"]))
    techniques = [a.get("id") for a in data.get("attack") or [] if isinstance(a, dict)]
    if techniques:
        ext += [("cs3Label", "attack"), ("cs3", ",".join(str(t) for t in techniques))]
    if data.get("count") is not None:
        ext.append(("cnt", data["count"]))
    head = "|".join(
        _header(v)
        for v in (
            "CEF:0",
            "Vedette",
            "Vedette",
            __version__,
            signature,
            name,
            SEVERITY.get(level, (4, 5))[1],
        )
    )
    return head + "|" + " ".join(f"{k}={_extension(v)}" for k, v in ext if v is not None)


def rfc5424_of(config: SyslogConfig, body: dict[str, Any], *, now: datetime | None = None) -> str:
    """``<PRI>1 TIMESTAMP HOST APP - MSGID - CEF:...`` (no structured data)."""
    data = body.get("data") or {}
    severity = SEVERITY.get(str(data.get("level", "medium")), (4, 5))[0]
    pri = config.facility * 8 + severity
    stamp = (now or datetime.now(UTC)).isoformat(timespec="milliseconds").replace("+00:00", "Z")
    host = socket.gethostname().split(".")[0][:255] or "-"
    msgid = str(body.get("kind") or "-")[:32]
    return f"<{pri}>1 {stamp} {host} {config.app_name} - {msgid} - {cef_of(body)}"


def send_syslog(config: SyslogConfig, body: dict[str, Any]) -> None:
    """Send one message; TCP returns once the kernel took every byte, UDP once it was sent."""
    data = rfc5424_of(config, body).encode("utf-8")
    where = f"{config.protocol}://{config.host}:{config.port}"
    try:
        if config.protocol == "udp":
            with socket.socket(_family(config.host), socket.SOCK_DGRAM) as sock:
                sock.settimeout(config.timeout_s)
                sock.sendto(data[:MAX_UDP_BYTES], (config.host, config.port))
            return
        with socket.create_connection((config.host, config.port), config.timeout_s) as sock:
            sock.sendall(str(len(data)).encode() + b" " + data)
            sock.shutdown(socket.SHUT_WR)
    except OSError as exc:
        raise DeliveryError(f"syslog {where}: {exc}") from None


def _family(host: str) -> socket.AddressFamily:
    return socket.AF_INET6 if ":" in host else socket.AF_INET
