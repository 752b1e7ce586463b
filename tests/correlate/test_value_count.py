"""value_count: distinct values at the threshold and window edges (password spraying)."""

from __future__ import annotations

from corr_support import Factory, run

RULES = """
title: Failed logon
name: failed_logon
logsource: {product: windows, service: security}
detection: {selection: {EventID: 4625}, condition: selection}
---
title: Password spraying from one source
name: spraying
correlation:
    type: value_count
    rules: failed_logon
    group-by: [IpAddress]
    timespan: 10m
    condition:
        field: TargetUserName
        gte: 4
"""


def test_distinct_values_reach_the_threshold(make: Factory) -> None:
    detections = [
        make.det("failed_logon", i * 10, IpAddress="10.0.0.9", TargetUserName=user)
        for i, user in enumerate(["ann", "bob", "cid", "dan"])
    ]
    [alert] = run(make.correlator(RULES), detections)
    assert alert.extra["value"] == 4
    assert alert.extra["field"] == ["TargetUserName"]
    assert alert.extra["group_by"] == {"IpAddress": "10.0.0.9"}


def test_repeated_values_do_not_count_twice(make: Factory) -> None:
    users = ["ann", "bob", "ann", "cid", "bob", "ann", "cid"]
    detections = [
        make.det("failed_logon", i, IpAddress="10.0.0.9", TargetUserName=user)
        for i, user in enumerate(users)
    ]
    assert run(make.correlator(RULES), detections) == []


def test_value_leaving_the_window_no_longer_counts(make: Factory) -> None:
    # ann at 0 s, the others at 600.5 s and later: ann has left the 10-minute window.
    detections = [make.det("failed_logon", 0, IpAddress="h", TargetUserName="ann")]
    detections += [
        make.det("failed_logon", 600.5 + i, IpAddress="h", TargetUserName=user)
        for i, user in enumerate(["bob", "cid", "dan"])
    ]
    assert run(make.correlator(RULES), detections) == []


def test_value_exactly_one_timespan_old_still_counts(make: Factory) -> None:
    detections = [make.det("failed_logon", 0, IpAddress="h", TargetUserName="ann")]
    detections += [
        make.det("failed_logon", 598 + i, IpAddress="h", TargetUserName=user)
        for i, user in enumerate(["bob", "cid", "dan"])
    ]
    [alert] = run(make.correlator(RULES), detections)
    assert alert.extra["value"] == 4


def test_several_fields_count_distinct_combinations(make: Factory) -> None:
    text = RULES.replace("field: TargetUserName", "field: [TargetUserName, WorkstationName]")
    pairs = [("ann", "w1"), ("ann", "w2"), ("bob", "w1"), ("bob", "w2")]
    detections = [
        make.det("failed_logon", i, IpAddress="h", TargetUserName=u, WorkstationName=w)
        for i, (u, w) in enumerate(pairs)
    ]
    [alert] = run(make.correlator(text), detections)
    assert alert.extra["value"] == 4


def test_missing_value_field_is_a_counted_warning(make: Factory) -> None:
    correlator = make.correlator(RULES)
    run(correlator, [make.det("failed_logon", i, IpAddress="h") for i in range(3)])
    assert [(w.reason, w.count) for w in correlator.warnings] == [("missing-value-field", 3)]
