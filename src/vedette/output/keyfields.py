"""Which event fields the timeline shows for a detection, from ``data/key_fields.yaml``.

An analyst reads the command line of a process creation, the key of a registry change, the
query of a DNS event: the table of key fields per logsource lives in data, not in code.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import cache
from importlib import resources
from typing import Any

import yaml

from vedette.events import Detection

MAX_FIELDS = 4


@dataclass(slots=True, frozen=True)
class KeyFieldTable:
    """Field lists per category, service and product, plus display labels."""

    labels: dict[str, str]
    categories: dict[str, tuple[str, ...]]
    services: dict[str, tuple[str, ...]]
    products: dict[str, tuple[str, ...]]
    default: tuple[str, ...]

    def fields_for(self, detection: Detection) -> tuple[str, ...]:
        """Candidate fields for the detection's event, most telling first."""
        logsource = detection.event.logsource
        for category in sorted(logsource.categories):
            if category in self.categories:
                return self.categories[category]
        for service in sorted(logsource.services):
            if service in self.services:
                return self.services[service]
        if logsource.product in self.products:
            return self.products[logsource.product or ""]
        return self.default

    def pick(self, detection: Detection, limit: int = MAX_FIELDS) -> list[tuple[str, Any]]:
        """Up to ``limit`` (label, value) pairs present in the event."""
        fields = detection.event.fields
        names: list[str] = []
        if detection.kind == "intel":
            # The field that carried the indicator is the point of an intel hit.
            names.extend(m for m in detection.matched if m in fields)
        names.extend(self.fields_for(detection))
        names.extend(self.default)
        picked: list[tuple[str, Any]] = []
        seen_labels: set[str] = set()
        for name in names:
            value = fields.get(name)
            if _empty(value):
                continue
            label = self.labels.get(name, name)
            if label in seen_labels:
                continue
            seen_labels.add(label)
            picked.append((label, value))
            if len(picked) >= limit:
                break
        if not picked:
            picked = _own_fields(fields, limit)
        return picked


NO_VALUE = frozenset({"", "-", "None", "none", "null", "NULL", "(null)", "N/A", "\\", "-\\-"})
"""Texts logs write for 'no value' (``user=None`` says nothing): a field holding one is skipped."""

SYSTEM_FIELDS = frozenset(
    (
        "EventID", "Channel", "Computer", "Provider_Name", "Provider_Guid", "EventRecordID",
        "TimeCreated", "Level", "Task", "Opcode", "Keywords", "Version", "Qualifiers",
        "Execution_ProcessID", "Execution_ThreadID", "ProcessID", "ThreadID", "UserID",
        "Correlation_ActivityID", "Correlation_RelatedActivityID", "EventType", "SourceName",
        "Security_UserID", "EventSourceName", "Hostname", "host", "timestamp", "@timestamp",
    )
)  # fmt: skip
"""Fields every event of a channel has: they never say why a rule matched."""


def _empty(value: Any) -> bool:
    if value is None or value == [] or value == ():
        return True
    return isinstance(value, str) and value.strip() in NO_VALUE


def _own_fields(fields: dict[str, Any], limit: int) -> list[tuple[str, Any]]:
    """The event's own data (not its System header) when no key field is present: what a
    keyword rule or a rule on an unlisted event (MSSQL, MSI, ESENT, OpenSSH) matched."""
    picked: list[tuple[str, Any]] = []
    for name, value in fields.items():
        if name in SYSTEM_FIELDS or _empty(value) or isinstance(value, dict):
            continue
        picked.append((name, value))
        if len(picked) >= limit:
            break
    return picked


@cache
def key_field_table() -> KeyFieldTable:
    """The packaged key-field table, loaded once."""
    text = resources.files("vedette.output").joinpath("data/key_fields.yaml").read_text("utf-8")
    data = yaml.safe_load(text)

    def lists(section: str) -> dict[str, tuple[str, ...]]:
        return {str(k): tuple(str(f) for f in v) for k, v in (data.get(section) or {}).items()}

    return KeyFieldTable(
        labels={str(k): str(v) for k, v in (data.get("labels") or {}).items()},
        categories=lists("categories"),
        services=lists("services"),
        products=lists("products"),
        default=tuple(str(f) for f in data.get("default") or ()),
    )


def key_fields_text(detection: Detection, *, limit: int = MAX_FIELDS, width: int = 400) -> str:
    """Key fields as one line: ``cmd=whoami /all  user=CORP\\bob``."""
    parts = []
    for label, value in key_field_table().pick(detection, limit):
        if isinstance(value, list | tuple):  # a multi-valued field reads as its values
            value = ",".join(str(item) for item in value if not _empty(item))
        text = " ".join(str(value).split())  # multi-line script blocks on one line
        if len(text) > width:
            text = text[: width - 1] + "…"
        parts.append(f"{label}={text}")
    return "  ".join(parts)
