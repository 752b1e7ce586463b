"""Summary counters: ATT&CK tallies (QA R2) and deterministic skip examples (QA R4)."""

from __future__ import annotations

from scanfakes import make_event

from vedette.errors import ReadWarning
from vedette.events import AttackRef, Detection
from vedette.scan.stats import ScanStats


def test_a_detection_counts_once_per_tactic_whatever_its_techniques() -> None:
    attack = (
        AttackRef("T1047", "WMI", ("execution",)),
        AttackRef("T1053.002", "At", ("execution", "persistence", "privilege-escalation")),
        AttackRef("T1569.002", "Service Execution", ("execution",)),
    )
    stats = ScanStats()
    for i in range(2):
        stats.observe(Detection("bzar", "BZAR", "medium", make_event("a", i), attack=attack))
    assert stats.detections == 2
    assert stats.by_tactic["execution"] == 2
    assert stats.by_tactic["persistence"] == 2
    assert stats.to_dict()["attack_tactics"]["execution"] == 2


def test_a_technique_listed_twice_counts_once() -> None:
    ref = AttackRef("T1003", "OS Credential Dumping", ("credential-access",))
    stats = ScanStats()
    stats.observe(Detection("d", "Dump", "high", make_event("a", 1), attack=(ref, ref)))
    assert stats.by_technique["T1003"] == 1
    assert stats.by_tactic["credential-access"] == 1


def test_skipped_examples_do_not_depend_on_worker_order() -> None:
    warnings = [
        ReadWarning(path=f"case/f{i:02}.json", reason="json-parse", line=i) for i in range(9)
    ]
    warnings.append(ReadWarning(path="case/a.pcap", reason="not-a-log"))
    warnings.append(ReadWarning(path="case/f00.json", reason="json-parse", line=0, offset=None))
    seen = []
    for order in (warnings, list(reversed(warnings)), warnings[4:] + warnings[:4]):
        stats = ScanStats()
        stats.add_warnings(order[:3])
        stats.add_skips({"json-parse": 5}, order[3:8])
        stats.add_warnings(order[8:])
        seen.append([str(w) for w in stats.skipped_examples])
    assert seen[0] == seen[1] == seen[2]
    assert seen[0][0] == "case/a.pcap: not-a-log" and len(seen[0]) == 5
    assert seen[0][1:] == ["case/f00.json:0: json-parse"] * 2 + [
        "case/f01.json:1: json-parse",
        "case/f02.json:2: json-parse",
    ]
