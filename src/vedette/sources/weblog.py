"""Web server access logs in the NCSA Common and Combined formats (Apache httpd, nginx).

Sample line::

    192.168.105.83 - - [11/Jul/2018:08:41:28 +0300] "GET / HTTP/1.1" 200 11444

Format: https://httpd.apache.org/docs/2.4/logs.html#combined and
https://nginx.org/en/docs/http/ngx_http_log_module.html#log_format

Events are category ``webserver`` (SigmaHQ rules/web/webserver_generic) with the W3C-style field
names those rules use: ``c-ip``, ``cs-username``, ``cs-method``, ``cs-uri-stem`` (path),
``cs-uri-query``, ``cs-version``, ``sc-status``, ``sc-bytes``, ``cs-referer``, ``cs-user-agent``.
SigmaHQ rules test ``cs-uri-query`` with path fragments (``/cgi-bin/.%2e/``), so it holds the whole
request target (path and query), as their authors' log sources do; ``message`` is the raw line for
keyword rules.
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
    r"(?P<ip>\S+) (?P<ident>\S+) (?P<user>\S+) \[(?P<time>[^\]]+)\] "
    # the request ends at the first `" <status> <bytes>`: attack payloads hold bare quotes
    r'"(?P<request>.*?)" (?P<status>\d{3}|-) (?P<bytes>\d+|-)'
    r'(?: "(?P<referer>.*?)" "(?P<agent>.*?)"(?=\s|$))?'
)


def parse_access_line(text: str) -> dict[str, Any] | None:
    """Fields of one Common/Combined log line (``timestamp`` aware UTC), or None."""
    match = _LINE.match(text)
    if match is None:
        return None
    try:
        stamp = datetime.strptime(match.group("time"), "%d/%b/%Y:%H:%M:%S %z")
    except ValueError:
        return None
    fields: dict[str, Any] = {"timestamp": stamp, "c-ip": match.group("ip")}
    if match.group("user") != "-":
        fields["cs-username"] = match.group("user")
    request = match.group("request")
    parts = request.split(" ")
    if len(parts) == 3:
        method, target, version = parts
        fields["cs-method"] = method
        fields["cs-version"] = version
    else:  # a malformed request line (scanners send these): keep it whole
        target = request
    stem, _, query = target.partition("?")
    fields["cs-uri-stem"] = stem
    fields["cs-uri-query"] = target
    fields["c-uri"] = target
    if query:
        fields["c-uri-query"] = query
    if match.group("status") != "-":
        fields["sc-status"] = int(match.group("status"))
    if match.group("bytes") != "-":
        fields["sc-bytes"] = int(match.group("bytes"))
    for group, name in (("referer", "cs-referer"), ("agent", "cs-user-agent")):
        value = match.group(group)
        if value is not None and value != "-":
            fields[name] = value
    fields["message"] = text
    return fields


class WebAccessLogReader(Reader):
    """Apache/nginx access logs to events of category webserver."""

    name = "weblog"
    splittable = True

    def sniff(self, head: bytes, name: str) -> int:
        lines = head_lines(head)
        if not lines:
            return 0
        parsed = sum(1 for line in lines if parse_access_line(line.decode("latin-1")) is not None)
        return 70 if parsed * 2 > len(lines) else 0

    def read(self, source: Source, report: ReadReport, options: ReadOptions) -> Iterator[Event]:
        classify = source_table("weblog").classify()
        display = source.display
        lines = iter_parsed_lines(
            source, report, parse_access_line, "weblog-parse", "not an access log line"
        )
        for line, fields in lines:
            timestamp = fields.pop("timestamp")
            yield Event(
                fields=fields,
                logsource=classify.apply(fields),
                timestamp=timestamp.astimezone(UTC),
                source=SourceRef(display, self.name, line=line.number, offset=line.offset),
            )


register(WebAccessLogReader())
