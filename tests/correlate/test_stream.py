"""The streaming path: out-of-order arrival, late events, the group cap, flush."""

from __future__ import annotations

from datetime import timedelta

from corr_support import Factory, run

RULES = """
title: Failed logon
name: failed_logon
logsource: {product: windows, service: security}
detection: {selection: {EventID: 4625}, condition: selection}
---
title: Burst
name: burst
correlation:
    type: event_count
    rules: [failed_logon]
    group-by: [TargetUserName]
    timespan: 60s
    condition: {gte: 3}
"""


def test_out_of_order_within_the_tolerance_still_counts(make: Factory) -> None:
    correlator = make.correlator(RULES, out_of_order_tolerance=timedelta(seconds=30))
    # arrival order 0, 50, 20, 75: the event at 20 s is 30 s behind the watermark.
    order = [0, 50, 20, 75]
    fired = run(correlator, [make.det("failed_logon", t, TargetUserName="ann") for t in order])
    assert [a.extra["value"] for a in fired] == [3]
    assert correlator.warnings == []


def test_tolerance_reorders_so_the_window_is_exact(make: Factory) -> None:
    # In arrival order the window would hold 0, 70, 10; in time order 0,10 then 70 alone.
    correlator = make.correlator(RULES, out_of_order_tolerance=timedelta(seconds=120))
    order = [0, 70, 10, 75]
    detections = [make.det("failed_logon", t, TargetUserName="ann") for t in order]
    assert run(correlator, detections) == []


def test_late_event_beyond_the_tolerance_is_a_counted_warning(make: Factory) -> None:
    correlator = make.correlator(RULES, out_of_order_tolerance=timedelta(seconds=10))
    order = [0, 50, 20, 65]  # 20 s arrives 30 s behind: late (it would have made 3)
    fired = run(correlator, [make.det("failed_logon", t, TargetUserName="ann") for t in order])
    assert fired == []
    assert [(w.reason, w.count) for w in correlator.warnings] == [("late-event", 1)]


def test_without_tolerance_time_order_is_expected(make: Factory) -> None:
    correlator = make.correlator(RULES)
    order = [0, 10, 5, 20]
    fired = run(correlator, [make.det("failed_logon", t, TargetUserName="ann") for t in order])
    assert [a.extra["value"] for a in fired] == [3]
    assert [(w.reason, w.count) for w in correlator.warnings] == [("late-event", 1)]


def test_undated_detections_are_counted(make: Factory) -> None:
    correlator = make.correlator(RULES)
    detection = make.det("failed_logon", 0, TargetUserName="ann")
    detection.event.timestamp = None
    assert run(correlator, [detection]) == []
    assert [(w.reason, w.count) for w in correlator.warnings] == [("undated-event", 1)]


def test_group_cap_evicts_the_oldest_group_with_a_warning(make: Factory) -> None:
    correlator = make.correlator(RULES, max_groups=2)
    detections = [
        make.det("failed_logon", 0, TargetUserName="ann"),
        make.det("failed_logon", 1, TargetUserName="bob"),
        make.det("failed_logon", 2, TargetUserName="cid"),  # evicts ann
        make.det("failed_logon", 3, TargetUserName="ann"),  # evicts bob, ann starts over
        make.det("failed_logon", 4, TargetUserName="ann"),
    ]
    fired = run(correlator, detections)
    assert fired == []  # ann's first failure was lost with its group: 2 < 3
    assert [(w.reason, w.count) for w in correlator.warnings] == [("group-cap", 2)]
    assert correlator.live_groups == 0  # flushed


def test_state_is_bounded_by_the_window(make: Factory) -> None:
    correlator = make.correlator(RULES)
    for i in range(1000):
        correlator.process([make.det("failed_logon", i * 10, TargetUserName=f"user{i}")])
        assert correlator.live_groups <= 7  # users seen in the last 60 s (plus the new one)


def test_batches_and_single_calls_give_the_same_result(make: Factory) -> None:
    detections = [make.det("failed_logon", t / 3, TargetUserName=f"u{t % 7}") for t in range(600)]
    single = make.correlator(RULES)
    one_by_one = run(single, detections)
    batched = make.correlator(RULES)
    in_batches = batched.process(detections[:250]) + batched.process(detections[250:])
    in_batches += batched.flush()

    def key(alerts: list) -> list:
        return [(a.extra["group_by"], a.event.timestamp) for a in alerts]

    assert key(one_by_one) == key(in_batches)
    assert len(one_by_one) > 7


def test_advance_judges_closing_windows_in_a_quiet_stream(make: Factory) -> None:
    text = RULES.replace("condition: {gte: 3}", "condition: {lte: 2}")
    correlator = make.correlator(text)
    first = make.det("failed_logon", 0, TargetUserName="ann")
    assert correlator.process([first]) == []
    assert correlator.advance(first.event.timestamp + timedelta(seconds=60)) == []  # window end
    [alert] = correlator.advance(first.event.timestamp + timedelta(seconds=61))
    assert alert.extra["value"] == 1
    assert correlator.live_groups == 0
