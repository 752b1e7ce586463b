"""Range conditions (``gt`` + ``lte``) through the real engine, which pySigma 2.0 refuses."""

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


def test_pysigma_alone_loses_the_whole_file() -> None:
    engine = Engine.from_yaml(TEXT)
    assert engine.rules == []
    assert "exactly one condition item" in engine.load_report.errors[0].reason


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
