"""Email channel: one mail per notification through an SMTP relay, STARTTLS by default.

STARTTLS is required unless the channel turns it off: a relay that does not offer it is a
failed delivery, never a fall-back to clear text. The certificate is checked against the system
store, or the channel's ``ca_file``. The ``Message-ID`` is derived from the delivery id, so a
mail resent after a crash carries the same id as the first.
"""

from __future__ import annotations

import smtplib
import ssl
from email.message import EmailMessage
from email.utils import formatdate
from typing import Any

import orjson

from vedette.notify.sender import DeliveryError
from vedette.store.state.channel_config import EmailConfig


def subject_of(body: dict[str, Any]) -> str:
    """``[Vedette] HIGH alert in branch-a: <title>`` (one line, bounded)."""
    data = body.get("data") or {}
    level = str(data.get("level", "")).upper()
    unit = data.get("unit", "?")
    title = data.get("rule_title") or data.get("title") or body.get("object_type", "")
    text = f"[Vedette] {level} {body.get('kind', '')} in {unit}: {title}"
    return " ".join(text.split())[:200]


def text_of(body: dict[str, Any]) -> str:
    """A plain-text mail body: the main facts first, then the whole envelope as JSON."""
    data = body.get("data") or {}
    lines = [subject_of(body), ""]
    for key in ("unit", "level", "rule_id", "host", "count", "first_seen", "last_seen"):
        if data.get(key) is not None:
            lines.append(f"{key}: {data[key]}")
    techniques = [a.get("id") for a in data.get("attack") or [] if isinstance(a, dict)]
    if techniques:
        lines.append("ATT&CK: " + ", ".join(str(t) for t in techniques))
    lines += ["", f"delivery: {body.get('delivery')}", ""]
    lines.append(orjson.dumps(body, option=orjson.OPT_INDENT_2).decode())
    return "\n".join(lines) + "\n"


def message_for(config: EmailConfig, body: dict[str, Any]) -> EmailMessage:
    """The mail of one delivery."""
    message = EmailMessage()
    message["From"] = config.sender
    message["To"] = ", ".join(config.recipients)
    message["Subject"] = subject_of(body)
    message["Date"] = formatdate(localtime=False)
    domain = config.sender.rpartition("@")[2] or "vedette.invalid"
    message["Message-ID"] = f"<vedette-delivery-{body.get('delivery')}@{domain}>"
    message["X-Vedette-Delivery"] = str(body.get("delivery"))
    message.set_content(text_of(body))
    return message


def send_email(config: EmailConfig, password: str | None, body: dict[str, Any]) -> None:
    """Hand one mail to the relay; returns when it accepted it, else raises DeliveryError."""
    message = message_for(config, body)
    where = f"{config.host}:{config.port}"
    try:
        with smtplib.SMTP(config.host, config.port, timeout=config.timeout_s) as smtp:
            smtp.ehlo()
            if config.starttls:
                context = ssl.create_default_context(cafile=config.ca_file)
                smtp.starttls(context=context)
                smtp.ehlo()
            if config.username:
                smtp.login(config.username, password or "")
            refused = smtp.send_message(message)
    except smtplib.SMTPNotSupportedError:
        raise DeliveryError(f"{where} does not offer STARTTLS") from None
    except smtplib.SMTPException as exc:
        raise DeliveryError(f"SMTP {where}: {exc}") from None
    except OSError as exc:  # ssl.SSLError and timeouts included
        raise DeliveryError(f"SMTP {where}: {exc}") from None
    if refused:
        # Some recipients taken, some refused: the relay holds the mail for the others, so a
        # resend would duplicate it; the refusals are logged by the caller through the error.
        raise DeliveryError(f"SMTP {where} refused recipients: {sorted(refused)}")
