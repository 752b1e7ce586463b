"""The ATT&CK knowledge base: bundled table, names, tactics, revoked ids, enrichment."""

from __future__ import annotations

import gzip
import json
from pathlib import Path

import pytest

from datasets import dataset
from vedette.events import AttackRef, Detection, Event
from vedette.intel.attack import AttackKB, technique_ids_from_tags
from vedette.intel.attack_table import (
    DESCRIPTION_CHARS,
    MITRE_NOTICE,
    read_json_file,
    short_description,
    table_from_stix,
)


@pytest.fixture(scope="module")
def kb() -> AttackKB:
    return AttackKB.load()


@pytest.mark.parametrize(
    ("tid", "name", "tactics"),
    [
        ("T1059.001", "PowerShell", ("execution",)),
        ("T1003.001", "LSASS Memory", ("credential-access",)),
        ("T1059", "Command and Scripting Interpreter", ("execution",)),
        ("T1566.001", "Spearphishing Attachment", ("initial-access",)),
        ("T1071.004", "DNS", ("command-and-control",)),
        ("T1486", "Data Encrypted for Impact", ("impact",)),
        (
            "T1078",
            "Valid Accounts",
            ("initial-access", "persistence", "privilege-escalation", "defense-evasion"),
        ),
    ],
)
def test_known_techniques(kb: AttackKB, tid: str, name: str, tactics: tuple[str, ...]) -> None:
    ref = kb.ref(tid.lower())
    assert ref.technique_id == tid
    assert ref.name == name
    assert set(ref.tactics) == set(tactics)


def test_tactics_in_matrix_order(kb: AttackKB) -> None:
    names = [t.shortname for t in kb.tactics]
    assert names[0] == "reconnaissance" and names[-1] == "impact"
    assert len(names) == 14
    assert kb.tactic("attack.command_and_control") == kb.tactic("TA0011")


def test_revoked_technique_resolves_to_successor(kb: AttackKB) -> None:
    old = kb.technique("T1066", follow_revoked=False)
    assert old is not None and old.revoked and old.revoked_by == "T1027.005"
    assert kb.ref("T1066").technique_id == "T1027.005"


def test_groups_and_software(kb: AttackKB) -> None:
    apt29 = kb.group_by_name("cozy bear")
    assert apt29 is not None and apt29.id == "G0016"
    assert "T1059.001" in apt29.techniques
    assert kb.software["S0002"].name == "Mimikatz"
    assert "T1003.001" in kb.software["S0002"].techniques


def test_enrich_fills_names_and_tactics_from_refs_and_tags(kb: AttackKB) -> None:
    detection = Detection(
        rule_id="r",
        rule_title="t",
        level="high",
        event=Event({}),
        tags=("attack.execution", "attack.t1059.001", "attack.defense_evasion"),
        attack=(AttackRef("T1003.001"),),
    )
    kb.enrich([detection])
    assert [(a.technique_id, a.name) for a in detection.attack] == [
        ("T1003.001", "LSASS Memory"),
        ("T1059.001", "PowerShell"),
    ]
    assert detection.extra["attack_tactics"] == [
        "execution",
        "defense-evasion",
        "credential-access",
    ]


def test_technique_ids_from_tags() -> None:
    tags = ["attack.t1059.001", "attack.T1003", "attack.g0016", "attack.execution", "cve.2021"]
    assert technique_ids_from_tags(tags) == ["T1059.001", "T1003"]


def test_bundled_table_carries_mitre_notice_and_matches_the_stix_bundle() -> None:
    bundled = (
        Path(__file__).resolve().parents[2] / "src/vedette/intel/data/attack-enterprise.json.gz"
    )
    with gzip.open(bundled) as handle:
        table = json.loads(handle.read())
    assert table["notice"] == MITRE_NOTICE and "MITRE" in table["license"]
    assert bundled.stat().st_size < 300_000
    source = dataset("mitre-attack", "enterprise-attack-v18.1-from-mitre-cti.json.gz")
    rebuilt = table_from_stix(read_json_file(source), version=table["attack_version"])
    assert rebuilt == table, "bundled table is stale: run scripts/build_attack_table.py"


def test_load_from_a_stix_bundle() -> None:
    path = dataset("mitre-attack", "enterprise-attack-v18.1-techniques-tactics.json")
    kb = AttackKB.load(path)
    assert kb.ref("T1059.001").name == "PowerShell"
    assert not kb.groups  # the subset has no intrusion sets


def test_techniques_carry_the_first_paragraph_of_their_description(kb: AttackKB) -> None:
    lsass = kb.technique("T1003.001")
    assert lsass is not None
    assert lsass.description.startswith(
        "Adversaries may attempt to access credential material stored in the process memory"
    ), lsass.description
    parent = kb.technique("T1059")
    assert parent is not None and parent.description.startswith("Adversaries may abuse")
    current = list(kb.current_techniques())
    described = [t for t in current if t.description]
    assert len(described) == len(current) > 600  # techniques and sub-techniques alike
    for technique in described:
        text = technique.description
        assert "(Citation:" not in text and "](" not in text and "<code>" not in text, text
        assert "\n" not in text and len(text) <= DESCRIPTION_CHARS, (technique.id, text)


def test_short_description_strips_citations_links_and_markup() -> None:
    text = (
        "Adversaries may use [Mimikatz](https://attack.mitre.org/software/S0002) to read "
        "<code>lsass.exe</code> memory.(Citation: Some Report (2019)) (Citation: Other)\n\n"
        "A second paragraph that is left out."
    )
    assert short_description(text) == ("Adversaries may use Mimikatz to read lsass.exe memory.")
    long = "Word " * 200
    cut = short_description(long, limit=50)
    assert len(cut) <= 50 and cut.endswith("…") and cut.startswith("Word Word")
    sentences = "First sentence is here. " * 20
    assert short_description(sentences, limit=60) == (
        "First sentence is here. First sentence is here."
    )
