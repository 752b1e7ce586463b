"""ArcSight Common Event Format (CEF), bare or behind a syslog header.

Sample line::

    Sep 19 08:26:10 host CEF:0|Security|threatmanager|1.0|100|worm stopped|10|src=10.0.0.1 dpt=445

Spec: "Implementing ArcSight Common Event Format (CEF)", Micro Focus / OpenText,
https://www.microfocus.com/documentation/arcsight/arcsight-smartconnectors/ (CEF standard).

Header fields become ``cef_version``, ``device_vendor``, ``device_product``, ``device_version``,
``signature_id``, ``name``, ``severity``; extension keys keep their CEF names (``src``, ``dst``,
``spt``, ``dpt``, ``act``, ``suser``, ...) with Sigma's firewall names (``src_ip``, ``dst_ip``,
``dst_port``, ``action``) added as aliases from ``normalize/data/cef.yaml``, which also maps
known vendor/product pairs to Sigma logsources.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from typing import Any

from vedette.events import Event, SourceRef
from vedette.normalize.tables import source_table
from vedette.normalize.timeparse import parse_timestamp
from vedette.sources.inputs import Source
from vedette.sources.lines import TextDecoder, head_lines, iter_raw_lines, looks_binary
from vedette.sources.registry import Reader, ReadOptions, register
from vedette.sources.report import ReadReport
from vedette.sources.syslog_parse import parse_syslog_line

_HEADER_NAMES = (
    "cef_version", "device_vendor", "device_product", "device_version",
    "signature_id", "name", "severity",
)  # fmt: skip
_HEADER_SPLIT = re.compile(r"(?<!\\)\|")
_EXT_KEY = re.compile(r"(?:^|(?<=\s))([\w.\[\]-]+)=")
_EXT_UNESCAPE = re.compile(r"\\([\\=nr|])")
_UNESCAPES = {"n": "\n", "r": "\r"}
_TIME_KEYS = ("rt", "end", "start", "deviceReceiptTime")


def _unescape(text: str) -> str:
    return _EXT_UNESCAPE.sub(lambda m: _UNESCAPES.get(m.group(1), m.group(1)), text)


def parse_cef(text: str) -> dict[str, Any] | None:
    """Fields of a CEF message (starting at ``CEF:``), or None when it is not CEF."""
    if not text.startswith("CEF:"):
        return None
    parts = _HEADER_SPLIT.split(text[4:], maxsplit=7)
    if len(parts) < 8:
        return None
    fields: dict[str, Any] = {
        name: _unescape(value) for name, value in zip(_HEADER_NAMES, parts[:7], strict=True)
    }
    extension = parts[7]
    keys = list(_EXT_KEY.finditer(extension))
    for index, match in enumerate(keys):
        end = keys[index + 1].start() if index + 1 < len(keys) else len(extension)
        fields[match.group(1)] = _unescape(extension[match.end() : end].rstrip())
    # customLabel pairs: cs1Label=Rule cs1=Block -> Rule=Block, as analysts name them
    for key in [k for k in fields if k.endswith("Label")]:
        base = key[: -len("Label")]
        label = fields[key]
        if base in fields and isinstance(label, str) and label and label not in fields:
            fields[label] = fields[base]
    return fields


class CefReader(Reader):
    """CEF lines, with or without a syslog header in front."""

    name = "cef"
    splittable = True

    def sniff(self, head: bytes, name: str) -> int:
        lines = head_lines(head)
        hits = sum(1 for line in lines if b"CEF:" in line)
        return 90 if lines and hits * 2 > len(lines) else 0

    def read(self, source: Source, report: ReadReport, options: ReadOptions) -> Iterator[Event]:
        decoder = TextDecoder(source)
        display = source.display
        with source.open() as stream:
            for line in iter_raw_lines(stream, source, report):
                text = decoder.decode(line)
                position = text.find("CEF:")
                fields = parse_cef(text[position:]) if position >= 0 else None
                if fields is None:
                    decoder.retract()
                    reason = "binary" if looks_binary(line.data) else "cef-parse"
                    report.warn(display, reason, "not a CEF record", offset=line.offset,
                                line=line.number)  # fmt: skip
                    continue
                timestamp = None
                host = fields.get("dvchost") or fields.get("dvc")
                if position > 0:
                    prefix = parse_syslog_line(text[:position] + "x")
                    if prefix is not None:
                        timestamp = prefix.get("timestamp")
                        host = prefix.get("hostname") or host
                for key in _TIME_KEYS:
                    if timestamp is None and key in fields:
                        timestamp = parse_timestamp(fields[key])
                kind = f"{fields['device_vendor']}|{fields['device_product']}"
                logsource = source_table("cef").classify(kind).apply(fields)
                yield Event(
                    fields=fields,
                    logsource=logsource,
                    timestamp=timestamp,
                    host=host if isinstance(host, str) else None,
                    source=SourceRef(display, "cef", line=line.number, offset=line.offset),
                )
        decoder.close(report)


register(CefReader())
