"""Flatten a Windows event in its XML-as-JSON shape into Sigma's flat field taxonomy.

The shape is what the ``evtx`` package (and ``evtx_dump -o json``) produce and what SigmaHQ's
regression ``.json`` files hold::

    {"Event": {"System": {"Provider": {"#attributes": {"Name": "..."}}, "EventID": 4688, ...,
               "TimeCreated": {"#attributes": {"SystemTime": "..."}}, "Channel": "Security", ...},
               "EventData": {"NewProcessName": "C:\\\\...", ...}}}

The result puts EventData (or UserData) fields at the top level beside the System fields, as the
Sigma Windows rules expect: ``EventID`` (int), ``Channel``, ``Provider_Name``, ``Computer``,
``EventRecordID``, ``TimeCreated`` (the SystemTime string), ``Keywords``, ``Level``, ...; the
attributes of ``Execution`` prefixed (``Execution_ProcessID``, ``Execution_ThreadID``), those of
``Security`` and ``Correlation`` as they are (``UserID``, ``ActivityID``).
"""

from __future__ import annotations

from typing import Any
from xml.etree import ElementTree

import orjson

from vedette.events import LogSource
from vedette.normalize.tables import linux_sysmon_logsource
from vedette.normalize.timeparse import from_epoch
from vedette.normalize.windows import (
    PLAN_CACHE_LIMIT,
    Plan,
    normalize_windows,
    windows_mapping,
)

_ATTRS = "#attributes"
_TEXT = "#text"

# System fields that describe the record itself: they win over an EventData/UserData field of
# the same name (a log-cleared event's UserData carries the *cleared* Channel, for instance).
_SYSTEM_WINS = frozenset(("EventRecordID", "Channel", "Computer"))
# Secondary System fields: an EventData field of the same name wins.
_SYSTEM_DEFAULTS = frozenset(("Version", "Level", "Task", "Opcode", "Keywords"))
# System elements whose attributes are the values: SystemTime, ProcessID/ThreadID, UserID, ...
_SYSTEM_ATTRS = frozenset(("TimeCreated", "Execution", "Security", "Correlation"))
# Attributes of these System elements get the element's name as a prefix, SigmaHQ's spelling of
# System attributes (logsource.json: Security_UserID): Execution's ProcessID would otherwise
# sit beside Sysmon's EventData ProcessId, a case-insensitive clash that costs the matcher.
EXECUTION_PREFIX = "Execution_"
_SECTIONS = ("EventData", "UserData", "ProcessingErrorData", "DebugData", "BinaryEventData")


def _text(value: Any) -> Any:
    """The value of an XML element rendered as JSON: its ``#text`` when it has attributes
    (Velociraptor writes ``{"Value": ..}`` instead)."""
    if isinstance(value, dict):
        return value[_TEXT] if _TEXT in value else value.get("Value")
    return value


def _as_int(value: Any) -> Any:
    value = _text(value)
    if isinstance(value, int):
        return value
    try:
        return int(str(value).strip())
    except (TypeError, ValueError):
        return value


def _flatten_section(section: dict[str, Any], fields: dict[str, Any]) -> None:
    """EventData-like section: named Data already keyed by name; unnamed ``Data`` kept as Data."""
    for key, value in section.items():
        if key == _ATTRS:
            continue
        if isinstance(value, dict):
            if _TEXT in value:
                fields[key] = value[_TEXT]
            elif any(k != _ATTRS for k in value):
                # UserData: <LogFileCleared><SubjectUserName>..</..></..> nests elements
                _flatten_section(value, fields)
            else:
                fields[key] = None
        elif isinstance(value, list):  # repeated elements: keep values flat (their text)
            fields[key] = [_text(item) if isinstance(item, dict) else item for item in value]
        else:
            fields[key] = value


