"""Linux audit logs (``/var/log/audit/audit.log``), records assembled into events by serial.

Sample (one event: four records sharing the serial 93777, ended by EOE when the kernel writes it)::

    type=SYSCALL msg=audit(1604996384.965:93777): arch=c000003e syscall=59 ... exe="/bin/dd"
    type=EXECVE msg=audit(1604996384.965:93777): argc=4 a0="dd" a1="if=/dev/zero" a2="bs=1" ...
    type=CWD msg=audit(1604996384.965:93777): cwd="/home/wardog"
    type=PATH msg=audit(1604996384.965:93777): item=0 name="/bin/dd" inode=20 dev=08:01 ...

Format: https://github.com/linux-audit/audit-documentation/wiki (record parsing:
:mod:`vedette.sources.auditd_parse`).

One event per serial: ``type`` is the record type, or the list of types in order; a field written
by several records with different values becomes a list (every PATH ``name``); EXECVE's argv
``a0..aN`` take precedence over SYSCALL's register ``a0..a3``; ``argv`` is the joined command line.
Records of different events may interleave, so a bounded window of open events is kept; an event
closes at EOE, when it falls out of the window, or at the end of the input. In a byte-range read,
a task owns the events whose first record starts inside its range and follows them a little past
its end.
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import IO, Any

from vedette.events import Event, SourceRef
from vedette.normalize.tables import source_table
from vedette.normalize.timeparse import from_epoch
from vedette.sources.auditd_parse import AuditRecord, audit_tables, parse_audit_line
from vedette.sources.inputs import Source
from vedette.sources.lines import Line, TextDecoder, head_lines, iter_raw_lines, looks_binary
from vedette.sources.registry import Reader, ReadOptions, register
from vedette.sources.report import ReadReport

OPEN_EVENTS = 64
"""Events kept open waiting for more records; older ones are closed as complete."""
BOUNDARY_BYTES = 64 * 1024
"""How far a split read looks back before its start and follows its events past its end."""
_ARGV_PREFIX = "a"


@dataclass(slots=True)
class _Pending:
    records: list[AuditRecord] = field(default_factory=list)
    line: Line | None = None


def merge_records(records: list[AuditRecord]) -> dict[str, Any]:
    """The flat fields of one event from its records (see the module docstring)."""
    argv_types = audit_tables().argv_types
    fields: dict[str, Any] = {}
    types: list[str] = []
    argv: dict[int, str] = {}
    has_argv = any(record.type in argv_types for record in records)
    for record in records:
        if record.type == "EOE":
            continue
        if record.type not in types:
            types.append(record.type)
        is_argv = record.type in argv_types
        for key, value in record.fields.items():
            argv_index = _argv_index(key) if is_argv else None
            if argv_index is not None:
                argv[argv_index] = str(value)
                fields[key] = value
                continue
            if has_argv and _argv_index(key) is not None:
                continue  # SYSCALL's registers a0..a3: the EXECVE argv is what rules mean

            if key not in fields:
                fields[key] = value
            else:
                existing = fields[key]
                if isinstance(existing, list):
                    if value not in existing:
                        existing.append(value)
                elif existing != value:
                    fields[key] = [existing, value]
    fields["type"] = types[0] if len(types) == 1 else types
    if argv:
        fields["argv"] = " ".join(argv[i] for i in sorted(argv))
    return fields


def _argv_index(key: str) -> int | None:
    if not key.startswith(_ARGV_PREFIX) or not key[1:].isdigit():
        return None
    return int(key[1:])


class AuditdReader(Reader):
    """Raw auditd logs to one event per audit serial, product linux, service auditd."""

    name = "auditd"
    splittable = True

    def sniff(self, head: bytes, name: str) -> int:
        lines = head_lines(head)
        if not lines:
            return 0
        parsed = sum(1 for line in lines if parse_audit_line(line) is not None)
        return 95 if parsed * 2 > len(lines) else 0

    def read(self, source: Source, report: ReadReport, options: ReadOptions) -> Iterator[Event]:
        skip = self._serials_before(source)
        decoder = TextDecoder(source)
        pending: OrderedDict[tuple[int, float], _Pending] = OrderedDict()
        end = source.end
        display = source.display
        follow = Source(source.path, source.member, source.start,
                        None if end is None else end + BOUNDARY_BYTES)  # fmt: skip
        with source.open() as stream:
            for line in iter_raw_lines(stream, follow, report):
                past_end = end is not None and line.offset >= end
                if past_end and not pending:
                    break
                record = parse_audit_line(decoder.decode(line))
                if record is None:
                    if not past_end:
                        decoder.retract()
                        reason = "binary" if looks_binary(line.data) else "auditd-parse"
                        report.warn(display, reason, "not an audit record",
                                    offset=line.offset, line=line.number)  # fmt: skip
                    continue
                key = (record.serial, record.time)
                if record.serial in skip:
                    continue
                entry = pending.get(key)
                if entry is None:
                    if past_end:
                        continue  # an event of the next range
                    entry = pending[key] = _Pending(line=line)
                entry.records.append(record)
                if record.type == "EOE":
                    yield self._event(pending.pop(key), display)
                elif len(pending) > OPEN_EVENTS:
                    yield self._event(pending.popitem(last=False)[1], display)
        for entry in pending.values():
            yield self._event(entry, display)
        decoder.close(report)

    @staticmethod
    def _serials_before(source: Source) -> set[int]:
        """Serials of the records just before a split read's start (owned by the range before)."""
        if source.start <= 0:
            return set()
        begin = max(0, source.start - BOUNDARY_BYTES)
        with Source(source.path, source.member).open() as stream:
            return _serials_in(stream, begin, source.start)

    @staticmethod
    def _event(entry: _Pending, display: str) -> Event:
        records = entry.records
        fields = merge_records(records)
        first = records[0]
        kind = "execve" if "EXECVE" in {r.type for r in records} else "other"
        logsource = source_table("auditd").classify(kind).apply(fields)
        line = entry.line
        host = first.node or fields.get("node")
        return Event(
            fields=fields,
            logsource=logsource,
            timestamp=from_epoch(first.time),
            host=host if isinstance(host, str) else None,
            source=SourceRef(
                display,
                "auditd",
                record_id=first.serial,
                line=line.number if line else None,
                offset=line.offset if line else None,
            ),
        )


def _serials_in(stream: IO[bytes], begin: int, end: int) -> set[int]:
    stream.seek(begin)
    data = stream.read(end - begin)
    if not data.endswith(b"\n"):
        data += stream.readline()  # the line straddling ``end`` began before it: it counts
    lines = data.split(b"\n")
    if begin > 0:
        lines = lines[1:]  # the first may be cut
    serials: set[int] = set()
    for raw in lines:
        record = parse_audit_line(raw)
        if record is not None:
            serials.add(record.serial)
    return serials


register(AuditdReader())
