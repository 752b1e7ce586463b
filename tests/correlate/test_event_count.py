"""event_count: threshold and window edges, firing once per burst, groups."""

from __future__ import annotations

from datetime import timedelta

from corr_support import T0, Factory, run

RULES = """
title: Failed logon
name: failed_logon
logsource: {product: windows, service: security}
detection: {selection: {EventID: 4625}, condition: selection}
---
title: Many failed logons for one user
id: 0e95725d-7320-415d-80f7-004da920fc11
name: many_failed
level: high
tags: [attack.credential-access, attack.t1110]
correlation:
    type: event_count
    rules: [failed_logon]
    group-by: [TargetUserName]
    timespan: 60s
    condition: {gte: 5}
"""


def burst(make: Factory, user: str, times: list[float]) -> list:
    return [make.det("failed_logon", t, TargetUserName=user) for t in times]


def test_fires_when_the_threshold_is_reached_not_before(make: Factory) -> None:
    fired = run(make.correlator(RULES), burst(make, "alice", [0, 10, 20, 30, 40]))
    assert len(fired) == 1
    alert = fired[0]
    assert alert.kind == "correlation"
    assert alert.rule_id == "0e95725d-7320-415d-80f7-004da920fc11"
    assert alert.level == "high"
    assert [ref.technique_id for ref in alert.attack] == ["T1110"]
    assert alert.extra["value"] == 5
    assert alert.extra["group_by"] == {"TargetUserName": "alice"}
    assert alert.event.timestamp == T0 + timedelta(seconds=40)
    assert len(alert.extra["events"]) == 5
    assert alert.extra["events"][0]["source"] == {"path": "test.log", "format": "jsonl", "line": 1}


def test_one_short_of_the_threshold_does_not_fire(make: Factory) -> None:
    assert run(make.correlator(RULES), burst(make, "alice", [0, 10, 20, 30])) == []


def test_event_exactly_one_timespan_apart_is_inside_the_window(make: Factory) -> None:
    fired = run(make.correlator(RULES), burst(make, "alice", [0, 15, 30, 45, 60]))
    assert len(fired) == 1
    assert fired[0].extra["first_seen"] == T0
    assert fired[0].extra["window_start"] == T0


def test_event_just_past_the_timespan_has_left_the_window(make: Factory) -> None:
    assert run(make.correlator(RULES), burst(make, "alice", [0, 15, 30, 45, 60.000001])) == []


def test_sliding_window_is_not_bound_to_clock_buckets(make: Factory) -> None:
    # Two events before a minute boundary and three after: a bucketed count sees 2 and 3.
    fired = run(make.correlator(RULES), burst(make, "alice", [50, 55, 61, 65, 70]))
    assert len(fired) == 1


def test_a_long_burst_gives_one_alert_per_timespan_not_one_per_event(make: Factory) -> None:
    times = [float(t) for t in range(0, 150, 2)]  # 75 failures over 150 s
    fired = run(make.correlator(RULES), burst(make, "alice", times))
    assert [alert.event.timestamp for alert in fired] == [
        T0 + timedelta(seconds=8),  # 5th failure
        T0 + timedelta(seconds=70),  # first event more than 60 s after the alert, 5 fresh
        T0 + timedelta(seconds=132),
    ]
    # no event is reported by two alerts of the same group
    reported = [e["timestamp"] for alert in fired for e in alert.extra["events"]]
    assert len(reported) == len(set(reported))


def test_groups_are_counted_separately(make: Factory) -> None:
    detections = burst(make, "alice", [0, 1, 2]) + burst(make, "bob", [3, 4, 5])
    detections += burst(make, "alice", [6, 7])
    detections.sort(key=lambda d: d.event.timestamp)
    fired = run(make.correlator(RULES), detections)
    assert [a.extra["group_by"] for a in fired] == [{"TargetUserName": "alice"}]


def test_many_groups_at_once(make: Factory) -> None:
    users = [f"user{i}" for i in range(300)]
    detections = [
        make.det("failed_logon", second + i / 1000, TargetUserName=user)
        for second in range(5)
        for i, user in enumerate(users)
    ]
    correlator = make.correlator(RULES)
    fired = run(correlator, detections)
    assert sorted(a.extra["group_by"]["TargetUserName"] for a in fired) == sorted(users)
    assert correlator.warnings == []


def test_event_without_the_group_field_is_counted_as_a_warning(make: Factory) -> None:
    correlator = make.correlator(RULES)
    fired = run(correlator, [make.det("failed_logon", t) for t in range(6)])
    assert fired == []
    [warning] = correlator.warnings
    assert (warning.reason, warning.count, warning.detail) == (
        "missing-group-field",
        6,
        "TargetUserName",
    )


def test_detections_of_other_rules_are_ignored(make: Factory) -> None:
    detections = [make.det("other_rule", t, TargetUserName="alice") for t in range(10)]
    assert run(make.correlator(RULES), detections) == []


def test_without_group_by_all_events_form_one_group(make: Factory) -> None:
    text = RULES.replace("    group-by: [TargetUserName]\n", "")
    detections = [make.det("failed_logon", t, TargetUserName=f"u{t}") for t in range(5)]
    fired = run(make.correlator(text), detections)
    assert len(fired) == 1
    assert fired[0].extra["group_by"] == {}


def test_groups_never_span_units(make: Factory) -> None:
    detections = burst(make, "admin", [0, 1, 2, 3, 4, 5])
    for position, detection in enumerate(detections):
        detection.event.unit = "unit-a" if position % 2 else "unit-b"
    assert run(make.correlator(RULES), detections) == []  # 3 + 3, never 5 in one unit
    more = burst(make, "admin", [0, 1, 2, 3, 4])
    for detection in more:
        detection.event.unit = "unit-a"
    [alert] = run(make.correlator(RULES), more)
    assert alert.event.unit == "unit-a"
    assert alert.extra["group_by"] == {"TargetUserName": "admin"}
