"""What a rule set covers in ATT&CK, and which known groups overlap what fired.

``rule_coverage(rules, kb)`` counts rules per technique and per tactic from the rules'
``attack.*`` tags. ``rank_groups(techniques, kb)`` ranks ATT&CK groups by the overlap of the
techniques they are known to use with the techniques observed: a **hint** for where to look
next, never an attribution (techniques are shared widely between groups and tools).
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

from vedette.errors import InputError
from vedette.intel.attack import AttackKB, Group, technique_ids_from_tags


class RuleLike(Protocol):
    """What coverage needs of a rule (``vedette.detect.RuleInfo`` fits)."""

    @property
    def id(self) -> str: ...

    @property
    def title(self) -> str: ...

    @property
    def tags(self) -> tuple[str, ...]: ...


@dataclass(slots=True)
class TacticCoverage:
    """Coverage of one tactic: rules, covered techniques, and how many exist."""

    shortname: str
    name: str
    rules: set[str] = field(default_factory=set)
    techniques: set[str] = field(default_factory=set)
    parents_covered: set[str] = field(default_factory=set)
    parents_total: int = 0

    @property
    def percent(self) -> float:
        """Share of the tactic's (current, top-level) techniques with at least one rule."""
        return 100.0 * len(self.parents_covered) / self.parents_total if self.parents_total else 0.0


@dataclass(slots=True)
class Coverage:
    """Rules per technique and per tactic, and rules that name no known technique."""

    rules_total: int = 0
    by_technique: dict[str, list[str]] = field(default_factory=dict)
    by_tactic: list[TacticCoverage] = field(default_factory=list)
    unknown_techniques: dict[str, list[str]] = field(default_factory=dict)
    rules_without_attack: int = 0

    def scores(self) -> dict[str, int]:
        """Technique id -> number of rules (for a Navigator layer)."""
        return {tid: len(rules) for tid, rules in self.by_technique.items()}


def rule_coverage(rules: Iterable[RuleLike], kb: AttackKB) -> Coverage:
    """ATT&CK coverage of ``rules`` from their ``attack.tNNNN`` and tactic tags."""
    coverage = Coverage()
    tactics = {t.shortname: TacticCoverage(t.shortname, t.name) for t in kb.tactics}
    for current in kb.current_techniques():
        if current.parent_id is None:
            for tactic in current.tactics:
                if tactic in tactics:
                    tactics[tactic].parents_total += 1
    for rule in rules:
        coverage.rules_total += 1
        ids = technique_ids_from_tags(rule.tags)
        tagged_tactics = set(kb.tactics_from_tags(rule.tags))
        if not ids and not tagged_tactics:
            coverage.rules_without_attack += 1
        for raw in ids:
            technique = kb.technique(raw)
            if technique is None:
                coverage.unknown_techniques.setdefault(raw, []).append(rule.id)
                continue
            coverage.by_technique.setdefault(technique.id, []).append(rule.id)
            # A rule tagged with tactics counts under those of its technique's tactics it
            # names; untagged, under every tactic of the technique.
            where = [t for t in technique.tactics if t in tagged_tactics] or technique.tactics
            for tactic in where:
                if tactic in tactics:
                    tactics[tactic].rules.add(rule.id)
                    tactics[tactic].techniques.add(technique.id)
                    tactics[tactic].parents_covered.add(technique.parent_id or technique.id)
        for tactic in tagged_tactics:
            if not ids and tactic in tactics:
                tactics[tactic].rules.add(rule.id)
    coverage.by_tactic = [tactics[t.shortname] for t in kb.tactics]
    return coverage


# --- groups ---------------------------------------------------------------------------------


@dataclass(slots=True, frozen=True)
class GroupMatch:
    """A group whose known techniques overlap the observed ones."""

    group: Group
    score: float
    shared: tuple[str, ...]
    observed: int
    known: int


def _with_parents(ids: Iterable[str]) -> set[str]:
    out: set[str] = set()
    for tid in ids:
        out.add(tid)
        if "." in tid:
            out.add(tid.split(".", 1)[0])
    return out


def rank_groups(techniques: Iterable[str], kb: AttackKB, *, top: int = 10) -> list[GroupMatch]:
    """Groups ranked by Jaccard overlap of their techniques with ``techniques``.

    Both sides are widened with parent techniques (``T1059.001`` also counts as ``T1059``) so
    that a rule written at technique level meets a group known at sub-technique level.
    """
    observed_ids: set[str] = set()
    for tid in techniques:
        known_technique = kb.technique(tid)
        observed_ids.add(known_technique.id if known_technique is not None else tid.upper())
    observed = _with_parents(observed_ids)
    if not observed:
        return []
    matches: list[GroupMatch] = []
    for group in kb.groups.values():
        known = _with_parents(group.techniques)
        shared = observed & known
        if not shared:
            continue
        score = len(shared) / len(observed | known)
        shown = tuple(sorted(t for t in shared if t in observed_ids or t in group.techniques))
        matches.append(GroupMatch(group, score, shown, len(observed_ids), len(group.techniques)))
    matches.sort(key=lambda m: (-m.score, -len(m.shared), m.group.id))
    return matches[:top]


def techniques_from_result(path: Path) -> dict[str, int]:
    """Technique id -> detection count, from a scan's JSONL output or a Navigator layer."""
    from vedette.intel.navigator import layer_scores

    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise InputError(f"{path}: cannot read: {exc}") from exc
    stripped = text.lstrip()
    if stripped.startswith("{") and '"techniques"' in text[:200_000] and '"domain"' in text:
        try:
            layer = json.loads(text)
        except ValueError:
            layer = None
        if isinstance(layer, Mapping) and isinstance(layer.get("techniques"), list):
            return {tid: int(score) or 1 for tid, score in layer_scores(layer).items()}
    counts: dict[str, int] = {}
    bad = 0
    for line in text.splitlines():
        if not line.strip():
            continue
        try:
            record = json.loads(line)
        except ValueError:
            bad += 1
            continue
        if isinstance(record, Mapping):
            for tid in _record_techniques(record):
                counts[tid] = counts.get(tid, 0) + 1
    if not counts and bad:
        raise InputError(f"{path}: neither JSONL detections nor an ATT&CK Navigator layer")
    return counts


def _record_techniques(record: Mapping[str, Any]) -> list[str]:
    found: list[str] = []
    for item in record.get("attack") or ():
        if isinstance(item, str):
            found.append(item.upper())
        elif isinstance(item, Mapping):
            tid = item.get("id") or item.get("technique_id") or item.get("techniqueID")
            if tid:
                found.append(str(tid).upper())
    tags = record.get("tags") or ()
    if isinstance(tags, list):
        found.extend(technique_ids_from_tags(str(t) for t in tags))
    return list(dict.fromkeys(found))
