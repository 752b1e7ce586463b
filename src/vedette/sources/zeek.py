"""Zeek logs in their default tab-separated form (``#fields``/``#types`` header).

A sample (the header, then one line of ``dns.log``)::

    #separator \\x09
    #path	dns
    #fields	ts	uid	id.orig_h	id.orig_p	id.resp_h	id.resp_p	proto	trans_id ...
    #types	time	string	addr	port	addr	port	enum	count ...
    1521911720.865716	CqKst53mF3det3eDV9	10.47.1.100	41772	10.0.0.100	53	udp	36329 ...

Format: https://docs.zeek.org/en/master/log-formats.html (Zeek TSV). Zeek logs written as JSON
are read by the JSON reader (:mod:`vedette.sources.json_layouts`) into the same fields.

Values keep Zeek's types (count/port -> int, interval/double/time -> float, bool -> bool,
set/vector -> list); the unset field ``-`` becomes None and ``(empty)`` an empty string or list.
A split read takes the header from the start of the file.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any

from vedette.events import Event, SourceRef
from vedette.normalize.tables import source_table
from vedette.normalize.timeparse import from_epoch
from vedette.sources.inputs import Source
from vedette.sources.json_layouts import zeek_kind
from vedette.sources.lines import TextDecoder, header_lines, iter_raw_lines, looks_binary
from vedette.sources.registry import Reader, ReadOptions, register
from vedette.sources.report import ReadReport

_ESCAPE = re.compile(r"\\(\\|x[0-9a-fA-F]{2})")


def _unescape_one(match: re.Match[str]) -> str:
    code = match.group(1)
    if code == "\\":
        return "\\"
    char = chr(int(code[1:], 16))
    # Printable characters (and tab) were escaped only because they are separators; other
    # bytes stay written as \xHH, as Zeek's JSON writer leaves them too.
    return char if char == "\t" or " " <= char <= "~" else match.group(0)


def _unescape(text: str) -> str:
    """Undo Zeek TSV escaping: ``\\\\`` and separators written as ``\\xHH``."""
    if "\\" not in text:
        return text
    return _ESCAPE.sub(_unescape_one, text)


def _to_int(text: str) -> Any:
    try:
        return int(text)
    except ValueError:
        return text


def _to_float(text: str) -> Any:
    try:
        return float(text)
    except ValueError:
        return text


_SCALAR_TYPES: dict[str, Callable[[str], Any]] = {
    "count": _to_int,
    "int": _to_int,
    "port": _to_int,
    "double": _to_float,
    "interval": _to_float,
    "time": _to_float,
    "bool": lambda text: text == "T",
}


@dataclass(slots=True)
class ZeekHeader:
    """What the ``#`` lines of a Zeek log say."""

    separator: str = "\t"
    set_separator: str = ","
    empty: str = "(empty)"
    unset: str = "-"
    path: str = ""
    fields: list[str] = field(default_factory=list)
    types: list[str] = field(default_factory=list)

    def update(self, line: str) -> None:
        """Apply one ``#`` line."""
        if line.startswith("#separator"):  # the one header line written with a space
            self.separator = _unescape(line[len("#separator") :].strip()) or "\t"
            return
        key, _, value = line[1:].partition(self.separator)
        if key == "set_separator":
            self.set_separator = value
        elif key == "empty_field":
            self.empty = value
        elif key == "unset_field":
            self.unset = value
        elif key == "path":
            self.path = value
        elif key == "fields":
            self.fields = value.split(self.separator)
        elif key == "types":
            self.types = value.split(self.separator)

    def converters(self) -> list[Callable[[str], Any]]:
        """One value converter per column, built once per header (the hot loop calls them)."""
        return [self._converter(type_name) for type_name in self.types]

    def _converter(self, type_name: str) -> Callable[[str], Any]:
        unset, empty, set_separator = self.unset, self.empty, self.set_separator
        if type_name.startswith(("set[", "vector[")):
            inner = _SCALAR_TYPES.get(type_name[type_name.index("[") + 1 : -1])

            def container(raw: str) -> Any:
                if raw == unset:
                    return None
                if raw == empty:
                    return []
                items = [_unescape(item) for item in raw.split(set_separator)]
                return [inner(item) for item in items] if inner else items

            return container
        scalar = _SCALAR_TYPES.get(type_name)
        if scalar is None:

            def text(raw: str) -> Any:
                if raw == unset:
                    return None
                if raw == empty:
                    return ""
                return _unescape(raw) if "\\" in raw else raw

            return text

        def typed(raw: str) -> Any:
            if raw == unset:
                return None
            if raw == empty:
                return ""
            return scalar(raw)

        return typed


def read_header(source: Source) -> ZeekHeader:
    """The header at the start of ``source``'s file (for split reads)."""
    header = ZeekHeader()
    whole = Source(source.path, source.member)
    with whole.open() as stream:
        for raw in header_lines(stream):
            header.update(raw.rstrip(b"\r\n").decode("utf-8", "replace"))
    return header


class ZeekTsvReader(Reader):
    """Zeek TSV logs to events with product zeek and the log type as service."""

    name = "zeek"
    splittable = True
    magic = b"#separator"

    def sniff(self, head: bytes, name: str) -> int:
        return 100 if head.startswith(b"#separator") else 0

    def read(self, source: Source, report: ReadReport, options: ReadOptions) -> Iterator[Event]:
        header = ZeekHeader() if source.start == 0 else read_header(source)
        decoder = TextDecoder(source)
        table = source_table("zeek")
        display = source.display
        converters: list[Callable[[str], Any]] = []
        converters_for: list[str] | None = None
        with source.open() as stream:
            for line in iter_raw_lines(stream, source, report):
                text = decoder.decode(line)
                if text.startswith("#"):
                    header.update(text)
                    continue
                values = text.split(header.separator)
                if not header.fields or len(values) != len(header.fields):
                    decoder.retract()
                    reason = "binary" if looks_binary(line.data) else "zeek-columns"
                    detail = f"{len(values)} columns, header has {len(header.fields)}"
                    report.warn(display, reason, detail, offset=line.offset, line=line.number)
                    continue
                if converters_for is not header.types:
                    converters_for = header.types
                    converters = header.converters()
                    if len(converters) != len(header.fields):
                        converters = [str] * len(header.fields)  # no usable #types line
                fields = dict(
                    zip(
                        header.fields,
                        [c(r) for c, r in zip(converters, values, strict=True)],
                        strict=True,
                    )
                )
                kind = header.path or zeek_kind(source.name)
                logsource = table.classify(kind).apply(fields)
                ts = fields.get("ts")
                yield Event(
                    fields=fields,
                    logsource=logsource,
                    timestamp=from_epoch(ts) if isinstance(ts, float) else None,
                    source=SourceRef(display, "zeek", line=line.number, offset=line.offset),
                )
        decoder.close(report)


register(ZeekTsvReader())
