"""Timestamps of every shape found in logs, to timezone-aware UTC datetimes.

A timestamp without a zone is taken as UTC: that is what Windows SystemTime, Zeek, Suricata and
CloudTrail write, and for syslog without a zone it is the least surprising choice for an analyst
comparing hosts (the documentation says so).
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any


def parse_timestamp(value: Any) -> datetime | None:
    """ISO 8601 / RFC 3339 string or epoch seconds to aware UTC; None when it is neither."""
    if value is None or isinstance(value, bool):
        return None
    if isinstance(value, int | float):
        return from_epoch(float(value))
    text = str(value).strip()
    if not text:
        return None
    try:
        parsed = datetime.fromisoformat(text)
    except ValueError:
        try:
            return from_epoch(float(text))
        except ValueError:
            parsed_or_none = _parse_loose(text)
            if parsed_or_none is None:
                return None
            parsed = parsed_or_none
    if parsed.tzinfo is None:
        return parsed.replace(tzinfo=UTC)
    return parsed.astimezone(UTC)


_fromisoformat = datetime.fromisoformat


def system_time(value: Any) -> datetime | None:
    """:func:`parse_timestamp`, with a fast path for ISO text in UTC (``Z`` or ``+00:00``), as
    EVTX SystemTime and most JSON logs write it (``2019-08-14T14:06:44.495674Z``): one
    ``fromisoformat`` call, no strip and no ``astimezone`` (which would return the same value)."""
    if type(value) is str:
        try:
            parsed = _fromisoformat(value)
        except ValueError:
            return parse_timestamp(value)
        if parsed.tzinfo is UTC:
            return parsed
    return parse_timestamp(value)


def from_epoch(seconds: float) -> datetime | None:
    """Epoch seconds (or milliseconds when implausibly large) to aware UTC."""
    if seconds > 1e11:  # milliseconds
        seconds /= 1000.0
    try:
        return datetime.fromtimestamp(seconds, tz=UTC)
    except (OverflowError, OSError, ValueError):
        return None


def _parse_loose(text: str) -> datetime | None:
    """Forms ``fromisoformat`` refuses: a trailing `` UTC``, or 7+ fraction digits with a zone."""
    if text.endswith(" UTC"):
        text = text[:-4]
    head, dot, rest = text.partition(".")
    if dot:
        digits = len(rest) - len(rest.lstrip("0123456789"))
        text = head + "." + rest[: min(digits, 6)] + rest[digits:]
    try:
        return datetime.fromisoformat(text)
    except ValueError:
        return None
