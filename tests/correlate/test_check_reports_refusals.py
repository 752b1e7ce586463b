"""``rules check`` reports what a scan refuses: correlations in a cycle or naming themselves."""

from __future__ import annotations

from pathlib import Path

from vedette.correlate import Correlator
from vedette.detect import Engine

TEXT = """title: Failed logon
name: failed_logon
logsource: {product: windows, service: security}
detection: {selection: {EventID: 4625}, condition: selection}
---
title: Many failures
name: many_failures
correlation:
    type: event_count
    rules: [failed_logon]
    group-by: [TargetUserName]
    timespan: 1m
    condition: {gte: 3}
---
title: Myself
name: myself
correlation:
    type: event_count
    rules: [myself]
    timespan: 1m
    condition: {gte: 2}
---
title: Ping
name: ping
correlation:
    type: temporal
    rules: [pong, failed_logon]
    timespan: 1m
---
title: Pong
name: pong
correlation:
    type: temporal
    rules: [ping, failed_logon]
    timespan: 1m
---
title: Ranged myself
name: ranged
correlation:
    type: event_count
    rules: [ranged]
    timespan: 1m
    condition: {gte: 2, lte: 5}
"""


def test_load_report_lists_the_correlations_a_scan_refuses(tmp_path: Path) -> None:
    path = tmp_path / "rules.yml"
    path.write_text(TEXT)
    engine = Engine.from_paths([path])
    refused = {e.title: e for e in engine.load_report.errors}
    assert set(refused) == {"Myself", "Ping", "Pong", "Ranged myself"}
    assert all("cycle" in e.reason for e in refused.values())
    assert all(e.path == str(path) and e.line for e in refused.values())
    assert refused["Myself"].line == 15
    # what the scan builds from the engine has nothing more to refuse
    correlator = Correlator.from_engine(engine)
    assert correlator.load_errors == []
    assert [getattr(r, "title", None) for r in engine.correlation_rules] == ["Many failures"]
    assert engine.load_report.correlations == 1