def _add_section(section: Any, name: str, fields: dict[str, Any]) -> None:
    if type(section) is dict:
        # the common case, EventData already keyed by Data Name: one C-level update
        types = set(map(type, section.values()))
        if _ATTRS in section or "Data" in section or dict in types or list in types:
            _flatten_section(section, fields)
        else:
            fields.update(section)
    elif section is not None and section != "":
        fields[name] = section


def flatten_windows_event(record: dict[str, Any]) -> dict[str, Any]:
    """Flat Sigma fields of one event dict (with or without its outer ``Event`` key)."""
    event = record.get("Event", record)
    if type(event) is not dict:
        return {}
    fields: dict[str, Any] = {}
    for name in _SECTIONS:
        if name in event:
            _add_section(event[name], name, fields)
    system = event.get("System")
    if type(system) is not dict:
        return fields
    provider = system.get("Provider")
    if type(provider) is dict:
        attrs = provider.get(_ATTRS)
        if type(attrs) is not dict:  # Velociraptor: the attributes are the object itself
            attrs = provider
        if type(attrs) is dict:
            if "Name" in attrs:
                fields["Provider_Name"] = attrs["Name"]
            if "Guid" in attrs:
                fields.setdefault("Provider_Guid", attrs["Guid"])
            if "EventSourceName" in attrs:
                fields.setdefault("EventSourceName", attrs["EventSourceName"])
    for key, value in system.items():
        if key in _SYSTEM_WINS:
            fields[key] = value if type(value) is not dict else _text(value)
        elif key == "EventID":
            fields["EventID"] = value if type(value) is int else _as_int(value)
        elif key in _SYSTEM_DEFAULTS:
            if key not in fields:
                fields[key] = value if type(value) is not dict else _text(value)
        elif key in _SYSTEM_ATTRS and type(value) is dict:
            attrs = value.get(_ATTRS)
            if type(attrs) is not dict:
                attrs = value  # Velociraptor: {"SystemTime": 1600000000.5}, {"ProcessID": 4}
            if key == "TimeCreated":
                fields["TimeCreated"] = _system_time(attrs.get("SystemTime"))
            else:
                prefix = EXECUTION_PREFIX if key == "Execution" else ""
                for attr, attr_value in attrs.items():
                    name = prefix + attr
                    if name not in fields:
                        fields[name] = attr_value
    return fields


# The two System layouts the ``evtx`` renderer emits (with and without Version, Opcode,
# Correlation and Execution), in its order: the specialised flattener below handles exactly these.
_FULL_NAMES = (
    "Provider",
    "EventID",
    "Version",
    "Level",
    "Task",
    "Opcode",
    "Keywords",
    "TimeCreated",
    "EventRecordID",
    "Correlation",
    "Execution",
    "Channel",
    "Computer",
    "Security",
)
_SHORT_NAMES = tuple(
    k for k in _FULL_NAMES if k not in ("Version", "Opcode", "Correlation", "Execution")
)


def _parser_keys(*names: str) -> tuple[str, ...]:
    """``names`` as the very string objects orjson gives as keys (it caches them), so that
    comparing and looking them up in parsed records is an identity check, not a memcmp."""
    return tuple(orjson.loads(orjson.dumps(dict.fromkeys(names))))


_SYSTEM_FULL = _parser_keys(*_FULL_NAMES)
_SYSTEM_SHORT = _parser_keys(*_SHORT_NAMES)
_K_EVENT, _K_EVENTDATA, _K_SYSTEM, _K_ATTRS, _K_NAME, _K_GUID, _K_SOURCE, _K_TIME = _parser_keys(
    "Event", "EventData", "System", _ATTRS, "Name", "Guid", "EventSourceName", "SystemTime"
)
_NOT_SCALAR = frozenset((dict, list))
# Fields the fast path writes only when EventData does not have them: with none of them in
# EventData (the rule), it may write them unconditionally.
_DEFAULT_NAMES = frozenset(("Provider_Guid", "EventSourceName", *_SYSTEM_DEFAULTS))


