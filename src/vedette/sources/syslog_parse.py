"""Syslog line parsing, RFC 5424 and RFC 3164 (BSD), with or without the ``<PRI>`` prefix.

Samples::

    <34>1 2003-10-11T22:14:15.003Z mymachine.example.com su - ID47 - 'su root' failed on /dev/pts/8
    <13>Feb  5 17:32:18 10.0.0.99 myapp[123]: Use the BFG!
    Jun 14 15:16:01 combo sshd(pam_unix)[19939]: authentication failure; ... rhost=218.188.2.4
    2024-01-02T03:04:05.123456+00:00 web01 sudo:   alice : TTY=pts/0 ; COMMAND=/bin/ls

Specs: https://www.rfc-editor.org/rfc/rfc5424 and https://www.rfc-editor.org/rfc/rfc3164

:func:`parse_syslog_line` is pure (no I/O, no state) so that the network listeners of the
monitoring centre use exactly the parsing the file reader uses.
"""

from __future__ import annotations

import re
from datetime import UTC, datetime
from typing import Any

from vedette.normalize.timeparse import parse_timestamp

FACILITIES = (
    "kern", "user", "mail", "daemon", "auth", "syslog", "lpr", "news", "uucp", "cron",
    "authpriv", "ftp", "ntp", "security", "console", "solaris-cron",
    "local0", "local1", "local2", "local3", "local4", "local5", "local6", "local7",
)  # fmt: skip
SEVERITIES = ("emerg", "alert", "crit", "err", "warning", "notice", "info", "debug")

_PRI = re.compile(r"<(\d{1,3})>")
_RFC5424 = re.compile(
    r"(?P<version>\d{1,2}) (?P<time>\S+) (?P<host>\S+) (?P<app>\S+) (?P<procid>\S+) "
    r"(?P<msgid>\S+) (?P<rest>.*)",
    re.DOTALL,
)
_BSD_TIME = re.compile(
    r"(?P<mon>[A-Z][a-z]{2}) +(?P<day>\d{1,2}) (?P<hms>\d{2}:\d{2}:\d{2})(?: (?P<year>\d{4}))? "
)
_ISO_TIME = re.compile(
    r"(?P<iso>\d{4}-\d{2}-\d{2}[T ]\d{2}:\d{2}:\d{2}(?:\.\d+)?(?:Z|[+-]\d{2}:?\d{2})?) "
)
_TAG = re.compile(r"(?P<tag>[^\s:\[]{1,128}?)(?:\[(?P<pid>[^\]\s]{0,32})\])?: ?")
_MONTH_NAMES = ("Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec")
_MONTHS = {name: number for number, name in enumerate(_MONTH_NAMES, 1)}
_SD_ELEMENT = re.compile(r'\[(?P<id>[^\s\]=]+)(?P<params>(?: [^\s=\]]+="(?:[^"\\]|\\.)*")*)\]')
_SD_PARAM = re.compile(r'([^\s=\]]+)="((?:[^"\\]|\\.)*)"')


def _bsd_timestamp(match: re.Match[str], reference: datetime) -> datetime | None:
    """RFC 3164 has no year: take the reference's, or the year before when that would put the
    event more than a day after the reference (a December log read in January)."""
    month = _MONTHS.get(match.group("mon"))
    if month is None:
        return None
    hour, minute, second = (int(x) for x in match.group("hms").split(":"))
    year = int(match.group("year")) if match.group("year") else reference.year
    try:
        stamp = datetime(year, month, int(match.group("day")), hour, minute, second, tzinfo=UTC)
    except ValueError:
        return None
    if not match.group("year") and (stamp - reference).days >= 1:
        try:
            stamp = stamp.replace(year=year - 1)
        except ValueError:  # 29 February
            return None
    return stamp


def _structured_data(text: str, fields: dict[str, Any]) -> str:
    """Parse RFC 5424 STRUCTURED-DATA into ``sd.<id>.<param>`` fields; return the message."""
    if text.startswith("- ") or text == "-":
        return text[2:]
    position = 0
    while position < len(text) and text[position] == "[":
        element = _SD_ELEMENT.match(text, position)
        if element is None:
            break
        for name, value in _SD_PARAM.findall(element.group("params")):
            fields[f"sd.{element.group('id')}.{name}"] = re.sub(r"\\(.)", r"\1", value)
        position = element.end()
    return text[position:].lstrip(" ")


def parse_syslog_line(
    line: bytes | str, *, reference: datetime | None = None
) -> dict[str, Any] | None:
    """Fields of one syslog line, or None when it is not syslog.

    Keys: ``facility``, ``severity`` (names, when there is a PRI), ``priority``, ``timestamp``
    (aware UTC datetime; zone-less times are UTC), ``hostname``, ``program``, ``pid``, ``msgid``,
    ``sd.<id>.<param>`` and ``message``. ``reference`` supplies the year of RFC 3164 times
    (default: now).
    """
    text = line.decode("utf-8", "replace") if isinstance(line, bytes) else line
    text = text.rstrip("\r\n").lstrip("\ufeff")
    fields: dict[str, Any] = {}
    pri = _PRI.match(text)
    if pri:
        value = int(pri.group(1))
        if value > 191:
            return None
        fields["priority"] = value
        fields["facility"] = FACILITIES[value >> 3]
        fields["severity"] = SEVERITIES[value & 7]
        text = text[pri.end() :]
        modern = _RFC5424.match(text)
        if modern and modern.group("version") != "0":
            stamp = parse_timestamp(modern.group("time")) if modern.group("time") != "-" else None
            if stamp is not None or modern.group("time") == "-":
                for key, group in (("hostname", "host"), ("program", "app"),
                                   ("pid", "procid"), ("msgid", "msgid")):  # fmt: skip
                    if modern.group(group) != "-":
                        fields[key] = modern.group(group)
                fields["timestamp"] = stamp
                fields["message"] = _structured_data(modern.group("rest"), fields)
                return fields
    bsd = _BSD_TIME.match(text)
    if bsd:
        stamp = _bsd_timestamp(bsd, reference or datetime.now(UTC))
    else:
        iso = _ISO_TIME.match(text)
        if iso is None:
            if not pri:
                return None
            fields["timestamp"] = None
            fields["message"] = text
            return fields
        stamp = parse_timestamp(iso.group("iso"))
        bsd = iso
    if stamp is None:
        return None
    fields["timestamp"] = stamp
    rest = text[bsd.end() :]
    host, _, after_host = rest.partition(" ")
    if host.endswith(":") or "[" in host:  # "Mmm dd hh:mm:ss prog[pid]: msg": no host
        host, after_host = "", rest
    elif host:
        fields["hostname"] = host
    tag = _TAG.match(after_host)
    if tag:
        fields["program"] = tag.group("tag")
        if tag.group("pid"):
            fields["pid"] = tag.group("pid")
        after_host = after_host[tag.end() :]
    fields["message"] = after_host
    return fields
