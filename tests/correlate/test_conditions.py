"""Condition operators and ranges, each at its edge."""

from __future__ import annotations

import pytest
from corr_support import Factory, run

TEMPLATE = """
title: Failed logon
name: failed_logon
logsource: {product: windows, service: security}
detection: {selection: {EventID: 4625}, condition: selection}
---
title: Counted failures
name: counted
correlation:
    type: event_count
    rules: [failed_logon]
    group-by: [TargetUserName]
    timespan: 1m
    condition: CONDITION
"""


def count_alerts(make: Factory, condition: str, events: int) -> list[int]:
    correlator = make.correlator(TEMPLATE.replace("CONDITION", condition))
    detections = [make.det("failed_logon", i, TargetUserName="ann") for i in range(events)]
    return [alert.extra["value"] for alert in run(correlator, detections)]


@pytest.mark.parametrize(
    ("condition", "events", "expected"),
    [
        ("{gt: 3}", 3, []),
        ("{gt: 3}", 4, [4]),
        ("{gte: 3}", 2, []),
        ("{gte: 3}", 3, [3]),
        ("{lt: 3}", 3, []),
        ("{lt: 3}", 2, [2]),
        ("{lte: 3}", 4, []),
        ("{lte: 3}", 3, [3]),
        ("{eq: 3}", 2, []),
        ("{eq: 3}", 3, [3]),
        ("{eq: 3}", 4, []),
        ("{neq: 3}", 3, []),
        ("{neq: 3}", 4, [4]),
        ("{gt: 2, lte: 4}", 2, []),
        ("{gt: 2, lte: 4}", 3, [3]),
        ("{gt: 2, lte: 4}", 4, [4]),
        ("{gt: 2, lte: 4}", 5, []),
    ],
)
def test_operator_edges(make: Factory, condition: str, events: int, expected: list[int]) -> None:
    assert count_alerts(make, condition, events) == expected


def test_upper_bounds_wait_for_the_complete_window(make: Factory) -> None:
    # eq 3 must not fire on the way to 5: the window is judged when complete.
    assert count_alerts(make, "{eq: 3}", 5) == []
