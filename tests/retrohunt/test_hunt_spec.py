"""A job's spec holds what it hunts and who asked, so another process can run it: the new
indicators of a feed reload and the caller's scope survive the trip through JSON (the state
store's column) unchanged, and every kind of job rebuilds its detector from its spec."""

from __future__ import annotations

from datetime import UTC, datetime

import orjson

from vedette.events import AttackRef, Event, LogSource
from vedette.intel.index import IndicatorIndex
from vedette.intel.model import Indicator, IndicatorInfo
from vedette.server.retrohunt import (
    caller_record,
    caller_scope,
    can_rebuild,
    indicator_records,
    indicators_from_records,
    rebuild_detector,
)
from vedette.store.state.scope import Principal, Role, Scope

WHEN = datetime(2025, 3, 1, 12, 0, tzinfo=UTC)
SHA256 = "ef537f25c895bfa782526529a9b63d97aa631564d5d789c2b765448c8635fb6c"
RULE = """
title: Whoami
id: 3f1c2a8e-6d7b-4c11-9a55-0c2f1d9e7b10
logsource: {product: windows, category: process_creation}
detection:
  selection: {Image|endswith: '\\\\whoami.exe'}
  condition: selection
level: medium
"""


def _index() -> IndicatorIndex:
    index = IndicatorIndex()
    rich = IndicatorInfo(
        source="partner",
        id="indicator--1",
        reference="MISP event 7",
        description="C2",
        confidence=90,
        level="high",
        valid_from=datetime(2025, 1, 1, tzinfo=UTC),
        valid_until=datetime(2026, 1, 1, tzinfo=UTC),
        labels=("c2",),
        tags=("tlp:amber",),
        attack=(AttackRef("T1071.001", "Web Protocols", ("command-and-control",)),),
        requires=(("domain", "evil.example"),),
    )
    plain = IndicatorInfo(source="list")
    for kind, value, info in [
        ("ip", "203.0.113.7", rich),
        ("ip", "198.51.100.0/24", plain),
        ("ip", "2001:db8::1", plain),
        ("domain", "evil.example", plain),
        ("url", "http://evil.example/x", plain),
        ("sha256", SHA256, plain),
        ("email", "a@evil.example", plain),
    ]:
        index.add(Indicator(kind, value, info))
    return index


def _key(indicator: Indicator) -> tuple[str, str, str]:
    return (indicator.type, indicator.value, repr(indicator.info))


def test_an_indicator_set_survives_json_unchanged() -> None:
    index = _index()
    stored = orjson.loads(orjson.dumps(indicator_records(index)))
    again = indicators_from_records(stored)
    assert sorted(map(_key, again.indicators())) == sorted(map(_key, index.indicators()))
    events = [
        Event({"DestinationIp": "203.0.113.7", "QueryName": "evil.example"}, timestamp=WHEN),
        Event({"DestinationIp": "198.51.100.9"}, timestamp=WHEN),
        Event({"Hashes": f"SHA256={SHA256.upper()}"}, timestamp=WHEN),
        Event({"DestinationIp": "203.0.113.7"}, timestamp=datetime(2027, 1, 1, tzinfo=UTC)),
    ]

    def found(ix: IndicatorIndex) -> list[tuple[str, str]]:
        return sorted((d.rule_id, d.extra["indicator_value"]) for d in ix.match(events))

    assert found(again) == found(index)
    assert len(found(index)) >= 3


def test_every_kind_of_job_rebuilds_from_its_spec() -> None:
    records = indicator_records(_index())
    specs = {
        "rule": {"rule": RULE},
        "indicators": {"indicators": "203.0.113.7\n", "format": "list"},
        "reload": {"source": "reload", "count": len(records), "indicator_set": records},
        "rules-reload": {
            "source": "rules-reload",
            "rule_ids": ["3f1c2a8e-6d7b-4c11-9a55-0c2f1d9e7b10"],
            "texts": [["whoami.yml", RULE]],
        },
    }
    for name, spec in specs.items():
        assert can_rebuild(spec), name
        assert rebuild_detector(orjson.loads(orjson.dumps(spec))) is not None, name
    whoami = Event(
        {"Image": "C:\\Windows\\System32\\whoami.exe"},
        logsource=LogSource("windows", frozenset(), frozenset({"process_creation"})),
        timestamp=WHEN,
    )
    for name in ("rule", "rules-reload"):
        detector = rebuild_detector(specs[name])
        assert detector is not None
        assert [d.rule_title for d in detector.match([whoami])] == ["Whoami"], name
    # A reload job recorded without its set (too large to keep) cannot run elsewhere.
    too_large = {"source": "reload", "count": 10**6, "sample": []}
    assert not can_rebuild(too_large)
    assert rebuild_detector(too_large) is None


def test_the_callers_scope_survives_json() -> None:
    scope = Scope(
        Principal(kind="user", id=4, name="ana", unit_id=2, unit_name="hq", role=Role.ANALYST),
        frozenset({2, 5, 9}),
    )
    record = orjson.loads(orjson.dumps(caller_record(scope)))
    assert caller_scope(record) == scope
    assert caller_scope(None) is None
