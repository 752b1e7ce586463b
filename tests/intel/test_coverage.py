"""ATT&CK coverage of rule sets, Navigator layers, group ranking."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from vedette.detect import Engine
from vedette.intel.attack import AttackKB, technique_ids_from_tags
from vedette.intel.coverage import rank_groups, rule_coverage, techniques_from_result
from vedette.intel.navigator import layer_scores, navigator_layer

OTHER_RULES = """
title: LSASS dump with comsvcs
id: 22222222-2222-2222-2222-222222222222
status: test
level: critical
tags: [attack.credential-access, attack.t1003.001]
logsource: {product: windows, category: process_creation}
detection:
  selection: {CommandLine|contains: 'MiniDump'}
  condition: selection
---
title: Valid account logon from odd place
id: 33333333-3333-3333-3333-333333333333
status: test
level: medium
tags: [attack.persistence, attack.t1078]
logsource: {product: windows, service: security}
detection:
  selection: {EventID: 4624}
  condition: selection
---
title: No ATT&CK tag
id: 44444444-4444-4444-4444-444444444444
status: test
level: low
logsource: {product: windows, service: security}
detection:
  selection: {EventID: 4625}
  condition: selection
"""


@pytest.fixture(scope="module")
def kb() -> AttackKB:
    return AttackKB.load()


def test_inline_rule_set_coverage_per_tactic(kb: AttackKB, powershell_rule: str) -> None:
    text = powershell_rule + "---\n" + OTHER_RULES
    rules = Engine.from_yaml(text, scanner="none").rules
    coverage = rule_coverage(rules, kb)
    assert coverage.rules_total == 4
    assert coverage.rules_without_attack == 1
    assert coverage.scores() == {"T1059.001": 1, "T1003.001": 1, "T1078": 1}
    by_tactic = {t.shortname: t for t in coverage.by_tactic}
    assert by_tactic["execution"].techniques == {"T1059.001"}
    assert by_tactic["execution"].parents_covered == {"T1059"}
    assert by_tactic["credential-access"].rules == {"22222222-2222-2222-2222-222222222222"}
    # T1078 spans four tactics; the rule's tactic tag narrows it to persistence
    assert by_tactic["persistence"].techniques == {"T1078"}
    assert "T1078" not in by_tactic["initial-access"].techniques
    assert 0 < by_tactic["execution"].percent < 100
    assert coverage.by_tactic[0].shortname == "reconnaissance"


def test_starter_pack_coverage_matches_its_tags(kb: AttackKB) -> None:
    from vedette.rulepacks import starter_pack_dir

    engine = Engine.from_paths([starter_pack_dir()], scanner="none")
    coverage = rule_coverage(engine.rules, kb)
    tagged = {
        kb.ref(tid).technique_id
        for rule in engine.rules
        for tid in technique_ids_from_tags(rule.tags)
    }
    assert coverage.rules_total == len(engine.rules) > 0
    assert set(coverage.scores()) == tagged - set(coverage.unknown_techniques)
    assert sum(coverage.scores().values()) >= len(tagged)


def test_navigator_layer_format(kb: AttackKB) -> None:
    layer = navigator_layer({"T1059.001": 3, "t1003.001": 1, "T1066": 2, "T1082": 0},
                            name="x", comments={"T1059.001": "3 rules"}, kb=kb)  # fmt: skip
    assert layer["versions"]["layer"] == "4.5"
    assert layer["domain"] == "enterprise-attack"
    entries = {t["techniqueID"]: t for t in layer["techniques"]}
    assert entries["T1059.001"]["score"] == 3 and entries["T1059.001"]["comment"] == "3 rules"
    assert entries["T1059"]["showSubtechniques"] and "score" not in entries["T1059"]
    assert "T1066" not in entries and entries["T1027.005"]["score"] == 2  # revoked -> successor
    assert "T1082" not in entries
    assert layer["gradient"]["maxValue"] == 3
    json.dumps(layer)
    assert layer_scores(layer) == {"T1059.001": 3, "T1003.001": 1, "T1027.005": 2}


def test_groups_ranked_by_overlap(kb: AttackKB) -> None:
    apt29 = kb.groups["G0016"]
    observed = sorted(apt29.techniques)[:25]
    ranking = rank_groups(observed, kb, top=5)
    assert ranking[0].group.id == "G0016"
    assert ranking[0].score > ranking[1].score
    assert all(0 < m.score <= 1 for m in ranking)
    assert len(ranking[0].shared) == 25
    assert rank_groups([], kb) == []


def test_techniques_from_jsonl_result_and_layer(tmp_path: Path, kb: AttackKB) -> None:
    result = tmp_path / "result.jsonl"
    lines = [
        {"rule_id": "a", "attack": [{"id": "T1059.001", "name": "PowerShell", "tactics": []}]},
        {"rule_id": "b", "attack": [{"id": "T1059.001"}, {"id": "T1003.001"}]},
        {"rule_id": "c", "attack": ["T1078"], "tags": ["attack.t1021.002"]},
    ]
    result.write_text("\n".join(json.dumps(x) for x in lines) + "\n\n")
    assert techniques_from_result(result) == {
        "T1059.001": 2, "T1003.001": 1, "T1078": 1, "T1021.002": 1,
    }  # fmt: skip
    layer = tmp_path / "layer.json"
    layer.write_text(json.dumps(navigator_layer({"T1059.001": 2}, name="x", kb=kb)))
    assert techniques_from_result(layer) == {"T1059.001": 2}
