"""Range conditions (``gt`` + ``lte``) through the real engine (pySigma 2.0 alone refuses them)."""

from __future__ import annotations

from corr_support import Factory, run

from vedette.correlate import Correlator
from vedette.correlate.ranges import split_range_correlations
from vedette.detect import Engine
from vedette.events import Event, LogSource

TEXT = """title: Failed logon
name: failed_logon
logsource: {product: windows, service: security}
detection: {selection: {EventID: 4625}, condition: selection}
---
title: Between three and four failures
name: few_failures
correlation:
    type: event_count
    rules: [failed_logon]
    group-by: [TargetUserName]
    timespan: 1m
    condition:
        gte: 3
        lte: 4
---
title: Broken range
correlation:
    type: event_count
    rules: [failed_logon]
    timespan: never
    condition: {gt: 1, lt: 3}
"""


def test_engine_loads_range_correlations_beside_the_other_rules() -> None:
    engine = Engine.from_yaml(TEXT)
    assert [rule.name for rule in engine.rules] == ["failed_logon"]
    titles = [getattr(rule, "title", None) for rule in engine.correlation_rules]
    assert titles == ["Between three and four failures"]
    [error] = engine.load_report.errors
    assert error.line == 17 and "timespan" in error.reason


def test_range_correlation_through_from_engine(make: Factory) -> None:
    engine = Engine.from_yaml(TEXT)
    correlator = Correlator.from_engine(engine)
    assert correlator.load_errors == []
    base = make.det("x", 0)
    events = [
        Event(
            {"EventID": 4625, "TargetUserName": "ann"},
            logsource=LogSource("windows", frozenset({"security"})),
            timestamp=base.event.timestamp,
        )
        for _ in range(4)
    ]
    assert [a.extra["value"] for a in run(correlator, engine.match(events))] == [4]


def test_split_keeps_line_numbers_and_the_other_rules() -> None:
    split = split_range_correlations(TEXT, path="rules.yml")
    assert split.text.count("\n") == TEXT.count("\n")
    assert [(spec.title, spec.line, spec.path) for spec in split.specs] == [
        ("Between three and four failures", 6, "rules.yml")
    ]
    assert split.specs[0].threshold.to_dict() == {"gte": 3, "lte": 4}
    [(line, reason)] = split.errors
    assert line == 17 and "timespan" in reason
    engine = Engine.from_yaml(split.text)
    assert engine.load_report.errors == []
    assert [rule.name for rule in engine.rules] == ["failed_logon"]


def test_range_correlation_runs_on_engine_detections(make: Factory) -> None:
    split = split_range_correlations(TEXT)
    engine = Engine.from_yaml(split.text)
    correlator = Correlator([*engine.correlation_rules, *split.specs], engine.rules)
    assert correlator.load_errors == []

    def failures(user: str, count: int) -> list:
        base = make.det("x", 0)
        events = [
            Event(
                {"EventID": 4625, "TargetUserName": user},
                logsource=LogSource("windows", frozenset({"security"})),
                timestamp=base.event.timestamp,
            )
            for _ in range(count)
        ]
        return engine.match(events)

    assert [a.extra["value"] for a in run(correlator, failures("ann", 4))] == [4]
    assert run(correlator, failures("bob", 5)) == []
    assert run(correlator, failures("cid", 2)) == []
