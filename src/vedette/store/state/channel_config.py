"""A channel's settings, checked: what the ``config`` JSON of a notification channel may hold.

The state store keeps ``config`` as free JSON; this module is the one place that says which
keys each kind takes, so the admin command, the API and the dispatcher agree on them.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Final
from urllib.parse import urlsplit

CHANNEL_KINDS: Final = ("webhook", "email", "syslog")
NOTIFY_KINDS: Final = ("alert", "incident", "warning", "bulletin")
DEFAULT_TIMEOUT_S: Final = 10.0
DEFAULT_RETRY_BASE_S: Final = 5.0
DEFAULT_RETRY_CAP_S: Final = 900.0


class ChannelConfigError(ValueError):
    """A channel's config is missing a key or holds a bad value."""


@dataclass(frozen=True, slots=True)
class Retry:
    """Exponential back-off: ``base * 2**(attempt-1)`` seconds, never above ``cap``."""

    base_s: float = DEFAULT_RETRY_BASE_S
    cap_s: float = DEFAULT_RETRY_CAP_S

    def delay(self, attempts: int) -> float:
        """Seconds to wait after the ``attempts``-th failed try."""
        return float(min(self.cap_s, self.base_s * 2 ** max(0, min(attempts - 1, 30))))


@dataclass(frozen=True, slots=True)
class WebhookConfig:
    """POST the JSON payload to ``url``, signed with the channel's secret."""

    url: str
    timeout_s: float
    retry: Retry
    ca_file: str | None = None


@dataclass(frozen=True, slots=True)
class EmailConfig:
    """Mail through an SMTP relay, STARTTLS unless the channel says otherwise."""

    host: str
    port: int
    sender: str
    recipients: tuple[str, ...]
    timeout_s: float
    retry: Retry
    starttls: bool = True
    username: str | None = None
    ca_file: str | None = None


@dataclass(frozen=True, slots=True)
class SyslogConfig:
    """RFC 5424 messages carrying CEF, over UDP or TCP (octet-counted frames)."""

    host: str
    port: int
    protocol: str
    timeout_s: float
    retry: Retry
    facility: int = 16
    app_name: str = "vedette"


ChannelConfig = WebhookConfig | EmailConfig | SyslogConfig


def _number(config: dict[str, Any], key: str, default: float, low: float, high: float) -> float:
    value = config.get(key, default)
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise ChannelConfigError(f"{key} must be a number")
    if not low <= value <= high:
        raise ChannelConfigError(f"{key} must be between {low} and {high}")
    return float(value)


def _text(config: dict[str, Any], key: str, *, required: bool = True) -> str | None:
    value = config.get(key)
    if value is None and not required:
        return None
    if not isinstance(value, str) or not value.strip():
        raise ChannelConfigError(f"{key} is required (a non-empty string)")
    return value.strip()


def _port(config: dict[str, Any], default: int) -> int:
    value = config.get("port", default)
    if isinstance(value, bool) or not isinstance(value, int) or not 1 <= value <= 65535:
        raise ChannelConfigError("port must be an integer 1-65535")
    return value


def _retry(config: dict[str, Any]) -> Retry:
    base = _number(config, "retry_base", DEFAULT_RETRY_BASE_S, 0.1, 3600)
    cap = _number(config, "retry_cap", DEFAULT_RETRY_CAP_S, base, 86400)
    return Retry(base, cap)


def parse_config(kind: str, config: dict[str, Any]) -> ChannelConfig:
    """The checked settings of a ``kind`` channel; :class:`ChannelConfigError` if bad."""
    if not isinstance(config, dict):
        raise ChannelConfigError("config must be an object")
    timeout = _number(config, "timeout", DEFAULT_TIMEOUT_S, 0.5, 120)
    retry = _retry(config)
    if kind == "webhook":
        url = _text(config, "url")
        assert url is not None
        parts = urlsplit(url)
        if parts.scheme not in ("http", "https") or not parts.hostname:
            raise ChannelConfigError("url must be an http:// or https:// URL with a host")
        return WebhookConfig(url, timeout, retry, _text(config, "ca_file", required=False))
    if kind == "email":
        host = _text(config, "host")
        sender = _text(config, "from")
        recipients = config.get("to")
        if isinstance(recipients, str):
            recipients = [r.strip() for r in recipients.split(",") if r.strip()]
        if (
            not isinstance(recipients, list)
            or not recipients
            or not all(isinstance(r, str) and "@" in r for r in recipients)
        ):
            raise ChannelConfigError("to must be a list of one or more mail addresses")
        if sender is None or "@" not in sender:
            raise ChannelConfigError("from must be a mail address")
        starttls = config.get("starttls", True)
        if not isinstance(starttls, bool):
            raise ChannelConfigError("starttls must be true or false")
        assert host is not None
        return EmailConfig(
            host=host,
            port=_port(config, 587),
            sender=sender,
            recipients=tuple(recipients),
            timeout_s=timeout,
            retry=retry,
            starttls=starttls,
            username=_text(config, "username", required=False),
            ca_file=_text(config, "ca_file", required=False),
        )
    if kind == "syslog":
        host = _text(config, "host")
        protocol = config.get("protocol", "udp")
        if protocol not in ("udp", "tcp"):
            raise ChannelConfigError("protocol must be udp or tcp")
        facility = config.get("facility", 16)
        if isinstance(facility, bool) or not isinstance(facility, int) or not 0 <= facility <= 23:
            raise ChannelConfigError("facility must be an integer 0-23")
        assert host is not None
        return SyslogConfig(host, _port(config, 514), protocol, timeout, retry, facility)
    raise ChannelConfigError(f"kind must be one of {', '.join(CHANNEL_KINDS)}")


def lease_seconds(config: ChannelConfig) -> float:
    """How long a claimed delivery stays away from other dispatchers: its worst send time.

    Email takes several round trips, each bounded by the timeout; a crash mid-send makes the
    delivery due again once the lease ends.
    """
    return 4 * config.timeout_s + 5
