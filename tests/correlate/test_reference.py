"""The correlator against a naive reference implementation, on random streams (hypothesis).

The reference recomputes every window from scratch: for each detection in time order, the
events of its group in ``[t - timespan, t]``; it fires when the measure meets the threshold
and the group has not fired within the last timespan.
"""

from __future__ import annotations

from datetime import timedelta

from corr_support import T0, Factory, run
from hypothesis import given, settings
from hypothesis import strategies as st

RULES = """
title: Base
name: base
logsource: {product: test}
detection: {selection: {x: 1}, condition: selection}
---
title: Under test
name: under_test
correlation:
    type: TYPE
    rules: [base]
    group-by: [g]
    timespan: 30s
    condition: CONDITION
"""

stream = st.lists(
    st.tuples(
        st.integers(min_value=0, max_value=300),  # seconds
        st.sampled_from(["a", "b", "c"]),  # group
        st.sampled_from(["u1", "u2", "u3", "u4", "u5"]),  # value
    ),
    max_size=60,
).map(sorted)


def reference(events: list[tuple[int, str, str]], distinct: bool, threshold: int) -> list:
    fired: list[tuple[int, str]] = []
    last_fire: dict[str, int] = {}
    for position, (now, group, _value) in enumerate(events):
        if group in last_fire and now <= last_fire[group] + 30:
            continue
        window = [e for e in events[: position + 1] if e[1] == group and e[0] >= now - 30]
        measure = len({e[2] for e in window}) if distinct else len(window)
        if measure >= threshold:
            fired.append((now, group))
            last_fire[group] = now
    return fired


@settings(max_examples=100, deadline=None)
@given(events=stream, threshold=st.integers(min_value=1, max_value=6))
def test_event_count_matches_the_reference(events: list, threshold: int) -> None:
    make = Factory()
    text = RULES.replace("TYPE", "event_count").replace("CONDITION", f"{{gte: {threshold}}}")
    detections = [make.det("base", t, g=g, v=v) for t, g, v in events]
    fired = run(make.correlator(text), detections)
    got = [
        (int((a.event.timestamp - T0) / timedelta(seconds=1)), a.extra["group_by"]["g"])
        for a in fired
    ]
    assert got == reference(events, distinct=False, threshold=threshold)


@settings(max_examples=100, deadline=None)
@given(events=stream, threshold=st.integers(min_value=1, max_value=5))
def test_value_count_matches_the_reference(events: list, threshold: int) -> None:
    make = Factory()
    condition = f"{{field: v, gte: {threshold}}}"
    text = RULES.replace("TYPE", "value_count").replace("CONDITION", condition)
    detections = [make.det("base", t, g=g, v=v) for t, g, v in events]
    fired = run(make.correlator(text), detections)
    got = [
        (int((a.event.timestamp - T0) / timedelta(seconds=1)), a.extra["group_by"]["g"])
        for a in fired
    ]
    assert got == reference(events, distinct=True, threshold=threshold)


json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=5),
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=3), inner),
    max_leaves=6,
)

KINDS = [
    ("event_count", "{gte: 2}"),
    ("value_count", "{field: v, gte: 2}"),
    ("value_sum", "{field: v, gte: 2}"),
    ("value_avg", "{field: v, lte: 2}"),
    ("value_median", "{field: v, neq: 2}"),
    ("value_percentile", "{field: v, percentile: 90, gt: 2}"),
    ("temporal", "{gte: 1}"),
    ("temporal_ordered", "{gte: 1}"),
]


@settings(max_examples=60, deadline=None)
@given(
    events=st.lists(
        st.tuples(st.integers(min_value=0, max_value=120), json_values, json_values), max_size=25
    ),
    kind=st.sampled_from(KINDS),
)
def test_any_field_values_never_raise(events: list, kind: tuple[str, str]) -> None:
    make = Factory()
    text = RULES.replace("TYPE", kind[0]).replace("CONDITION", kind[1])
    detections = [make.det("base", t, g=g, v=v) for t, g, v in sorted(events, key=lambda e: e[0])]
    correlator = make.correlator(text)
    for alert in run(correlator, detections):
        assert alert.kind == "correlation"
    assert all(w.count > 0 for w in correlator.warnings)


def closing_reference(events: list[tuple[int, str, str]], threshold: int) -> list:
    """Windows open at a group's first event, cover [start, start + 30], judged when complete."""
    fired: list[tuple[int, str]] = []
    by_group: dict[str, list[int]] = {}
    for now, group, _value in events:
        by_group.setdefault(group, []).append(now)
    for group, times in by_group.items():
        position = 0
        while position < len(times):
            start = times[position]
            window = [t for t in times[position:] if t <= start + 30]
            if len(window) == threshold:
                fired.append((window[-1], group))
            position += len(window)
    return sorted(fired)


@settings(max_examples=100, deadline=None)
@given(events=stream, threshold=st.integers(min_value=1, max_value=4))
def test_closing_event_count_matches_the_reference(events: list, threshold: int) -> None:
    make = Factory()
    text = RULES.replace("TYPE", "event_count").replace("CONDITION", f"{{eq: {threshold}}}")
    detections = [make.det("base", t, g=g, v=v) for t, g, v in events]
    fired = run(make.correlator(text), detections)
    got = sorted(
        (int((a.event.timestamp - T0) / timedelta(seconds=1)), a.extra["group_by"]["g"])
        for a in fired
    )
    assert got == closing_reference(events, threshold)


ORDERED = """
title: A
name: step_a
logsource: {product: test}
detection: {selection: {x: 1}, condition: selection}
---
title: B
name: step_b
logsource: {product: test}
detection: {selection: {x: 2}, condition: selection}
---
title: C
name: step_c
logsource: {product: test}
detection: {selection: {x: 3}, condition: selection}
---
title: A then B then C
name: ordered
correlation:
    type: temporal_ordered
    rules: [step_a, step_b, step_c]
    group-by: [g]
    timespan: 30s
"""

steps = st.lists(
    st.tuples(
        st.integers(min_value=0, max_value=200),
        st.sampled_from(["a", "b"]),
        st.sampled_from(["step_a", "step_b", "step_c"]),
    ),
    max_size=40,
).map(lambda items: sorted(items, key=lambda item: item[0]))


def ordered_reference(events: list[tuple[int, str, str]]) -> list:
    fired: list[tuple[int, str]] = []
    last_fire: dict[str, int] = {}
    for position, (now, group, _rule) in enumerate(events):
        if group in last_fire and now <= last_fire[group] + 30:
            continue
        window = [e[2] for e in events[: position + 1] if e[1] == group and e[0] >= now - 30]
        wanted = ["step_a", "step_b", "step_c"]
        for rule in window:  # is a, b, c a subsequence of the window?
            if wanted and rule == wanted[0]:
                wanted.pop(0)
        if not wanted:
            fired.append((now, group))
            last_fire[group] = now
    return fired


@settings(max_examples=100, deadline=None)
@given(events=steps)
def test_temporal_ordered_matches_the_reference(events: list) -> None:
    make = Factory()
    detections = [make.det(rule, t, g=g) for t, g, rule in events]
    fired = run(make.correlator(ORDERED), detections)
    got = [
        (int((a.event.timestamp - T0) / timedelta(seconds=1)), a.extra["group_by"]["g"])
        for a in fired
    ]
    assert got == ordered_reference(events)
