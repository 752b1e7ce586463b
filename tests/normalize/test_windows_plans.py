"""normalize_windows runs a cached plan per (Channel, EventID): it must do exactly what the
step-by-step definition (normalize_windows_reference) does, on real events and on any fields."""

from __future__ import annotations

import itertools
import re
from typing import Any

import evtx
import orjson
from hypothesis import given, settings
from hypothesis import strategies as st

from datasets import dataset
from vedette.normalize.tables import linux_sysmon_logsource
from vedette.normalize.windows import (
    PLAN_CACHE_LIMIT,
    compile_mapping,
    normalize_windows,
    normalize_windows_reference,
    windows_mapping,
)
from vedette.normalize.winevent import classify_windows_event, flatten_windows_event
from vedette.sources import iter_input_files


def _both(fields: dict[str, Any]) -> None:
    """Classify two copies, one each way: same logsource, same fields in the same order."""
    planned, reference = dict(fields), dict(fields)
    assert normalize_windows(planned) == normalize_windows_reference(reference)
    assert list(planned.items()) == list(reference.items())


def test_plans_equal_the_reference_on_every_attack_sample_event() -> None:
    root = dataset("evtx-attack-samples")
    compared = 0
    for path in iter_input_files([root]):
        if path.suffix != ".evtx":
            continue
        for record in evtx.PyEvtxParser(str(path)).records_json():
            fields = flatten_windows_event(orjson.loads(record["data"]))
            _both(fields)
            classified = dict(fields)
            assert classify_windows_event(classified) == _classify_reference(fields)
            assert list(classified.items()) == list(fields.items())
            compared += 1
    assert compared == 8255


_MAPPING = windows_mapping()
_CHANNELS = sorted({name for name in _MAPPING.channels} | {"Security", "Unknown/Channel"})
_EVENT_IDS = sorted({eid for c in _MAPPING.channels.values() for eid in c.events} | {0, 99999})
_TEXT = st.sampled_from(["", "-", "CreateKey", "deletevalue", "File", "C:\\x.exe", "CORP", "S-1"])
_VALUE = st.one_of(st.none(), _TEXT, st.integers(-2, 5))
# alias sources and targets, conditional-category fields and spaced (compact) names
_NAMES = st.sampled_from(
    [
        "NewProcessName",
        "Image",
        "ProcessId",
        "ParentProcessId",
        "TargetUserName",
        "TargetDomainName",
        "SubjectUserName",
        "SubjectDomainName",
        "TargetLogonId",
        "User",
        "UserID",
        "Security_UserID",
        "EventType",
        "ObjectType",
        "ObjectName",
        "Threat Name",
        "ThreatName",
        "Path",
        "ClientPID",
        "FilePath",
        "Provider_Name",
    ]
)


# every (channel, EventID) with aliases or categories, as the mapping spells the channel
# (lower-cased) and in capitals; and odd values that take the reference path
_PAIRS = sorted((name, eid) for name, c in _MAPPING.channels.items() for eid in c.events)
_KNOWN = st.sampled_from(_PAIRS).flatmap(
    lambda pair: st.tuples(st.sampled_from([pair[0], pair[0].upper()]), st.just(pair[1]))
)
_ODD = st.tuples(
    st.one_of(st.sampled_from(_CHANNELS), st.sampled_from([None, "", 7])),
    st.one_of(
        st.sampled_from(_EVENT_IDS),
        st.sampled_from(_EVENT_IDS).map(str),
        st.sampled_from([None, True, 1.0, "x", [1]]),
    ),
)


@settings(max_examples=500, deadline=None)
@given(pair=st.one_of(_KNOWN, _ODD), extra=st.dictionaries(_NAMES, _VALUE, max_size=8))
def test_plans_equal_the_reference_on_any_fields(
    pair: tuple[Any, Any], extra: dict[str, Any]
) -> None:
    fields = {"Channel": pair[0], "EventID": pair[1], **extra}
    _both(fields)
    _both(fields)  # the second time from the cached plan


def test_plan_cache_is_bounded() -> None:
    mapping = compile_mapping({"channels": {"Security": "security"}})
    for event_id in range(PLAN_CACHE_LIMIT + 10):
        normalize_windows({"Channel": "Security", "EventID": event_id}, mapping)
    assert len(mapping.plans) == PLAN_CACHE_LIMIT
    fields = {"Channel": "Security", "EventID": PLAN_CACHE_LIMIT + 5, "UserID": "S-1-5-18"}
    assert normalize_windows(fields, mapping).services == {"security"}


def _source_names(sources: tuple[str, ...]) -> list[str]:
    """Field names an alias reads: plain sources and the placeholders of templates."""
    names: list[str] = []
    for source in sources:
        names += re.findall(r"\{([^{}]+)\}", source) if "{" in source else [source]
    return names


def test_plans_equal_the_reference_for_every_alias_and_source_value() -> None:
    compared = 0
    for name, channel in _MAPPING.channels.items():
        for event_id, event in [*channel.events.items(), (99999, None)]:
            aliases = [*_MAPPING.common_aliases, *(event.aliases if event else ())]
            conditions = [c.field for c in event.conditional] if event else []
            for alias in aliases:
                names = _source_names(alias.sources)
                # every source absent, unusable ("-", "") or usable, in every combination
                for values in itertools.product(["-", "", "x", None], repeat=len(names)):
                    fields: dict[str, Any] = {
                        "Channel": name.upper(),
                        "EventID": event_id,
                        "UserID": "S",
                    }
                    fields.update((n, v) for n, v in zip(names, values, strict=True) if v)
                    fields.update(dict.fromkeys(conditions, "createkey"))
                    _both(fields)
                    compared += 1
                _both(
                    {
                        "Channel": name,
                        "EventID": event_id,
                        alias.name: "kept",
                        **dict.fromkeys(names, "x"),
                    }
                )
    assert compared > 100


def _classify_reference(fields: dict[str, Any]) -> Any:
    """classify_windows_event as defined: Sysmon for Linux by its channel, else Windows."""
    channel = fields.get("Channel")
    if isinstance(channel, str) and channel.startswith("Linux-Sysmon"):
        return linux_sysmon_logsource(fields)
    return normalize_windows_reference(fields)


@settings(max_examples=300, deadline=None)
@given(
    pair=st.one_of(
        _KNOWN,
        _ODD,
        st.tuples(
            st.sampled_from(["Linux-Sysmon/Operational", "linux-sysmon/operational"]),
            st.one_of(st.integers(0, 30), st.sampled_from(["1", None])),
        ),
    ),
    extra=st.dictionaries(_NAMES, _VALUE, max_size=8),
)
def test_classify_windows_event_equals_its_definition(
    pair: tuple[Any, Any], extra: dict[str, Any]
) -> None:
    fields = {"Channel": pair[0], "EventID": pair[1], **extra}
    for _ in range(2):  # the second time from the cached plan
        planned, reference = dict(fields), dict(fields)
        assert classify_windows_event(planned) == _classify_reference(reference)
        assert list(planned.items()) == list(reference.items())