def flatten_evtx_event(record: dict[str, Any]) -> dict[str, Any]:
    """:func:`flatten_windows_event` for a record the caller owns, specialised for the exact
    shape the ``evtx`` renderer emits (same fields, same values, same order).

    The common record (``System`` in one of the renderer's two layouts with plain values, flat
    ``EventData`` sharing no name with the secondary System fields, and no other section) is
    flattened in straight-line code into its own ``EventData`` dict, which saves the copy and
    the generic per-key dispatch; any other shape takes the generic path.
    """
    event = record.get(_K_EVENT)
    if type(event) is not dict:
        return flatten_windows_event(record)
    fields = event.get(_K_EVENTDATA)
    if fields is None and _K_EVENTDATA in event:  # "EventData": null (1 record in 20)
        fields = {}
    system = event.get(_K_SYSTEM)
    if (
        type(fields) is not dict
        or type(system) is not dict
        # nothing but #attributes, System and EventData: no other section to merge
        or len(event) != (3 if _K_ATTRS in event else 2)
        or _ATTRS in fields
        or "Data" in fields
        or not _NOT_SCALAR.isdisjoint(map(type, fields.values()))
        or not fields.keys().isdisjoint(_DEFAULT_NAMES)
    ):
        return flatten_windows_event(record)
    keys = tuple(system)
    # the values in the layout's order: unpacked from the view, no key lookups
    if keys == _SYSTEM_FULL:
        (provider, event_id, version, level, task, opcode, keywords, created, record_id,
         correlation, execution, channel, computer, security) = system.values()  # fmt: skip
        full = True
    elif keys == _SYSTEM_SHORT:
        (provider, event_id, level, task, keywords, created, record_id, channel, computer,
         security) = system.values()  # fmt: skip
        version = opcode = correlation = execution = None
        full = False
    else:
        return flatten_windows_event(record)
    # element values rendered with attributes ({"#text": ..}) take the generic path; the
    # chained test is the renderer's usual types, cheaper than building the set of types
    if not (
        type(level) is type(task) is type(record_id) is int
        and type(keywords) is type(computer) is str
        and (not full or type(version) is type(opcode) is int)
        and type(channel) is not dict
    ) and dict in {type(version), type(level), type(task), type(opcode), type(keywords),
                   type(record_id), type(channel), type(computer)}:  # fmt: skip
        return flatten_windows_event(record)
    # From here on the same steps as flatten_windows_event, in the same order.
    if type(provider) is dict:
        attrs = provider.get(_K_ATTRS)
        if type(attrs) is not dict:
            attrs = provider
        if _K_NAME in attrs:
            fields["Provider_Name"] = attrs[_K_NAME]
        if _K_GUID in attrs:
            fields["Provider_Guid"] = attrs[_K_GUID]
        if _K_SOURCE in attrs:
            fields["EventSourceName"] = attrs[_K_SOURCE]
    fields["EventID"] = event_id if type(event_id) is int else _as_int(event_id)
    if full:
        fields["Version"] = version
        fields["Level"] = level
        fields["Task"] = task
        fields["Opcode"] = opcode
    else:
        fields["Level"] = level
        fields["Task"] = task
    fields["Keywords"] = keywords
    if type(created) is dict:
        attrs = created.get(_K_ATTRS)
        if type(attrs) is not dict:
            attrs = created
        stamp = attrs.get(_K_TIME)
        fields["TimeCreated"] = stamp if type(stamp) is str else _system_time(stamp)
    fields["EventRecordID"] = record_id
    if full:
        if correlation is not None:
            _attributes_into(correlation, fields)
        if type(execution) is dict:
            attrs = execution.get(_K_ATTRS)
            if type(attrs) is not dict:
                attrs = execution
            for attr, value in attrs.items():
                name = EXECUTION_PREFIX + attr
                if name not in fields:
                    fields[name] = value
    fields["Channel"] = channel
    fields["Computer"] = computer
    _attributes_into(security, fields)
    return fields


