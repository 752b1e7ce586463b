"""The loaded rules as the console shows them: the list, ATT&CK coverage, one rule's YAML with
the selections an alert matched marked, and the heat map of fired against covered techniques.
"""

from __future__ import annotations

import re
from collections import Counter
from dataclasses import dataclass
from functools import cache
from pathlib import Path
from typing import Any

from vedette.detect.plan import RuleInfo
from vedette.intel.attack import AttackKB

MAX_RULE_BYTES = 256 * 1024
_KEY = re.compile(r"^(\s*)([A-Za-z0-9_|.*-]+)\s*:")


@cache
def attack_kb() -> AttackKB:
    """Enterprise ATT&CK as bundled (names, tactics and descriptions of techniques)."""
    return AttackKB.load()


def described_techniques(attack: list[Any]) -> list[dict[str, Any]]:
    """An alert's techniques (``{id, name, tactics}``) with the bundled ATT&CK description of
    each (empty when the id is unknown)."""
    out = []
    for entry in attack:
        if not isinstance(entry, dict):
            continue
        technique = attack_kb().technique(str(entry.get("id") or ""))
        described = {**entry, "description": technique.description if technique else ""}
        if technique is not None and not described.get("name"):
            described["name"] = technique.name
        out.append(described)
    return out


def loaded_rules(centre: Any) -> list[RuleInfo]:
    """Every detection rule the centre runs now (empty without a Sigma engine)."""
    engine = getattr(centre.rules.detector, "engine", None)
    rules = getattr(engine, "rules", None)
    return list(rules) if rules else []


def rule_of(centre: Any, rule_id: str) -> RuleInfo | None:
    """The loaded rule with ``rule_id`` (None for intel, correlation or unloaded rules)."""
    return next((r for r in loaded_rules(centre) if r.id == rule_id), None)


@dataclass(frozen=True, slots=True)
class YamlLine:
    """One line of a rule file and whether it belongs to a matched selection."""

    number: int
    text: str
    hit: bool


def rule_lines(path: str | None, selections: list[str]) -> list[YamlLine]:
    """The rule file's lines, those of the matched ``selections`` under ``detection:`` marked.

    The file is one the centre loaded its rules from (not a path from the request).
    """
    if not path:
        return []
    file = Path(path)
    try:
        text = file.read_bytes()[:MAX_RULE_BYTES].decode("utf-8", errors="replace")
    except OSError:
        return []
    wanted = set(selections)
    out: list[YamlLine] = []
    in_detection = False
    child_indent: int | None = None
    current: str | None = None
    for number, line in enumerate(text.splitlines(), start=1):
        key = _KEY.match(line)
        indent = len(line) - len(line.lstrip(" "))
        if key and indent == 0:
            in_detection = key.group(2) == "detection"
            child_indent, current = None, None
        elif in_detection and key and line.strip():
            if child_indent is None:
                child_indent = indent
            if indent == child_indent:
                current = key.group(2)
        hit = in_detection and current in wanted and bool(line.strip())
        out.append(YamlLine(number=number, text=line, hit=hit))
    return out


@dataclass(frozen=True, slots=True)
class HeatCell:
    """A technique in the heat map: how often it fired and how many rules cover it."""

    id: str
    name: str
    fired: int
    rules: int

    @property
    def heat(self) -> int:
        """0 (not fired) to 4 (fired most), for the cell's colour class."""
        if self.fired <= 0:
            return 0
        return min(4, 1 + self.fired.bit_length() // 3)


@dataclass(frozen=True, slots=True)
class HeatColumn:
    """One ATT&CK tactic and its techniques that fired or are covered."""

    tactic: str
    name: str
    cells: list[HeatCell]


def coverage(rules: list[RuleInfo]) -> Counter[str]:
    """Technique id -> number of loaded rules that cover it."""
    counts: Counter[str] = Counter()
    for rule in rules:
        for technique in set(rule.attack_ids):
            counts[technique] += 1
    return counts


def heat_map(fired: Counter[str], covered: Counter[str]) -> list[HeatColumn]:
    """Tactic columns in ATT&CK order, each with its fired or covered techniques (most fired
    first); a technique under several tactics appears in each."""
    kb = attack_kb()
    columns: dict[str, list[HeatCell]] = {t.shortname: [] for t in kb.tactics}
    for technique_id in set(fired) | set(covered):
        technique = kb.technique(technique_id)
        if technique is None:
            continue
        cell = HeatCell(
            id=technique_id,
            name=technique.name,
            fired=fired.get(technique_id, 0),
            rules=covered.get(technique_id, 0),
        )
        for tactic in technique.tactics:
            if tactic in columns:
                columns[tactic].append(cell)
    return [
        HeatColumn(
            tactic=t.shortname,
            name=t.name,
            cells=sorted(columns[t.shortname], key=lambda c: (-c.fired, -c.rules, c.id)),
        )
        for t in kb.tactics
    ]


def tactic_name(shortname: str) -> str:
    """The display name of a tactic shortname (the shortname when unknown)."""
    tactic = attack_kb().tactic(shortname)
    return tactic.name if tactic else shortname


def feed_reports(centre: Any) -> list[Any]:
    """What loading each indicator feed did (counts, what it could not use), in load order."""
    index = getattr(centre.rules.detector, "indicators", None)
    return list(getattr(index, "reports", None) or [])
