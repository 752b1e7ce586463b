"""The EVTX reader's fast path gives exactly what the generic normalisation gives.

The reader flattens records with :func:`flatten_evtx_event` (straight-line code for the shape the
``evtx`` renderer emits) and parses SystemTime with :func:`system_time`. These tests compare it,
record by record over the whole attack-sample corpus, with the generic path
(:func:`flatten_windows_event`, :func:`parse_timestamp`): same fields in the same order with
values of the same types, same logsource, timestamp, host and source.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta, timezone
from typing import Any

import evtx
import orjson
from hypothesis import given, settings
from hypothesis import strategies as st

from datasets import dataset
from vedette.events import Event, SourceRef
from vedette.normalize.timeparse import parse_timestamp, system_time
from vedette.normalize.winevent import (
    classify_windows_event,
    flatten_evtx_event,
    flatten_windows_event,
)
from vedette.sources import ReadReport, iter_input_files, read_events


def _generic_event(record: dict[str, Any], display: str) -> Event:
    """What the reader produced before the fast path: the generic functions, step by step."""
    fields = flatten_windows_event(orjson.loads(record["data"]))
    logsource = classify_windows_event(fields)
    timestamp = parse_timestamp(fields.get("TimeCreated") or record.get("timestamp"))
    computer = fields.get("Computer")
    record_id = fields.get("EventRecordID")
    if not isinstance(record_id, int):
        record_id = record.get("event_record_id")
    return Event(
        fields=fields,
        logsource=logsource,
        timestamp=timestamp,
        host=computer if isinstance(computer, str) else None,
        source=SourceRef(display, "evtx", record_id=record_id),
    )


def _typed_items(fields: dict[str, Any]) -> list[tuple[str, type, Any]]:
    return [(key, type(value), value) for key, value in fields.items()]


def test_reader_equals_generic_normalisation_on_every_corpus_record() -> None:
    files = [p for p in iter_input_files([dataset("evtx-attack-samples")]) if p.suffix == ".evtx"]
    compared = 0
    for path in files:
        report = ReadReport()
        events = [e for batch in read_events(path, report=report) for e in batch]
        expected = [
            _generic_event(record, str(path))
            for record in evtx.PyEvtxParser(str(path)).records_json()
        ]
        assert len(events) == len(expected), path
        for got, want in zip(events, expected, strict=True):
            assert _typed_items(got.fields) == _typed_items(want.fields), (path, got.source)
            assert got.logsource == want.logsource
            assert got.timestamp == want.timestamp
            assert got.timestamp is None or got.timestamp.tzinfo is UTC
            assert got.host == want.host
            assert got.source == want.source
            compared += 1
    assert compared == 8255


def _event(system: dict[str, Any], data: Any, section: str = "EventData") -> dict[str, Any]:
    return {"Event": {"#attributes": {"xmlns": "x"}, "System": system, section: data}}


_FULL_SYSTEM: dict[str, Any] = {
    "Provider": {"#attributes": {"Name": "P", "Guid": "G", "EventSourceName": "S"}},
    "EventID": {"#attributes": {"Qualifiers": 16384}, "#text": 7045},
    "Version": 1,
    "Level": 4,
    "Task": 0,
    "Opcode": 0,
    "Keywords": "0x80",
    "TimeCreated": {"#attributes": {"SystemTime": "2020-01-01T00:00:00.5Z"}},
    "EventRecordID": 9,
    "Correlation": {"#attributes": {"ActivityID": "A"}},
    "Execution": {"#attributes": {"ProcessID": 4, "ThreadID": 8}},
    "Channel": "System",
    "Computer": "pc",
    "Security": {"#attributes": {"UserID": "S-1-5-18"}},
}

_SHORT_LAYOUT_MISSING = ("Version", "Opcode", "Correlation", "Execution")
_SCALARS = st.one_of(
    st.none(), st.booleans(), st.integers(-(2**63), 2**63 - 1), st.text(max_size=5)
)
_NAMES = st.sampled_from(
    [
        "Level",
        "Task",
        "ProcessID",
        "Execution_ProcessID",
        "UserID",
        "Channel",
        "EventID",
        "Provider_Guid",
        "Data",
        "X",
    ]
)
_VALUES = st.one_of(
    _SCALARS,
    st.lists(_SCALARS, max_size=2),
    st.dictionaries(st.sampled_from(["#text", "#attributes", "Y"]), _SCALARS, max_size=2),
)


@settings(max_examples=300, deadline=None)
@given(
    keys=st.one_of(
        # the renderer's two layouts (the fast path) and any other order or subset
        st.just(list(_FULL_SYSTEM)),
        st.just([k for k in _FULL_SYSTEM if k not in _SHORT_LAYOUT_MISSING]),
        st.permutations(list(_FULL_SYSTEM)).flatmap(
            lambda keys: st.integers(0, len(keys)).map(lambda n: keys[n:])
        ),
    ),
    overrides=st.dictionaries(st.sampled_from(list(_FULL_SYSTEM)), _VALUES, max_size=3),
    data=st.one_of(st.none(), _SCALARS, st.dictionaries(_NAMES, _VALUES, max_size=4)),
    section=st.sampled_from(["EventData", "UserData"]),
)
def test_fast_flattener_equals_generic_on_any_shape(
    keys: list[str], overrides: dict[str, Any], data: Any, section: str
) -> None:
    system = {key: overrides.get(key, _FULL_SYSTEM[key]) for key in keys}
    expected = flatten_windows_event(orjson.loads(orjson.dumps(_event(system, data, section))))
    got = flatten_evtx_event(orjson.loads(orjson.dumps(_event(system, data, section))))
    assert _typed_items(got) == _typed_items(expected)


def test_fast_flattener_on_both_renderer_layouts() -> None:
    short = {k: v for k, v in _FULL_SYSTEM.items() if k not in _SHORT_LAYOUT_MISSING}
    for system in (_FULL_SYSTEM, short):
        data = {"ServiceName": "svc", "Level": "from data", "ProcessID": "0x10", "On": True}
        expected = flatten_windows_event(orjson.loads(orjson.dumps(_event(system, data))))
        got = flatten_evtx_event(orjson.loads(orjson.dumps(_event(system, data))))
        assert _typed_items(got) == _typed_items(expected)
        assert got["EventID"] == 7045 and got["Level"] == "from data"
        assert got["ProcessID"] == "0x10" and got["Provider_Name"] == "P"
        if system is _FULL_SYSTEM:  # System Execution attributes are prefixed: no clash
            assert got["Execution_ProcessID"] == 4 and got["Execution_ThreadID"] == 8


_ZONES = st.sampled_from(
    [UTC, timezone(timedelta(hours=-4)), timezone(timedelta(hours=5, minutes=30))]
)


@settings(max_examples=300, deadline=None)
@given(
    moment=st.datetimes(min_value=datetime(1971, 1, 1), max_value=datetime(2100, 1, 1)),
    zone=st.one_of(st.none(), _ZONES),
    zulu=st.booleans(),
    pad=st.sampled_from(["", " ", "\t"]),
)
def test_system_time_equals_parse_timestamp(
    moment: datetime, zone: Any, zulu: bool, pad: str
) -> None:
    text = moment.replace(tzinfo=zone).isoformat()
    if zulu and text.endswith("+00:00"):
        text = text[:-6] + "Z"
    for value in (pad + text + pad, text + " UTC", text[:-1] if zulu else text):
        expected = parse_timestamp(value)
        got = system_time(value)
        assert got == expected
        assert (got.tzinfo if got else None) is (expected.tzinfo if expected else None)


def test_system_time_on_other_values() -> None:
    for value in (None, "", "garbage", 1600000000, 1.5, True, "1600000000"):
        assert system_time(value) == parse_timestamp(value)
