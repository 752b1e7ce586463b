"""Correlations over correlations: the specification's brute-force-then-success example."""

from __future__ import annotations

from datetime import timedelta

from corr_support import T0, Factory, run

# The specification's example, with the threshold lowered to 3 to keep the test short.
RULES = """
title: Correlation - Multiple Failed Logins Followed by Successful Login
id: b180ead8-d58f-40b2-ae54-c8940995b9b6
status: experimental
level: high
tags: [attack.credential-access, attack.t1110]
correlation:
    type: temporal_ordered
    rules:
        - multiple_failed_login
        - successful_login
    group-by:
        - User
    timespan: 10m
---
title: Multiple failed logons
id: a8418a5a-5fc4-46b5-b23b-6c73beb19d41
name: multiple_failed_login
correlation:
    type: event_count
    rules:
        - failed_login
    group-by:
        - User
    timespan: 10m
    condition:
        gte: 3
---
title: Single failed login
id: 53ba33fd-3a50-4468-a5ef-c583635cfa92
name: failed_login
logsource: {product: windows, service: security}
detection: {selection: {EventID: [529, 4625]}, condition: selection}
---
title: Successful login
id: 4d0a2c83-c62c-4ed4-b475-c7e23a9269b8
name: successful_login
logsource: {product: windows, service: security}
detection: {selection: {EventID: [528, 4624]}, condition: selection}
"""

FAILED = "53ba33fd-3a50-4468-a5ef-c583635cfa92"
SUCCESS = "4d0a2c83-c62c-4ed4-b475-c7e23a9269b8"


def test_failures_then_success_fires_the_outer_correlation_only(make: Factory) -> None:
    detections = [make.det(FAILED, t, User="ann") for t in (0, 10, 20)]
    detections.append(make.det(SUCCESS, 30, User="ann"))
    [alert] = run(make.correlator(RULES), detections)
    assert alert.rule_id == "b180ead8-d58f-40b2-ae54-c8940995b9b6"
    assert alert.level == "high"
    assert alert.extra["group_by"] == {"User": "ann"}
    assert alert.event.timestamp == T0 + timedelta(seconds=30)
    assert alert.matched == ("multiple_failed_login", "successful_login")
    assert [e["rule_id"] for e in alert.extra["events"]] == [
        "a8418a5a-5fc4-46b5-b23b-6c73beb19d41",
        SUCCESS,
    ]


def test_success_before_the_failures_does_not_fire(make: Factory) -> None:
    detections = [make.det(SUCCESS, 0, User="ann")]
    detections += [make.det(FAILED, t, User="ann") for t in (10, 20, 30)]
    assert run(make.correlator(RULES), detections) == []


def test_success_of_another_user_does_not_fire(make: Factory) -> None:
    detections = [make.det(FAILED, t, User="ann") for t in (0, 10, 20)]
    detections.append(make.det(SUCCESS, 30, User="bob"))
    assert run(make.correlator(RULES), detections) == []


def test_referenced_rules_and_the_inner_correlation_are_not_output(make: Factory) -> None:
    correlator = make.correlator(RULES)
    assert correlator.suppressed_rule_ids >= {FAILED, SUCCESS, "failed_login"}
    assert correlator.referenced_rule_ids == {FAILED, SUCCESS}
    detections = [make.det(FAILED, t, User="ann") for t in (0, 10, 20)]
    assert run(correlator, detections) == []  # the inner event_count fired, silently
    assert correlator.stats["fired"] == 1


def test_inner_correlation_is_output_when_the_outer_one_generates(make: Factory) -> None:
    text = RULES.replace("    timespan: 10m\n---", "    timespan: 10m\n    generate: true\n---", 1)
    correlator = make.correlator(text)
    detections = [make.det(FAILED, t, User="ann") for t in (0, 10, 20)]
    [inner] = run(correlator, detections)
    assert inner.rule_id == "a8418a5a-5fc4-46b5-b23b-6c73beb19d41"
    # the success rule is output (the outer generates); the failures stay behind the inner one
    assert correlator.suppressed_rule_ids == {FAILED, "failed_login"}


def test_cycles_are_load_errors(make: Factory) -> None:
    from vedette.correlate import Correlator, load_yaml_rules

    text = """
title: A
name: corr_a
correlation:
    {type: event_count, rules: [corr_b], group-by: [User], timespan: 1m, condition: {gte: 1}}
---
title: B
name: corr_b
correlation:
    {type: event_count, rules: [corr_a], group-by: [User], timespan: 1m, condition: {gte: 1}}
---
title: C
name: corr_c
correlation:
    {type: event_count, rules: [corr_a], group-by: [User], timespan: 1m, condition: {gte: 1}}
"""
    rules = load_yaml_rules(text)
    correlator = Correlator(rules.correlations, rules.base_rules)
    reasons = {error.title: error.reason for error in correlator.load_errors}
    assert "cycle" in reasons["A"] and "cycle" in reasons["B"]
    assert "could not be loaded" in reasons["C"]
    assert correlator.rules == []


def test_closing_inner_window_reaches_a_closing_outer_one_at_flush(make: Factory) -> None:
    # The outer rule comes first in the file; both judge complete windows (eq / lte).
    text = """
title: Outer, exactly one quiet burst per user
name: outer
correlation:
    type: event_count
    rules: [inner]
    group-by: [User]
    timespan: 1h
    condition: {eq: 1}
---
title: Inner, exactly three failures
name: inner
correlation:
    type: event_count
    rules: [failed_login]
    group-by: [User]
    timespan: 1m
    condition: {eq: 3}
---
title: Failed login
name: failed_login
logsource: {product: windows, service: security}
detection: {selection: {EventID: 4625}, condition: selection}
"""
    correlator = make.correlator(text)
    detections = [make.det("failed_login", t, User="ann") for t in (0, 10, 20)]
    [alert] = run(correlator, detections)
    assert alert.rule_id == "outer"
    assert alert.extra["value"] == 1
