"""Summary counters: ATT&CK tactics and techniques count each detection once (QA R2)."""

from __future__ import annotations

from scanfakes import make_event

from vedette.events import AttackRef, Detection
from vedette.pipeline.stats import ScanStats


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
