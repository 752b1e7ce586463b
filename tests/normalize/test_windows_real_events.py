"""Classification of real Windows events: SigmaHQ regression events and EVTX attack samples.

For every SigmaHQ regression case, at least one of its events must land in the logsource of the
rule the case tests (otherwise the rule could never fire, whatever the engine does).
"""

from __future__ import annotations

import re
from collections import Counter
from pathlib import Path
from typing import Any

import pytest
import yaml

from datasets import dataset, datasets_root
from vedette.events import LogSource
from vedette.sources import ReadReport, read_events

CORPUS = ("rules", "rules-threat-hunting", "rules-emerging-threats", "rules-compliance")
_ID_LINE = re.compile(r"^id:\s*['\"]?([0-9a-fA-F-]{36})", re.MULTILINE)


def _cases() -> list[Path]:
    root = datasets_root() / "sigma" / "regression_data"
    return sorted(root.rglob("info.yml")) if root.exists() else []


def _case_id(info: Path) -> str:
    return info.parent.name


@pytest.fixture(scope="module")
def rule_paths() -> dict[str, Path]:
    """Rule id -> rule file over the corpus (a regex over the text: no YAML parse needed)."""
    root = dataset("sigma")
    paths: dict[str, Path] = {}
    for folder in CORPUS:
        for path in (root / folder).rglob("*.yml"):
            match = _ID_LINE.search(path.read_text(encoding="utf-8"))
            if match:
                paths[match.group(1).lower()] = path
    return paths


@pytest.mark.parametrize("info", _cases(), ids=_case_id)
def test_regression_events_reach_their_rule(info: Path, rule_paths: dict[str, Path]) -> None:
    case = yaml.safe_load(info.read_text(encoding="utf-8"))
    rule_id = str(case["rule_metadata"][0]["id"]).lower()
    rule = yaml.safe_load(rule_paths[rule_id].read_text(encoding="utf-8"))
    wanted = rule["logsource"]
    (events_file,) = info.parent.glob("*.json")
    logsources: Counter[LogSource] = Counter()
    for batch in read_events(events_file, report=ReadReport()):  # the JSON reader, sniffed
        logsources.update(event.logsource for event in batch)
    admitted = [
        ls
        for ls in logsources
        if ls.admits(wanted.get("product"), wanted.get("service"), wanted.get("category"))
    ]
    assert admitted, f"rule logsource {wanted} meets none of {dict(logsources)}"


@pytest.fixture(scope="module")
def attack_samples() -> list[dict[str, Any]]:
    """Every record of the EVTX attack samples as Vedette's EVTX reader gives it (its fields, and
    its logsource under ``_logsource``)."""
    root = dataset("evtx-attack-samples")
    events: list[dict[str, Any]] = []
    report = ReadReport()
    for path in sorted(root.rglob("*.evtx")):
        for batch in read_events(path, format="evtx", report=report):
            events.extend({**event.fields, "_logsource": event.logsource} for event in batch)
    assert len(events) > 8000
    assert not report.warnings
    return events


def test_every_attack_sample_event_is_windows(attack_samples: list[dict[str, Any]]) -> None:
    assert all(e["_logsource"].product == "windows" for e in attack_samples)


def test_every_sysmon_sample_event_has_a_category(attack_samples: list[dict[str, Any]]) -> None:
    sysmon = [e for e in attack_samples if "sysmon" in e["_logsource"].services]
    assert len(sysmon) > 1000
    uncategorised = Counter(e["EventID"] for e in sysmon if not e["_logsource"].categories)
    assert not uncategorised


def test_security_4688_samples_carry_sysmon_process_fields(
    attack_samples: list[dict[str, Any]],
) -> None:
    creations = [
        e for e in attack_samples if e.get("Channel") == "Security" and e["EventID"] == 4688
    ]
    assert creations
    for event in creations:
        assert event["_logsource"].admits("windows", "security", "process_creation")
        assert event["Image"] == event["NewProcessName"]
        assert "\\" in event["User"]


def test_powershell_samples(attack_samples: list[dict[str, Any]]) -> None:
    blocks = [
        e
        for e in attack_samples
        if e["EventID"] == 4104 and "powershell" in e["_logsource"].services
    ]
    assert blocks and all(e["_logsource"].categories == {"ps_script"} for e in blocks)
    assert all("ScriptBlockText" in e for e in blocks)


def test_every_known_channel_of_the_samples_is_classified(
    attack_samples: list[dict[str, Any]],
) -> None:
    unrouted = Counter(e.get("Channel") for e in attack_samples if not e["_logsource"].services)
    # Channels no SigmaHQ rule names (RDP core, WinRM, Winsock...) stay product-only; the ones
    # that rules use must never be in this list.
    used_by_rules = {"Security", "System", "Application", "Microsoft-Windows-Sysmon/Operational"}
    assert not used_by_rules & set(unrouted)


def test_regression_cases_are_collected() -> None:
    """Without the corpus the parametrised test above collects nothing and pytest only skips it;
    this fails under ``CI`` instead (through `dataset`) or when no case is found."""
    dataset("sigma", "regression_data")
    assert len(_cases()) >= 50
