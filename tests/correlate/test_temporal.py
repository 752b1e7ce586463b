"""temporal and temporal_ordered: all rules in the window; order; expressions."""

from __future__ import annotations

from datetime import timedelta

from corr_support import T0, Factory, run

BASE = """
title: Whoami
name: recon_whoami
logsource: {category: process_creation, product: windows}
detection: {selection: {Image|endswith: '\\whoami.exe'}, condition: selection}
---
title: Net user
name: recon_net_user
logsource: {category: process_creation, product: windows}
detection: {selection: {CommandLine|contains: 'net user'}, condition: selection}
---
title: Ipconfig
name: recon_ipconfig
logsource: {category: process_creation, product: windows}
detection: {selection: {Image|endswith: '\\ipconfig.exe'}, condition: selection}
"""

TEMPORAL = (
    BASE
    + """---
title: Reconnaissance burst
name: recon_burst
correlation:
    type: {kind}
    rules: [recon_whoami, recon_net_user, recon_ipconfig]
    group-by: [Computer, User]
    timespan: 5m
"""
)


def recon(make: Factory, steps: list[tuple[str, float]], user: str = "eve") -> list:
    return [make.det(rule, at, Computer="ws1", User=user) for rule, at in steps]


def correlator(make: Factory, kind: str):  # type: ignore[no-untyped-def]
    return make.correlator(TEMPORAL.replace("{kind}", kind))


def test_temporal_fires_when_every_rule_fired_in_any_order(make: Factory) -> None:
    steps = [("recon_ipconfig", 0), ("recon_whoami", 100), ("recon_net_user", 300)]
    [alert] = run(correlator(make, "temporal"), recon(make, steps))
    assert alert.extra["value"] == 3
    assert set(alert.matched) == {"recon_whoami", "recon_net_user", "recon_ipconfig"}


def test_temporal_needs_every_rule(make: Factory) -> None:
    steps = [("recon_ipconfig", 0), ("recon_whoami", 1), ("recon_whoami", 2)]
    assert run(correlator(make, "temporal"), recon(make, steps)) == []


def test_temporal_window_edge(make: Factory) -> None:
    inside = [("recon_ipconfig", 0), ("recon_whoami", 100), ("recon_net_user", 300)]
    outside = [("recon_ipconfig", 0), ("recon_whoami", 100), ("recon_net_user", 300.001)]
    assert len(run(correlator(make, "temporal"), recon(make, inside))) == 1
    assert run(correlator(make, "temporal"), recon(make, outside)) == []


def test_temporal_groups_by_every_group_by_field(make: Factory) -> None:
    detections = recon(make, [("recon_ipconfig", 0), ("recon_whoami", 1)], user="eve")
    detections += recon(make, [("recon_net_user", 2)], user="mallory")
    assert run(correlator(make, "temporal"), detections) == []


def test_temporal_ordered_fires_in_the_right_order(make: Factory) -> None:
    steps = [("recon_whoami", 0), ("recon_net_user", 10), ("recon_ipconfig", 20)]
    [alert] = run(correlator(make, "temporal_ordered"), recon(make, steps))
    assert alert.extra["value"] == 3


def test_temporal_ordered_does_not_fire_in_the_wrong_order(make: Factory) -> None:
    steps = [("recon_ipconfig", 0), ("recon_net_user", 10), ("recon_whoami", 20)]
    assert run(correlator(make, "temporal_ordered"), recon(make, steps)) == []


def test_temporal_ordered_finds_the_order_among_noise(make: Factory) -> None:
    steps = [
        ("recon_net_user", 0),
        ("recon_whoami", 5),
        ("recon_ipconfig", 6),
        ("recon_net_user", 7),
        ("recon_ipconfig", 8),
    ]
    [alert] = run(correlator(make, "temporal_ordered"), recon(make, steps))
    # whoami at 5 s, net user at 7 s, ipconfig at 8 s: the ipconfig at 6 s is too early
    assert alert.event.timestamp == T0 + timedelta(seconds=8)


def test_temporal_ordered_first_step_must_still_be_in_the_window(make: Factory) -> None:
    steps = [("recon_whoami", 0), ("recon_net_user", 200), ("recon_ipconfig", 300.5)]
    assert run(correlator(make, "temporal_ordered"), recon(make, steps)) == []


def test_temporal_condition_lowers_the_rule_count(make: Factory) -> None:
    text = TEMPORAL.replace("{kind}", "temporal") + "    condition: {gte: 2}\n"
    steps = [("recon_ipconfig", 0), ("recon_whoami", 100)]
    [alert] = run(make.correlator(text), recon(make, steps))
    assert alert.extra["value"] == 2


def test_temporal_expression_with_not_is_judged_on_the_complete_window(make: Factory) -> None:
    text = (
        BASE
        + """---
title: Whoami and ipconfig without net user
name: expr
correlation:
    type: temporal
    rules: [recon_whoami, recon_net_user, recon_ipconfig]
    group-by: [Computer]
    timespan: 5m
    condition: recon_whoami and recon_ipconfig and not recon_net_user
"""
    )
    quiet = recon(make, [("recon_whoami", 0), ("recon_ipconfig", 10)])
    noisy = recon(make, [("recon_whoami", 0), ("recon_ipconfig", 10), ("recon_net_user", 250)])
    [alert] = run(make.correlator(text), quiet)
    assert alert.extra["expression"].startswith("recon_whoami and")
    assert run(make.correlator(text), noisy) == []


def test_not_with_parentheses_waits_for_the_complete_window(make: Factory) -> None:
    text = (
        BASE
        + """---
title: Whoami and ipconfig without net user
name: expr
correlation:
    type: temporal
    rules: [recon_whoami, recon_net_user, recon_ipconfig]
    group-by: [Computer]
    timespan: 5m
    condition: recon_whoami and recon_ipconfig and not(recon_net_user)
"""
    )
    noisy = recon(make, [("recon_whoami", 0), ("recon_ipconfig", 10), ("recon_net_user", 250)])
    assert run(make.correlator(text), noisy) == []


def test_expression_condition_from_pysigma_objects(make: Factory) -> None:
    from sigma.collection import SigmaCollection

    from vedette.correlate import Correlator

    text = (
        BASE
        + """---
title: Whoami or ipconfig, then net user
name: expr
correlation:
    type: temporal
    group-by: [Computer]
    timespan: 5m
    condition: (recon_whoami or recon_ipconfig) and recon_net_user
"""
    )
    collection = SigmaCollection.from_yaml(text)
    correlator = Correlator([collection.rules[-1]], collection.rules[:-1])
    assert correlator.load_errors == []
    assert correlator.rules[0].rules == ("recon_whoami", "recon_ipconfig", "recon_net_user")
    fired = run(correlator, recon(make, [("recon_ipconfig", 0), ("recon_net_user", 30)]))
    assert [a.extra["value"] for a in fired] == [1]
    assert run(correlator, recon(make, [("recon_ipconfig", 400), ("recon_whoami", 401)])) == []