def _attributes_into(value: Any, fields: dict[str, Any]) -> None:
    """Attributes of an attribute-only System element (Correlation, Security) as fields, unless
    EventData already has them."""
    if type(value) is dict:
        attrs = value.get(_ATTRS)
        if type(attrs) is not dict:
            attrs = value
        for attr, attr_value in attrs.items():
            if attr not in fields:
                fields[attr] = attr_value


def _system_time(value: Any) -> Any:
    """SystemTime as the ISO text EVTX renders; epoch seconds (Velociraptor) converted."""
    if isinstance(value, int | float) and not isinstance(value, bool):
        stamp = from_epoch(float(value))
        return stamp.isoformat().replace("+00:00", "Z") if stamp else value
    return value


_LINUX_SYSMON = "Linux-Sysmon"
_WINDOWS_PLANS: dict[tuple[str, int], Plan] = {}
"""Plans of the packaged mapping by (Channel, EventID), for Windows channels only."""


def classify_windows_event(fields: dict[str, Any]) -> LogSource:
    """Logsource of a flattened Windows-schema event; Sysmon for Linux is product ``linux``.

    For a text Channel and an int EventID (every EVTX record) this is :func:`normalize_windows`
    through its plan, looked up here directly: it runs once per event of every reader."""
    channel = fields.get("Channel")
    event_id = fields.get("EventID")
    if type(channel) is str and channel and type(event_id) is int:
        plan = _WINDOWS_PLANS.get((channel, event_id))
        if plan is not None:
            return plan.run(fields)
        if not channel.startswith(_LINUX_SYSMON):
            plan = windows_mapping().cached_plan(channel, event_id)
            if len(_WINDOWS_PLANS) < PLAN_CACHE_LIMIT:
                _WINDOWS_PLANS[(channel, event_id)] = plan
            return plan.run(fields)
    if isinstance(channel, str) and channel.startswith(_LINUX_SYSMON):
        return linux_sysmon_logsource(fields)
    return normalize_windows(fields)


def parse_event_xml(text: str) -> dict[str, Any] | None:
    """An ``<Event>`` XML document (Sysmon for Linux writes these to syslog) in the JSON shape
    :func:`flatten_windows_event` takes; None when it is not well-formed XML."""
    try:
        root = ElementTree.fromstring(text)
    except (ElementTree.ParseError, ValueError):
        return None
    return event_element_record(root)


def event_element_record(root: ElementTree.Element) -> dict[str, Any]:
    """An ``<Event>`` element in the JSON shape :func:`flatten_windows_event` takes."""
    event: dict[str, Any] = {}
    for section in root:
        name = _local(section.tag)
        if name == "System":
            system: dict[str, Any] = {}
            for child in section:
                key = _local(child.tag)
                if child.attrib:
                    system[key] = {_ATTRS: dict(child.attrib), _TEXT: _typed(child.text)}
                else:
                    system[key] = _typed(child.text)
            event["System"] = system
        elif name == "RenderingInfo":
            message = section.find("{*}Message")
            if message is not None and message.text:
                event["RenderingInfo"] = {"Message": message.text}
        else:
            data: dict[str, Any] = {}
            unnamed: list[Any] = []
            for child in section:
                if "Name" in child.attrib:
                    data[child.attrib["Name"]] = child.text
                elif _local(child.tag) == "Data":
                    unnamed.append(child.text)
                elif len(child):  # UserData: <LogFileCleared><SubjectUserName>..</..></..>
                    data[_local(child.tag)] = {
                        _local(leaf.tag): leaf.text for leaf in child if not len(leaf)
                    }
                else:
                    data[_local(child.tag)] = child.text
            if unnamed:
                data["Data"] = unnamed if len(unnamed) > 1 else unnamed[0]
            event[name] = data
    return {"Event": event}


def _local(tag: str) -> str:
    """Tag without its ``{namespace}``."""
    return tag.rsplit("}", 1)[-1]


def _typed(text: str | None) -> Any:
    """System integers as int (as the evtx renderer gives them), everything else as text."""
    if text is not None and text.isdigit() and len(text) < 19:
        return int(text)
    return text
