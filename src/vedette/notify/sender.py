"""One delivery to its channel: the envelope every channel carries, and the kind switch."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from vedette.store.state.channel_config import (
    ChannelConfig,
    EmailConfig,
    SyslogConfig,
    WebhookConfig,
    parse_config,
)
from vedette.store.state.notifications import Delivery


class DeliveryError(Exception):
    """The receiver did not acknowledge (the message says why); the delivery is retried."""


def envelope(delivery: Delivery) -> dict[str, Any]:
    """What is sent: the delivery id (the receiver's idempotency key), what it is about, the
    object's data."""
    return {
        "delivery": delivery.id,
        "kind": delivery.kind,
        "object_type": delivery.object_type,
        "object_id": delivery.object_id,
        "channel": delivery.channel_name,
        "created_at": _iso(delivery.created_at),
        "data": delivery.payload,
    }


def _iso(value: datetime) -> str:
    return value.isoformat().replace("+00:00", "Z")


def channel_config(delivery: Delivery) -> ChannelConfig:
    """The delivery's channel settings (a bad config is a failed delivery, retried)."""
    try:
        return parse_config(delivery.channel_kind, delivery.config)
    except ValueError as exc:
        raise DeliveryError(f"channel config: {exc}") from None


def send(delivery: Delivery) -> None:
    """Send one delivery; returns when the receiver acknowledged, else raises DeliveryError."""
    # Imported here: each channel module stays importable alone, with its own dependencies.
    from vedette.notify.email import send_email
    from vedette.notify.syslog_out import send_syslog
    from vedette.notify.webhook import send_webhook

    config = channel_config(delivery)
    body = envelope(delivery)
    if isinstance(config, WebhookConfig):
        send_webhook(config, delivery.secret, delivery.id, body)
    elif isinstance(config, EmailConfig):
        send_email(config, delivery.secret, body)
    elif isinstance(config, SyslogConfig):
        send_syslog(config, body)
    else:  # pragma: no cover - parse_config returns one of the three
        raise DeliveryError(f"no sender for {delivery.channel_kind}")
