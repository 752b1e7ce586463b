"""value_sum, value_avg, value_median, value_percentile at their edges."""

from __future__ import annotations

from corr_support import Factory, run

BASE = """
title: Outbound transfer
name: outbound
logsource: {category: network_connection}
detection: {selection: {Initiated: 'true'}, condition: selection}
---
"""


def metric(kind: str, condition: str, timespan: str = "1h") -> str:
    return (
        BASE
        + f"""title: Volume by host
name: volume
correlation:
    type: {kind}
    rules: [outbound]
    group-by: [Computer]
    timespan: {timespan}
    condition: {condition}
"""
    )


def transfers(make: Factory, sizes: list[object], step: float = 60) -> list:
    return [
        make.det("outbound", i * step, Computer="db1", SentBytes=size)
        for i, size in enumerate(sizes)
    ]


def test_value_sum_fires_when_the_sum_reaches_the_threshold(make: Factory) -> None:
    text = metric("value_sum", "{field: SentBytes, gte: 1000}")
    [alert] = run(make.correlator(text), transfers(make, [400, 300, 300, 900]))
    assert alert.extra["value"] == 1000
    assert alert.extra["event_count"] == 3


def test_value_sum_one_short_does_not_fire(make: Factory) -> None:
    text = metric("value_sum", "{field: SentBytes, gte: 1000}")
    assert run(make.correlator(text), transfers(make, [400, 300, 299])) == []


def test_value_sum_forgets_what_left_the_window(make: Factory) -> None:
    text = metric("value_sum", "{field: SentBytes, gte: 1000}", timespan="2m")
    # 600 at 0 s leaves the window before 500 at 180 s arrives
    assert run(make.correlator(text), transfers(make, [600, 0, 0, 500], step=60.0)) == []


def test_value_sum_reads_numeric_strings_and_warns_on_others(make: Factory) -> None:
    text = metric("value_sum", "{field: SentBytes, gt: 10}")
    correlator = make.correlator(text)
    [alert] = run(correlator, transfers(make, ["6", "n/a", "5.5"]))
    assert alert.extra["value"] == 11.5
    assert [(w.reason, w.count) for w in correlator.warnings] == [("non-numeric-value", 1)]


def test_value_avg_is_judged_on_the_complete_window(make: Factory) -> None:
    # The first transfer alone averages 5000, but the whole hour averages 1000.
    text = metric("value_avg", "{field: SentBytes, gt: 1500}")
    assert run(make.correlator(text), transfers(make, [5000, 0, 0, 0, 0])) == []


def test_value_avg_threshold_edges(make: Factory) -> None:
    at_edge = metric("value_avg", "{field: SentBytes, gte: 1000}")
    above = metric("value_avg", "{field: SentBytes, gt: 1000}")
    [alert] = run(make.correlator(at_edge), transfers(make, [500, 1500]))
    assert alert.extra["value"] == 1000
    assert run(make.correlator(above), transfers(make, [500, 1500])) == []


def test_value_avg_windows_are_separate_after_one_timespan(make: Factory) -> None:
    text = metric("value_avg", "{field: SentBytes, gte: 1000}", timespan="1m")
    # window [0, 60] holds 2000 and 0 (avg 1000); the event at 60.5 s opens a new window
    sizes = make.det("outbound", 0, Computer="db1", SentBytes=2000)
    second = make.det("outbound", 60, Computer="db1", SentBytes=0)
    third = make.det("outbound", 60.5, Computer="db1", SentBytes=10)
    fired = run(make.correlator(text), [sizes, second, third])
    assert [a.extra["value"] for a in fired] == [1000]
    assert fired[0].event is second.event


def test_value_median(make: Factory) -> None:
    text = metric("value_median", "{field: SentBytes, gte: 300}")
    [alert] = run(make.correlator(text), transfers(make, [100, 900, 300, 200, 400, 500]))
    assert alert.extra["value"] == 350
    assert run(make.correlator(text), transfers(make, [100, 900, 200])) == []


def test_value_percentile(make: Factory) -> None:
    text = metric("value_percentile", "{field: SentBytes, percentile: 90, gte: 910}")
    sizes = list(range(100, 1100, 100))  # 100 .. 1000: 90th percentile = 910
    [alert] = run(make.correlator(text), transfers(make, sizes, step=1))
    assert alert.extra["value"] == 910
    assert alert.extra["percentile"] == 90
    text_above = metric("value_percentile", "{field: SentBytes, percentile: 90, gt: 910}")
    assert run(make.correlator(text_above), transfers(make, sizes, step=1)) == []


def test_closing_window_is_judged_when_event_time_passes_its_end(make: Factory) -> None:
    text = metric("value_avg", "{field: SentBytes, gte: 100}", timespan="1m")
    correlator = make.correlator(text)
    assert correlator.process(transfers(make, [100, 300], step=10)) == []
    later = make.det("outbound", 3600, Computer="other", SentBytes=1)
    [alert] = correlator.process([later])
    assert alert.extra["group_by"] == {"Computer": "db1"}
    assert alert.extra["value"] == 200


def test_group_values_of_different_types_never_need_to_compare(make: Factory) -> None:
    # Two closing windows ending at the same time, one group keyed by an int, one by a str.
    text = metric("value_avg", "{field: SentBytes, gte: 0}", timespan="1m")
    detections = [
        make.det("outbound", 0, Computer=7, SentBytes=1),
        make.det("outbound", 0, Computer="db1", SentBytes=2),
        make.det("outbound", 120, Computer="other", SentBytes=3),
    ]
    fired = run(make.correlator(text), detections)
    assert sorted(str(a.extra["group_by"]["Computer"]) for a in fired) == ["7", "db1", "other"]
