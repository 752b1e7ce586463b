"""Webhook channel: the JSON envelope POSTed, signed with HMAC-SHA256 over timestamp and body.

Headers: ``X-Vedette-Timestamp: <unix seconds>``, ``X-Vedette-Signature: sha256=<hex>`` where
the HMAC key is the channel's secret and the signed bytes are ``<timestamp>.<raw body>`` (so a
captured request cannot be replayed later with a new timestamp), and ``X-Vedette-Delivery:
<outbox id>``, the same on every retry of one notification: a receiver that remembers the ids
it has taken drops the rare resend after a crash between its answer and our record of it.
Any 2xx is an acknowledgement; anything else, or no answer within the timeout, is a failure.
"""

from __future__ import annotations

import hashlib
import hmac
import ssl
import time
import urllib.error
import urllib.request
from collections.abc import Mapping
from typing import Any, Final

import orjson

from vedette import __version__
from vedette.notify.sender import DeliveryError
from vedette.store.state.channel_config import WebhookConfig

SIGNATURE_HEADER: Final = "X-Vedette-Signature"
TIMESTAMP_HEADER: Final = "X-Vedette-Timestamp"
DELIVERY_HEADER: Final = "X-Vedette-Delivery"
DEFAULT_TOLERANCE_S: Final = 300


def sign(secret: str, timestamp: str, body: bytes) -> str:
    """``sha256=<hex>`` of HMAC-SHA256(secret, ``timestamp + "." + body``)."""
    mac = hmac.new(secret.encode(), timestamp.encode() + b"." + body, hashlib.sha256)
    return "sha256=" + mac.hexdigest()


def verify(
    secret: str,
    headers: Mapping[str, str],
    body: bytes,
    *,
    now: float | None = None,
    tolerance_s: float = DEFAULT_TOLERANCE_S,
) -> bool:
    """A receiver's check: the signature matches and the timestamp is within the tolerance."""
    lowered = {k.lower(): v for k, v in headers.items()}
    timestamp = lowered.get(TIMESTAMP_HEADER.lower(), "")
    signature = lowered.get(SIGNATURE_HEADER.lower(), "")
    try:
        age = abs((now if now is not None else time.time()) - int(timestamp))
    except ValueError:
        return False
    return age <= tolerance_s and hmac.compare_digest(sign(secret, timestamp, body), signature)


def request_for(
    config: WebhookConfig, secret: str | None, delivery_id: int, body: dict[str, Any]
) -> urllib.request.Request:
    """The signed POST request of one delivery."""
    raw = orjson.dumps(body)
    timestamp = str(int(time.time()))
    headers = {
        "Content-Type": "application/json",
        "User-Agent": f"vedette/{__version__}",
        DELIVERY_HEADER: str(delivery_id),
        TIMESTAMP_HEADER: timestamp,
    }
    if secret:
        headers[SIGNATURE_HEADER] = sign(secret, timestamp, raw)
    return urllib.request.Request(config.url, data=raw, headers=headers, method="POST")


def send_webhook(
    config: WebhookConfig, secret: str | None, delivery_id: int, body: dict[str, Any]
) -> None:
    """POST one delivery; returns on a 2xx answer, else raises DeliveryError."""
    request = request_for(config, secret, delivery_id, body)
    context = ssl.create_default_context(cafile=config.ca_file) if config.ca_file else None
    # No redirects: a signed body must not be replayed to wherever a 3xx points.
    opener = urllib.request.build_opener(_NoRedirect, urllib.request.HTTPSHandler(context=context))
    try:
        with opener.open(request, timeout=config.timeout_s) as answer:
            status = int(answer.status)
            answer.read(65536)
    except urllib.error.HTTPError as exc:
        detail = exc.read(200).decode("utf-8", "replace").strip()
        raise DeliveryError(f"HTTP {exc.code} from {config.url}: {detail}") from None
    except (urllib.error.URLError, OSError, TimeoutError) as exc:
        reason = getattr(exc, "reason", exc)
        raise DeliveryError(f"{config.url}: {reason}") from None
    if not 200 <= status < 300:
        raise DeliveryError(f"HTTP {status} from {config.url}")


class _NoRedirect(urllib.request.HTTPRedirectHandler):
    def redirect_request(self, *args: Any, **kwargs: Any) -> None:
        return None
