"""The bundled starter pack: every rule loads, is well described, and fires exactly where it should.

Each rule ``starter/<stem>.yml`` has a case file ``cases/<stem>.yml`` with the event logsource,
one ``match`` event the rule must fire on and one ``miss`` event (a close miss) it must not.
Corpus-wide checks collect every problem and fail once with the full list.
"""

from __future__ import annotations

import re
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from functools import cache
from pathlib import Path
from typing import Any

import pytest
import yaml

from vedette.detect import Engine
from vedette.events import Event, LogSource
from vedette.rulepacks import starter_pack_dir

CASES = Path(__file__).resolve().parent / "cases"
LEVELS = {"informational", "low", "medium", "high", "critical"}
STATUSES = {"stable", "test", "experimental"}
TECHNIQUE = re.compile(r"^attack\.t\d{4}(\.\d{3})?$")
TACTICS = {
    "reconnaissance", "resource-development", "initial-access", "execution", "persistence",
    "privilege-escalation", "defense-evasion", "credential-access", "discovery",
    "lateral-movement", "collection", "command-and-control", "exfiltration", "impact",
}  # fmt: skip


def rule_files() -> list[Path]:
    return sorted(starter_pack_dir().glob("*.yml"))


def documents(path: Path) -> list[dict[str, Any]]:
    return [d for d in yaml.safe_load_all(path.read_text("utf-8")) if d]


@cache
def starter_engine() -> Engine:
    return Engine.from_paths([starter_pack_dir()])


@dataclass(frozen=True)
class Case:
    stem: str
    rule_id: str
    logsource: LogSource
    match: tuple[dict[str, Any], ...]
    miss: tuple[dict[str, Any], ...]


def _events(value: Any) -> tuple[dict[str, Any], ...]:
    return tuple(value) if isinstance(value, list) else (value,)


def load_cases() -> Iterator[Case]:
    for path in sorted(CASES.glob("*.yml")):
        data = yaml.safe_load(path.read_text("utf-8"))
        rule = documents(starter_pack_dir() / path.name)[0]
        source = data["logsource"]
        yield Case(
            stem=path.stem,
            rule_id=str(rule["id"]),
            logsource=LogSource(
                product=source.get("product"),
                services=frozenset(source.get("services", ())),
                categories=frozenset(source.get("categories", ())),
            ),
            match=_events(data["match"]),
            miss=_events(data["miss"]),
        )


def fired(case: Case, fields: dict[str, Any]) -> bool:
    event = Event(fields=dict(fields), logsource=case.logsource, host="case")
    return any(d.rule_id == case.rule_id for d in starter_engine().match([event]))


def test_pack_has_at_least_30_rules_covering_windows_and_linux() -> None:
    products = [documents(p)[0]["logsource"].get("product") for p in rule_files()]
    assert len(products) >= 30
    assert products.count("windows") >= 15 and products.count("linux") >= 8


def test_every_rule_loads_with_zero_errors() -> None:
    report = starter_engine().load_report
    assert [str(e) for e in report.errors] == []
    assert len(starter_engine().rules) == sum(
        1 for p in rule_files() for d in documents(p) if "detection" in d
    )


def test_every_rule_is_complete_and_unique() -> None:
    problems: list[str] = []
    seen: dict[str, str] = {}
    for path in rule_files():
        for rule in documents(path):
            name = path.name
            rule_id = str(rule.get("id", ""))
            try:
                uuid.UUID(rule_id)
            except ValueError:
                problems.append(f"{name}: id {rule_id!r} is not a UUID")
            if rule_id in seen:
                problems.append(f"{name}: id {rule_id} also used by {seen[rule_id]}")
            seen[rule_id] = name
            if rule.get("level") not in LEVELS:
                problems.append(f"{name}: level {rule.get('level')!r}")
            if rule.get("status") not in STATUSES:
                problems.append(f"{name}: status {rule.get('status')!r}")
            if rule.get("author") != "Vedette project":
                problems.append(f"{name}: author {rule.get('author')!r}")
            for key in ("title", "description", "logsource", "date"):
                if not rule.get(key):
                    problems.append(f"{name}: no {key}")
            if "correlation" in rule:
                continue
            tags = rule.get("tags") or []
            if not any(TECHNIQUE.match(t) for t in tags):
                problems.append(f"{name}: no ATT&CK technique tag")
            if not any(t.removeprefix("attack.") in TACTICS for t in tags):
                problems.append(f"{name}: no ATT&CK tactic tag")
            if not rule.get("falsepositives"):
                problems.append(f"{name}: no falsepositives")
            if not (CASES / name).is_file():
                problems.append(f"{name}: no case file tests/rulepacks/cases/{name}")
    assert problems == []


def test_every_case_file_belongs_to_a_rule() -> None:
    orphans = [p.name for p in CASES.glob("*.yml") if not (starter_pack_dir() / p.name).is_file()]
    assert orphans == []


@pytest.mark.parametrize("case", list(load_cases()), ids=lambda c: c.stem)
def test_rule_fires_on_its_match_event(case: Case) -> None:
    for fields in case.match:
        assert fired(case, fields), f"{case.stem} did not fire on {fields}"


@pytest.mark.parametrize("case", list(load_cases()), ids=lambda c: c.stem)
def test_rule_ignores_its_close_miss(case: Case) -> None:
    for fields in case.miss:
        assert not fired(case, fields), f"{case.stem} fired on its close miss {fields}"
