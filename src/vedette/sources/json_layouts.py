"""The JSON record layouts found in the wild, each recognised by its keys and normalised.

A layout is chosen per record (a file may mix them); the previous record's layout is tried first
because files rarely do. Order matters: specific layouts before the generic fallback.

| layout        | recognised by                                  | example producer                |
|---------------|------------------------------------------------|---------------------------------|
| evtx_xml      | ``Event.System`` (or top-level ``System``)     | evtx_dump, SigmaHQ regression,  |
|               |                                                | Velociraptor                    |
| ecs_winlog    | ``winlog`` object                              | Winlogbeat, Elastic Agent       |
| windows_flat  | top-level ``EventID`` + ``Channel``/source     | OTRF Security-Datasets, NXLog   |
| powershell_.. | ``Id`` + ``LogName`` + ``ProviderName``        | Get-WinEvent | ConvertTo-Json   |
| zeek          | ``ts`` + ``uid``/``id.orig_h``/``_path``       | Zeek ``LogAscii::use_json``     |
| suricata      | ``event_type`` + ``timestamp``                 | Suricata EVE                    |
| cloudtrail    | ``eventSource`` + ``eventName``                | AWS CloudTrail                  |
| generic       | anything else                                  | dotted fields, no logsource     |
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from vedette.events import Event, LogSource, SourceRef
from vedette.normalize.flatten import flatten_json, flatten_owned
from vedette.normalize.tables import source_table
from vedette.normalize.timeparse import parse_timestamp
from vedette.normalize.winevent import classify_windows_event, flatten_windows_event


@dataclass(slots=True, frozen=True)
class Layout:
    """A JSON record layout: how to recognise it and how to normalise it."""

    name: str
    matches: Callable[[dict[str, Any], str], bool]
    normalise: Callable[[dict[str, Any], str], tuple[dict[str, Any], LogSource, Any, Any]]
    """record, file-name hint -> (fields, logsource, raw timestamp, host)."""


def _int_or_keep(value: Any) -> Any:
    if isinstance(value, int) and not isinstance(value, bool):
        return value
    try:
        return int(str(value).strip())
    except (TypeError, ValueError):
        return value


# --- Windows ---------------------------------------------------------------------------------


def _is_evtx_xml(record: dict[str, Any], hint: str) -> bool:
    event = record.get("Event")
    if isinstance(event, dict) and "System" in event:
        return True
    system = record.get("System")  # Velociraptor: System and EventData at the top level
    return isinstance(system, dict) and "EventID" in system


def _evtx_xml(record: dict[str, Any], hint: str) -> tuple[dict[str, Any], LogSource, Any, Any]:
    fields = flatten_windows_event(record)
    return fields, classify_windows_event(fields), fields.get("TimeCreated"), fields.get("Computer")


def _is_ecs_winlog(record: dict[str, Any], hint: str) -> bool:
    return isinstance(record.get("winlog"), dict)


def _ecs_winlog(record: dict[str, Any], hint: str) -> tuple[dict[str, Any], LogSource, Any, Any]:
    winlog: dict[str, Any] = record["winlog"]
    fields: dict[str, Any] = {}
    for section in ("event_data", "user_data"):
        data = winlog.get(section)
        if isinstance(data, dict):
            for key, value in data.items():
                fields[key] = value
    event = record.get("event") if isinstance(record.get("event"), dict) else {}
    host = record.get("host") if isinstance(record.get("host"), dict) else {}
    event_id = winlog.get("event_id", event.get("code") if event else None)
    fields["EventID"] = _int_or_keep(event_id)
    fields["Channel"] = winlog.get("channel")
    fields["Provider_Name"] = winlog.get("provider_name")
    if "provider_guid" in winlog:
        fields["Provider_Guid"] = winlog["provider_guid"]
    fields["Computer"] = winlog.get("computer_name") or (host or {}).get("name")
    if "record_id" in winlog:
        fields["EventRecordID"] = _int_or_keep(winlog["record_id"])
    for ecs_key, name in (("task", "Task"), ("opcode", "Opcode"), ("keywords", "Keywords")):
        if ecs_key in winlog:
            fields.setdefault(name, winlog[ecs_key])
    process = winlog.get("process")
    if isinstance(process, dict):
        if "pid" in process:
            fields.setdefault("Execution_ProcessID", process["pid"])
        thread = process.get("thread")
        if isinstance(thread, dict) and "id" in thread:
            fields.setdefault("Execution_ThreadID", thread["id"])
    user = winlog.get("user")
    if isinstance(user, dict) and "identifier" in user:
        fields.setdefault("UserID", user["identifier"])
    if isinstance(record.get("message"), str):
        fields.setdefault("Message", record["message"])
    timestamp = record.get("@timestamp") or (event or {}).get("created")
    fields.setdefault("TimeCreated", timestamp)
    return fields, classify_windows_event(fields), timestamp, fields.get("Computer")


_FLAT_PROVIDER = ("SourceName", "ProviderName", "Provider_Name", "Provider")
_FLAT_HOST = ("Computer", "Hostname", "ComputerName", "host")
_FLAT_TIME = ("@timestamp", "TimeCreated", "EventTime", "UtcTime", "TimeGenerated")


def _is_windows_flat(record: dict[str, Any], hint: str) -> bool:
    return "EventID" in record and ("Channel" in record or "SourceName" in record)


def _windows_flat(record: dict[str, Any], hint: str) -> tuple[dict[str, Any], LogSource, Any, Any]:
    fields = dict(record)
    fields["EventID"] = _int_or_keep(record["EventID"])
    for key in _FLAT_PROVIDER:
        value = record.get(key)
        if isinstance(value, str):
            fields.setdefault("Provider_Name", value)
            break
    for key in _FLAT_HOST:
        value = record.get(key)
        if isinstance(value, str) and value:
            fields.setdefault("Computer", value)
            break
    if "RecordNumber" in record:
        fields.setdefault("EventRecordID", _int_or_keep(record["RecordNumber"]))
    timestamp = next((record[k] for k in _FLAT_TIME if record.get(k)), None)
    return fields, classify_windows_event(fields), timestamp, fields.get("Computer")


_PS_DATE = re.compile(r"/Date\((-?\d+)\)/")
_PS_FIELDS = (
    ("Id", "EventID"), ("LogName", "Channel"), ("ProviderName", "Provider_Name"),
    ("MachineName", "Computer"), ("RecordId", "EventRecordID"), ("Level", "Level"),
    ("Task", "Task"), ("Opcode", "Opcode"), ("Keywords", "Keywords"),
    ("ProcessId", "Execution_ProcessID"), ("ThreadId", "Execution_ThreadID"),
    ("Message", "Message"),
)  # fmt: skip


def _is_powershell(record: dict[str, Any], hint: str) -> bool:
    return "Id" in record and "LogName" in record and "ProviderName" in record


def _powershell(record: dict[str, Any], hint: str) -> tuple[dict[str, Any], LogSource, Any, Any]:
    """``Get-WinEvent | ConvertTo-Json``: EventData only as unnamed ``Properties`` values."""
    fields: dict[str, Any] = {}
    for source, target in _PS_FIELDS:
        if source in record:
            fields[target] = record[source]
    fields["EventID"] = _int_or_keep(fields.get("EventID"))
    properties = record.get("Properties")
    if isinstance(properties, list):
        fields["Data"] = [
            p.get("Value") if isinstance(p, dict) else p for p in properties if p is not None
        ]
    raw_time = record.get("TimeCreated")
    if isinstance(raw_time, str):
        match = _PS_DATE.match(raw_time)  # Windows PowerShell 5.1 writes "/Date(ms)/"
        if match:
            raw_time = int(match.group(1)) / 1000.0
    fields["TimeCreated"] = raw_time
    return fields, classify_windows_event(fields), raw_time, fields.get("Computer")


# --- network and cloud -----------------------------------------------------------------------


def zeek_kind(hint: str) -> str:
    """Zeek log type from a file name: ``dns.log``, ``dns.json``, ``dns.09:00-10:00.log``."""
    return hint.split(".", 1)[0].lower()


def _is_zeek(record: dict[str, Any], hint: str) -> bool:
    if "_path" in record and ("ts" in record or "_write_ts" in record):
        return True
    return "ts" in record and ("uid" in record or "id.orig_h" in record)


def _zeek(record: dict[str, Any], hint: str) -> tuple[dict[str, Any], LogSource, Any, Any]:
    # Zeek writes flat records (dotted names, lists of scalars) unless told to nest them
    fields = record if dict not in set(map(type, record.values())) else flatten_json(record)
    kind = record.get("_path") or zeek_kind(hint)
    logsource = source_table("zeek").classify(kind).apply(fields)
    return fields, logsource, record.get("ts"), None


def _is_suricata(record: dict[str, Any], hint: str) -> bool:
    return "event_type" in record and "timestamp" in record


def _suricata(record: dict[str, Any], hint: str) -> tuple[dict[str, Any], LogSource, Any, Any]:
    fields = flatten_owned(record)
    logsource = source_table("suricata").classify(record.get("event_type")).apply(fields)
    return fields, logsource, record.get("timestamp"), record.get("host")


def _is_cloudtrail(record: dict[str, Any], hint: str) -> bool:
    return "eventSource" in record and "eventName" in record


def _cloudtrail(record: dict[str, Any], hint: str) -> tuple[dict[str, Any], LogSource, Any, Any]:
    fields = flatten_owned(record)
    logsource = source_table("cloudtrail").classify().apply(fields)
    return fields, logsource, record.get("eventTime") or record.get("@timestamp"), None


# --- anything else ---------------------------------------------------------------------------

_GENERIC_TIME = ("@timestamp", "timestamp", "time", "ts", "eventTime", "date", "datetime")
_GENERIC_HOST = ("host.name", "hostname", "host", "computer", "Computer")


def _looks_like_time_key(key: str) -> bool:
    lowered = key.lower()
    return "timestamp" in lowered or "datetime" in lowered or lowered.endswith("time")


def _generic(record: dict[str, Any], hint: str) -> tuple[dict[str, Any], LogSource, Any, Any]:
    fields = flatten_owned(record)
    timestamp = next((fields[k] for k in _GENERIC_TIME if fields.get(k) is not None), None)
    if timestamp is None:  # CSV exports and ad-hoc JSON: "Event DateTime", "eventTimestamp"...
        timestamp = next(
            (v for k, v in fields.items() if v and _looks_like_time_key(k)),
            None,
        )
    host = next((fields[k] for k in _GENERIC_HOST if isinstance(fields.get(k), str)), None)
    return fields, LogSource(), timestamp, host


LAYOUTS: tuple[Layout, ...] = (
    Layout("evtx_xml", _is_evtx_xml, _evtx_xml),
    Layout("ecs_winlog", _is_ecs_winlog, _ecs_winlog),
    Layout("windows_flat", _is_windows_flat, _windows_flat),
    Layout("powershell_winevent", _is_powershell, _powershell),
    Layout("zeek", _is_zeek, _zeek),
    Layout("suricata", _is_suricata, _suricata),
    Layout("cloudtrail", _is_cloudtrail, _cloudtrail),
    Layout("generic", lambda record, hint: True, _generic),
)
"""Every layout, most specific first; ``generic`` accepts anything."""


class LayoutPicker:
    """Chooses a record's layout, trying the two last used first.

    Two, because a sender often mixes two shapes (Winlogbeat and evtx_dump JSON from two
    collectors of one unit); the full list is walked only when neither fits.
    """

    __slots__ = ("_before", "_last")

    def __init__(self) -> None:
        self._last: Layout | None = None
        self._before: Layout | None = None

    def event(self, record: dict[str, Any], hint: str, ref: SourceRef) -> Event:
        """Normalise one JSON record into an Event."""
        layout = self._last
        if layout is None or layout.name == "generic" or not layout.matches(record, hint):
            before = self._before
            if before is not None and before.name != "generic" and before.matches(record, hint):
                layout = before
            else:
                layout = next(lay for lay in LAYOUTS if lay.matches(record, hint))
            self._before, self._last = self._last, layout
        fields, logsource, raw_time, host = layout.normalise(record, hint)
        record_id = fields.get("EventRecordID")
        if ref.record_id is None and isinstance(record_id, int) and not isinstance(record_id, bool):
            ref = SourceRef(ref.path, ref.format, record_id, ref.line, ref.offset)
        return Event(
            fields=fields,
            logsource=logsource,
            timestamp=parse_timestamp(raw_time),
            host=host if isinstance(host, str) else None,
            source=ref,
        )
