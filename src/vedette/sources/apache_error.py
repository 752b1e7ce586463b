"""Apache HTTP Server error logs (``error_log``, ``error.log``).

Sample lines (2.2 and 2.4 formats)::

    [Sun Dec 04 04:47:44 2005] [notice] workerEnv.init() ok /etc/httpd/conf/workers2.properties
    [Fri Sep 09 10:42:29.902022 2011] [core:error] [pid 35708:tid 4328636416] [client 72.15.99.187]
    File does not exist: /usr/local/apache2/htdocs/favicon.ico   (one line in the file)

Format: https://httpd.apache.org/docs/2.4/logs.html#errorlog

Events have service ``apache`` (SigmaHQ rules/web/product/apache are keyword rules over this log);
the text after the bracketed prefixes is the field ``message``. Times carry no zone: taken as UTC.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from datetime import UTC, datetime
from typing import Any

from vedette.events import Event, SourceRef
from vedette.normalize.tables import source_table
from vedette.sources.inputs import Source
from vedette.sources.lines import head_lines, iter_parsed_lines
from vedette.sources.registry import Reader, ReadOptions, register
from vedette.sources.report import ReadReport

_LINE = re.compile(
    r"\[(?:[A-Z][a-z]{2} )?(?P<time>[A-Z][a-z]{2} +\d{1,2} \d{2}:\d{2}:\d{2}(?:\.\d+)? \d{4})\] "
    r"\[(?:(?P<module>[\w.-]+):)?(?P<level>[a-z]+\d?)\] (?P<rest>.*)"
)
_PREFIX = re.compile(r"\[(?P<key>pid|client|remote) (?P<value>[^\]]*)\] ")


def parse_apache_error_line(text: str) -> dict[str, Any] | None:
    """Fields of one Apache error log line (``timestamp`` as aware UTC), or None."""
    match = _LINE.match(text)
    if match is None:
        return None
    stamp_text = re.sub(r" +", " ", match.group("time"))
    layout = "%b %d %H:%M:%S.%f %Y" if "." in stamp_text else "%b %d %H:%M:%S %Y"
    try:
        stamp = datetime.strptime(stamp_text, layout).replace(tzinfo=UTC)
    except ValueError:
        return None
    fields: dict[str, Any] = {"timestamp": stamp, "level": match.group("level")}
    if match.group("module"):
        fields["module"] = match.group("module")
    rest = match.group("rest")
    while True:
        prefix = _PREFIX.match(rest)
        if prefix is None:
            break
        key, value = prefix.group("key"), prefix.group("value")
        if key == "pid":
            pid, _, tid = value.partition(":tid ")
            fields["pid"] = pid
            if tid:
                fields["tid"] = tid
        else:
            fields[key] = value
        rest = rest[prefix.end() :]
    fields["message"] = rest
    return fields


class ApacheErrorReader(Reader):
    """Apache error logs to events with service ``apache``."""

    name = "apache_error"
    splittable = True

    def sniff(self, head: bytes, name: str) -> int:
        lines = head_lines(head)
        if not lines:
            return 0
        parsed = sum(
            1 for line in lines if parse_apache_error_line(line.decode("latin-1")) is not None
        )
        return 60 if parsed * 2 > len(lines) else 0

    def read(self, source: Source, report: ReadReport, options: ReadOptions) -> Iterator[Event]:
        classify = source_table("apache_error").classify()
        display = source.display
        lines = iter_parsed_lines(
            source, report, parse_apache_error_line, "apache-parse", "not an Apache error log line"
        )
        for line, fields in lines:
            timestamp = fields.pop("timestamp")
            yield Event(
                fields=fields,
                logsource=classify.apply(fields),
                timestamp=timestamp,
                source=SourceRef(display, self.name, line=line.number, offset=line.offset),
            )


register(ApacheErrorReader())
