"""A detection as a JSON object: the JSONL contract of ``vedette scan``.

One shape for rule, correlation and indicator detections, documented in ``docs/scan.md`` and
described by ``docs/scan-detection.schema.json``. Keys are only ever added, never renamed.
"""

from __future__ import annotations

import base64
import dataclasses
from collections.abc import Callable, Mapping
from datetime import date, datetime, time
from decimal import Decimal
from pathlib import PurePath
from typing import Any

import orjson

from vedette.events import Detection, SourceRef, iso_utc

SCHEMA_VERSION = 1


def detection_record(detection: Detection) -> dict[str, Any]:
    """The contract object for one detection, made only of JSON types."""
    return _record(detection, jsonable)


def detection_json(detection: Detection) -> bytes:
    """The contract object as compact JSON bytes (no newline): what the writers write.

    Event fields go to orjson as they are (the converting walk of :func:`jsonable` costs more
    than the serialisation itself); values orjson cannot write natively reach
    :func:`jsonable` through its ``default`` hook, so the bytes equal
    ``dumps(detection_record(detection))``.
    """
    return dumps(_record(detection, _as_is))


def _as_is(value: Any) -> Any:
    return value


def _record(detection: Detection, convert: Callable[[Any], Any]) -> dict[str, Any]:
    event = detection.event
    logsource = event.logsource
    return {
        "timestamp": iso_utc(event.timestamp),
        "kind": detection.kind,
        "rule_id": detection.rule_id,
        "rule_title": detection.rule_title,
        "rule_name": detection.rule_name,
        "level": detection.level,
        "status": detection.status,
        "tags": list(detection.tags),
        "attack": [
            {"id": ref.technique_id, "name": ref.name or None, "tactics": list(ref.tactics)}
            for ref in detection.attack
        ],
        "host": event.host,
        "unit": event.unit,
        "source": source_record(event.source),
        "logsource": {
            "product": logsource.product,
            "services": sorted(logsource.services),
            "categories": sorted(logsource.categories),
        },
        "matched": list(detection.matched),
        "rule_path": detection.rule_path,
        "details": convert(detection.extra),
        "event": convert(event.fields),
    }


def source_record(source: SourceRef | None) -> dict[str, Any]:
    """Where the event came from; unknown parts are null."""
    if source is None:
        return {"path": None, "format": None, "record_id": None, "line": None, "offset": None}
    return {
        "path": source.path,
        "format": source.format,
        "record_id": source.record_id,
        "line": source.line,
        "offset": source.offset,
    }


def jsonable(value: Any) -> Any:
    """``value`` with every part JSON can carry kept and the rest made text.

    Event fields come from many formats; a value JSON cannot hold (bytes, sets, objects
    from a reader or the correlator) must not break the output line.
    """
    if value is None or isinstance(value, str | bool | int | float):
        return value
    if isinstance(value, Mapping):
        return {str(k): jsonable(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [jsonable(v) for v in value]
    if isinstance(value, set | frozenset):
        return sorted((jsonable(v) for v in value), key=str)
    if isinstance(value, datetime):
        return iso_utc(value)
    if isinstance(value, date | time):
        return value.isoformat()
    if isinstance(value, bytes | bytearray):
        return base64.b64encode(bytes(value)).decode("ascii")
    if isinstance(value, Decimal | PurePath):
        return str(value)
    if isinstance(value, Detection):
        return {"rule_id": value.rule_id, "timestamp": iso_utc(value.event.timestamp)}
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return {f.name: jsonable(getattr(value, f.name)) for f in dataclasses.fields(value)}
    return str(value)


def _default(value: Any) -> Any:
    converted = jsonable(value)
    if converted is value:
        return str(value)
    return converted


_OPTIONS = (
    orjson.OPT_NON_STR_KEYS | orjson.OPT_PASSTHROUGH_DATETIME | orjson.OPT_PASSTHROUGH_DATACLASS
)
"""Times and dataclasses go through :func:`jsonable`, so both paths write the same text."""


def dumps(record: Mapping[str, Any]) -> bytes:
    """Compact JSON bytes for a record, without a newline."""
    # orjson rejects integers beyond 64 bits; such values are made text rather than lost.
    try:
        return orjson.dumps(record, default=_default, option=_OPTIONS)
    except TypeError:
        return orjson.dumps(jsonable(_big_ints_as_text(record)), default=_default)


def _big_ints_as_text(value: Any) -> Any:
    if isinstance(value, bool):
        return value
    if isinstance(value, int):
        return value if -(2**63) <= value < 2**64 else str(value)
    if isinstance(value, Mapping):
        return {k: _big_ints_as_text(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_big_ints_as_text(v) for v in value]
    return value
