"""Parsing of single Linux audit records (one line of ``/var/log/audit/audit.log``).

Sample record::

    type=EXECVE msg=audit(1604996384.965:93777): argc=4 a0="dd" a1="if=/dev/zero" a2="bs=1" ...

Format: https://github.com/linux-audit/audit-documentation/wiki/SPEC-Writing-Good-Events and
https://access.redhat.com/documentation/en-us/red_hat_enterprise_linux/7/html/security_guide/sec-understanding_audit_log_files

Values are written quoted (literal), unquoted, or, for fields that may hold spaces or control
characters, as unquoted hex (``proctitle=2F62696E2F7368002D63``): those are decoded here, with NUL
argument separators turned into spaces. ``log_format=ENRICHED`` records carry interpreted values
after a ``\\x1d`` separator (``SYSCALL=execve``, ``UID="root"``); they are kept as fields.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from functools import cache
from importlib import resources
from typing import Any

import yaml

_HEADER = re.compile(
    r"(?:node=(?P<node>\S+) )?type=(?P<type>\S+) "
    r"msg=audit\((?P<time>\d+(?:\.\d+)?):(?P<serial>\d+)\):? ?"
)
_PAIR = re.compile(r"""([A-Za-z_][\w-]*)=("[^"]*"|'[^']*'|\S*)""")
_HEX = re.compile(r"(?:[0-9A-F]{2})+")
_AVC = re.compile(r"avc:\s+(?P<result>\w+)\s+\{\s*(?P<perms>[^}]*?)\s*\}")
_ARGV_KEY = re.compile(r"a\d+(?:\[\d+\])?$")


@dataclass(slots=True, frozen=True)
class AuditTables:
    """Encoded field names and syscall names (``normalize/data/auditd_fields.yaml``)."""

    encoded: frozenset[str]
    argv_types: frozenset[str]
    arches: dict[str, str]
    syscalls: dict[str, dict[int, str]]


@cache
def audit_tables() -> AuditTables:
    """Load the auditd field tables once."""
    text = resources.files("vedette.normalize").joinpath("data/auditd_fields.yaml").read_text()
    data = yaml.safe_load(text)
    return AuditTables(
        encoded=frozenset(data["encoded_fields"]),
        argv_types=frozenset(data["argv_record_types"]),
        arches={str(k).lower(): str(v) for k, v in data["arches"].items()},
        syscalls={
            str(arch): {int(n): str(name) for n, name in table.items()}
            for arch, table in data["syscalls"].items()
        },
    )


@dataclass(slots=True)
class AuditRecord:
    """One audit record: its type, event time (epoch seconds), serial and fields."""

    type: str
    time: float
    serial: int
    fields: dict[str, Any]
    node: str | None = None


def decode_hex(value: str, *, nul_as_space: bool = True) -> str:
    """Text of a hex-encoded audit value (NUL separators become spaces)."""
    raw = bytes.fromhex(value)
    if nul_as_space:
        raw = raw.rstrip(b"\x00").replace(b"\x00", b" ")
    return raw.decode("utf-8", "replace")


def _value(key: str, raw: str, record_type: str, tables: AuditTables) -> Any:
    if raw[:1] in ('"', "'") and raw[-1:] == raw[:1] and len(raw) >= 2:
        return raw[1:-1]
    if raw == "(null)":
        return None
    encoded = key in tables.encoded or (
        record_type in tables.argv_types and _ARGV_KEY.match(key) is not None
    )
    if encoded and len(raw) % 2 == 0 and _HEX.fullmatch(raw):
        text = decode_hex(raw)
        if key == "key" and "\x01" in text:  # several rule keys joined by \x01
            return text.split("\x01")
        return text
    return raw


def _pairs(text: str, record_type: str, tables: AuditTables, fields: dict[str, Any]) -> None:
    for key, raw in _PAIR.findall(text):
        if key == "msg" and raw[:1] == "'":  # user-space record: the payload is key=values
            inner = raw[1:-1]
            before = len(fields)
            _pairs(inner, record_type, tables, fields)
            if len(fields) == before:
                fields["msg"] = inner
            continue
        value = _value(key, raw, record_type, tables)
        if value is not None:  # "(null)": the field is unset, as go-libaudit reads it
            fields[key] = value


def parse_audit_line(line: bytes | str) -> AuditRecord | None:
    """The record on one audit log line, or None when the line is not an audit record."""
    text = line.decode("utf-8", "replace") if isinstance(line, bytes) else line
    text = text.rstrip("\r\n")
    header = _HEADER.match(text)
    if header is None:
        return None
    tables = audit_tables()
    record_type = header.group("type")
    body, _, enriched = text[header.end() :].partition("\x1d")
    fields: dict[str, Any] = {}
    avc = _AVC.search(body) if record_type in ("AVC", "USER_AVC") else None
    if avc:
        fields["seresult"] = avc.group("result")
        fields["seperms"] = avc.group("perms").split()
    _pairs(body, record_type, tables, fields)
    if enriched:
        _pairs(enriched, record_type, tables, fields)
    arch = tables.arches.get(str(fields.get("arch", "")).lower())
    if arch and "ARCH" not in fields:
        fields["ARCH"] = arch
    if "SYSCALL" not in fields and "syscall" in fields:
        try:
            name = tables.syscalls.get(arch or "", {}).get(int(fields["syscall"]))
        except (TypeError, ValueError):
            name = None
        if name:
            fields["SYSCALL"] = name
    return AuditRecord(
        type=record_type,
        time=float(header.group("time")),
        serial=int(header.group("serial")),
        fields=fields,
        node=header.group("node"),
    )
