"""Syslog files (``/var/log/syslog``, ``auth.log``, ``messages``, remote-syslog archives).

Sample line::

    Dec 10 06:55:46 LabSZ sshd[24200]: Invalid user webmaster from 173.234.31.186

Specs: https://www.rfc-editor.org/rfc/rfc3164, https://www.rfc-editor.org/rfc/rfc5424. Parsing is
:func:`vedette.sources.syslog_parse.parse_syslog_line`, shared with the network listeners.

Events are product ``linux``, service ``syslog`` plus the program's services (``sshd``, ``auth``,
``sudo``, ``cron``, ... from ``normalize/data/syslog.yaml``). The message is in the field
``message`` (what keyword rules search). RFC 3164 lines carry no year: it is taken from the file's
modification time. Sysmon for Linux events (XML in the message) become Sysmon events.
"""

from __future__ import annotations

import os
import re
from collections.abc import Iterator
from datetime import UTC, datetime
from typing import Any

from vedette.events import Event, LogSource, SourceRef
from vedette.normalize.tables import source_table
from vedette.normalize.timeparse import parse_timestamp
from vedette.normalize.winevent import (
    classify_windows_event,
    flatten_windows_event,
    parse_event_xml,
)
from vedette.sources.inputs import Source
from vedette.sources.lines import head_lines, iter_parsed_lines, looks_binary
from vedette.sources.registry import Reader, ReadOptions, register
from vedette.sources.report import ReadReport
from vedette.sources.syslog_parse import parse_syslog_line

_PROGRAM_SUFFIX = re.compile(r"\(.*\)$")


def program_key(program: str) -> str:
    """Lookup key of a program name: ``/usr/sbin/sshd`` and ``sshd(pam_unix)`` -> ``sshd``."""
    return _PROGRAM_SUFFIX.sub("", program.rsplit("/", 1)[-1]).lower()


def classify_syslog(fields: dict[str, Any]) -> LogSource:
    """Logsource of a parsed syslog line, from its program and facility (data-driven)."""
    program = fields.get("program")
    by_program = source_table("syslog").classify(program_key(program) if program else None)
    logsource = by_program.apply(fields)
    facility = fields.get("facility")
    if facility:
        extra = source_table("syslog_facility").classify(facility).logsource.services
        if not extra <= logsource.services:
            logsource = LogSource(
                logsource.product, logsource.services | extra, logsource.categories
            )
    return logsource


def syslog_event(fields: dict[str, Any], ref: SourceRef) -> Event:
    """An Event from :func:`parse_syslog_line` output (the ``timestamp`` key is moved out)."""
    timestamp = fields.pop("timestamp", None)
    message = fields.get("message")
    if isinstance(message, str) and message.startswith("<Event") and "Linux-Sysmon" in message:
        record = parse_event_xml(message)
        if record is not None:
            sysmon = flatten_windows_event(record)
            sysmon.setdefault("hostname", fields.get("hostname"))
            return Event(
                fields=sysmon,
                logsource=classify_windows_event(sysmon),
                timestamp=parse_timestamp(sysmon.get("TimeCreated")) or timestamp,
                host=sysmon.get("Computer") or fields.get("hostname"),
                source=ref,
            )
    return Event(
        fields=fields,
        logsource=classify_syslog(fields),
        timestamp=timestamp,
        host=fields.get("hostname"),
        source=ref,
    )


def _reference_time(source: Source) -> datetime:
    try:
        return datetime.fromtimestamp(os.path.getmtime(source.path), tz=UTC)
    except (OSError, OverflowError, ValueError):
        return datetime.now(UTC)


class SyslogReader(Reader):
    """Syslog text files, RFC 3164 and RFC 5424."""

    name = "syslog"
    splittable = True

    def sniff(self, head: bytes, name: str) -> int:
        lines = [line for line in head_lines(head) if not looks_binary(line)]
        if not lines:
            return 0
        parsed = sum(1 for line in lines if parse_syslog_line(line) is not None)
        if parsed * 2 <= len(lines):
            return 0
        return 50 if parsed == len(lines) else 30

    def read(self, source: Source, report: ReadReport, options: ReadOptions) -> Iterator[Event]:
        reference = _reference_time(source)
        display = source.display

        def parse(text: str) -> dict[str, Any] | None:
            return parse_syslog_line(text, reference=reference)

        for line, fields in iter_parsed_lines(
            source, report, parse, "syslog-parse", "not a syslog line"
        ):
            ref = SourceRef(display, "syslog", line=line.number, offset=line.offset)
            yield syslog_event(fields, ref)


register(SyslogReader())
